package main_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

// TestGracefulShutdown deploys over live phoenix.js clients: the clients
// (phoenix.js 1.7 and 1.8, serializers V1 and V2) reach server A through a
// TCP proxy standing for a load balancer. When the test (asked by node, see
// js/shutdown) takes A out of the proxy and sends it SIGTERM, A must close
// every socket with 1012 and exit 0 within testenv's 5 s; phoenix.js must
// reconnect through the proxy, now to B, rejoin its channel and get echo
// replies, all with its default reconnect and rejoin timers.
func TestGracefulShutdown(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the servers and proxy are stopped

	js := filepath.Join(testenv.ModuleRoot(t), "examples", "conformance", "js")
	testenv.NPMInstall(t, js)
	bin := testenv.BuildConformance(t)
	a := testenv.StartConformance(t, bin)
	b := testenv.StartConformance(t, bin)

	proxy := newSwitchProxy(t, a.Addr, b.Addr)
	stopped := make(chan error, 1)
	var once sync.Once
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/shutdown" {
			http.NotFound(w, r)
			return
		}
		// Deregister first, as a deploy takes a node out of its load
		// balancer, so that reconnects land on B rather than on A's
		// closing listener; then SIGTERM.
		once.Do(func() {
			proxy.use(1)
			go func() { stopped <- a.Stop() }()
		})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(control.Close)

	out, ok := testenv.RunNode(t, js, []string{
		"PHX_URL=ws://" + proxy.addr() + "/socket",
		"PHX_CONTROL=" + control.URL,
	}, "--test", "--test-reporter=spec", "shutdown/")
	if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] == "0") {
		t.Errorf("node ran no passing test (summary %q)", m)
	}

	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("server A did not shut down cleanly: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node never asked for the shutdown")
	}
	if o := a.Output(); strings.Contains(o, "panic") || strings.Contains(o, "DATA RACE") {
		t.Errorf("server A's output:\n%s", o)
	}
	// Every client opened once through A and at least once more through B.
	dials := proxy.dials()
	t.Logf("proxy connections: %d to A, %d to B", dials[0], dials[1])
	if dials[0] == 0 || dials[1] < dials[0] {
		t.Errorf("proxy connections: %d to A, %d to B; want every client on A, then on B", dials[0], dials[1])
	}
	if err := b.Stop(); err != nil {
		t.Errorf("server B: %v", err)
	}
}

// switchProxy forwards TCP connections to one of its upstreams: the one
// chosen with use, or the next one when that refuses the connection, as a
// load balancer with health checks would. Being below HTTP, it passes the
// WebSocket close frames, and so their codes, through unchanged.
type switchProxy struct {
	ln        net.Listener
	upstreams []string
	active    atomic.Int32
	counts    []atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newSwitchProxy(t *testing.T, upstreams ...string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &switchProxy{ln: ln, upstreams: upstreams, counts: make([]atomic.Int64, len(upstreams)), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *switchProxy) addr() string { return p.ln.Addr().String() }

// use makes upstream i the target of new connections.
func (p *switchProxy) use(i int) { p.active.Store(int32(i)) }

// dials returns how many connections each upstream accepted.
func (p *switchProxy) dials() []int64 {
	n := make([]int64, len(p.counts))
	for i := range p.counts {
		n[i] = p.counts[i].Load()
	}
	return n
}

func (p *switchProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track records an open connection so that close can end it; false once
// the proxy is closing.
func (p *switchProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *switchProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *switchProxy) forward(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	defer client.Close()
	up, err := p.dial()
	if err != nil {
		return // the client sees the connection drop, as with a dead node
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, client)
	go pipe(client, up)
	// Either side ending ends both, like a proxy without half-close.
	<-done
	client.Close()
	up.Close()
	<-done
}

// dial connects to the active upstream, falling over to the following ones
// (each tried once) when it refuses.
func (p *switchProxy) dial() (net.Conn, error) {
	start := int(p.active.Load())
	var errs []error
	for k := range p.upstreams {
		i := (start + k) % len(p.upstreams)
		c, err := net.DialTimeout("tcp", p.upstreams[i], 2*time.Second)
		if err == nil {
			p.counts[i].Add(1)
			if k > 0 {
				p.active.CompareAndSwap(int32(start), int32(i))
			}
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (p *switchProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
