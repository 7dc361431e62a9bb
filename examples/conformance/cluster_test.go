package main_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

// The cluster suite runs three conformance nodes joined through a real
// broker (redis-server or nats-server on a loopback port of its own), a
// round-robin reverse proxy in front of them (a load balancer without sticky
// sessions), and a control endpoint through which the phoenix.js scenarios
// in js/cluster kill and restart nodes and the broker.

// adapters are the cluster PubSubs under test: the broker binary, the
// Debian package it comes from, its arguments for a port, and the -pubsub URL.
var adapters = []adapter{
	{
		name: "redis", bin: "redis-server", pkg: "redis-server",
		// No persistence: a restart is a flush, which loses the histories.
		args: func(p, _ string) []string {
			return []string{"--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
		},
		url: func(addr string) string { return "redis://" + addr },
	},
	{
		name: "nats", bin: "nats-server", pkg: "nats-server",
		// JetStream holds the histories, in dir: they survive a restart
		// and are flushed by deleting dir.
		args: func(p, dir string) []string { return []string{"-a", "127.0.0.1", "-p", p, "-js", "-sd", dir} },
		url:  func(addr string) string { return "nats://" + addr },
	},
}

type adapter struct {
	name, bin, pkg string
	args           func(port, dataDir string) []string
	url            func(addr string) string
}

// metricRE finds the figures the JS scenarios print ("METRIC name=value").
var metricRE = regexp.MustCompile(`(?m)METRIC (\w+)=(\d+)`)

// TestCluster runs js/cluster against three nodes, for each adapter and
// each phoenix.js release line.
func TestCluster(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after every process is stopped

	js := filepath.Join(testenv.ModuleRoot(t), "examples", "conformance", "js")
	testenv.NPMInstall(t, js)
	bin := testenv.BuildConformance(t)

	for _, ad := range adapters {
		t.Run(ad.name, func(t *testing.T) {
			c := startCluster(t, bin, ad)
			for _, pkg := range []string{"phoenix18", "phoenix17"} {
				t.Run(pkg, func(t *testing.T) {
					start := time.Now()
					out, ok := testenv.RunNode(t, js, append(c.env(), "PHOENIX_PKG="+pkg),
						"--test", "--test-concurrency=1", "--test-reporter=spec", "cluster/")
					if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] == "0") {
						t.Errorf("node ran no passing test (summary %q)", m)
					}
					for _, m := range metricRE.FindAllStringSubmatch(out, -1) {
						t.Logf("%s %s metric: %s = %s", ad.name, pkg, m[1], m[2])
					}
					t.Logf("%s %s: %v", ad.name, pkg, time.Since(start).Round(time.Millisecond))
				})
			}
			c.stop(t)
		})
	}
}

// cluster is a broker, three nodes, the load balancer and the control
// endpoint of one test.
type cluster struct {
	broker *proc
	// brokerDir is the broker's data directory, deleted by a flush.
	brokerDir string
	nodes     []*proc
	lb        *roundRobin
	lbSrv     *httptest.Server
	ctl       *httptest.Server
	// mu serializes control requests: a scenario never kills and starts
	// the same process concurrently.
	mu sync.Mutex
}

func startCluster(t testing.TB, bin string, ad adapter) *cluster {
	t.Helper()
	brokerBin, err := exec.LookPath(ad.bin)
	if err != nil {
		t.Fatalf("%s not found in PATH: install the Debian package (apt-get install %s): %v", ad.bin, ad.pkg, err)
	}
	baddr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(baddr)
	c := &cluster{brokerDir: t.TempDir()}
	c.broker = &proc{name: ad.name, bin: brokerBin, args: ad.args(port, c.brokerDir), addr: baddr}
	if err := c.broker.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.broker.kill() })
	for i := range 3 {
		n := &proc{
			name:   "node" + strconv.Itoa(i),
			bin:    bin,
			addr:   testenv.FreeAddr(t),
			listen: true,
		}
		n.args = []string{"-addr", n.addr, "-node", n.name, "-pubsub", ad.url(baddr)}
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n.kill()
			if t.Failed() {
				t.Logf("output of %s:\n%s", n.name, n.output())
			}
		})
		c.nodes = append(c.nodes, n)
	}
	c.lb = newRoundRobin(c.nodes)
	c.lbSrv = httptest.NewServer(c.lb)
	t.Cleanup(c.lbSrv.Close)
	c.ctl = httptest.NewServer(c.control())
	t.Cleanup(c.ctl.Close)
	return c
}

// env is what js/cluster/lib.mjs reads.
func (c *cluster) env() []string {
	var ws, web []string
	for _, n := range c.nodes {
		ws = append(ws, "ws://"+n.addr+"/socket")
		web = append(web, "http://"+n.addr)
	}
	lb := strings.TrimPrefix(c.lbSrv.URL, "http://")
	return []string{
		"PHX_NODES=" + strings.Join(ws, ","),
		"PHX_NODES_HTTP=" + strings.Join(web, ","),
		"PHX_LB=ws://" + lb + "/socket",
		"PHX_CONTROL=" + c.ctl.URL,
		// The nodes run with the tracker's defaults.
		"PHX_PRESENCE_DOWN_MS=4000",
		"PHX_PRESENCE_BROADCAST_MS=1500",
	}
}

// stop shuts every node down gracefully, failing the test unless each one
// exits 0 within 15 s (a node built with -race exits non-zero after a data
// race), then the broker.
func (c *cluster) stop(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if err := n.stop(); err != nil {
			t.Errorf("%s: %v", n.name, err)
		}
		if i == len(c.nodes)-1 {
			break
		}
		// The tracker's goodbye went out before the adapter closed: the
		// next node forgets this one at once, not after the down period.
		next := c.nodes[i+1]
		gone := `msg="presence: replica permanently down" tracker=phx_presence node=` + next.name + ` peer=` + n.name + ` `
		deadline := time.Now().Add(2 * time.Second)
		for !strings.Contains(next.output(), gone) {
			if time.Now().After(deadline) {
				t.Errorf("%s did not drop %s's presences after its graceful shutdown", next.name, n.name)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.broker.kill()
}

// control serves POST /broker/{kill,start,flush}, /node/{kill,start}?i=N and
// GET|DELETE /lb (the proxy's per-node request counts, or their reset).
func (c *cluster) control() http.Handler {
	mux := http.NewServeMux()
	do := func(w http.ResponseWriter, f func() error) {
		c.mu.Lock()
		err := f()
		c.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	node := func(r *http.Request) (*proc, error) {
		i, err := strconv.Atoi(r.URL.Query().Get("i"))
		if err != nil || i < 0 || i >= len(c.nodes) {
			return nil, fmt.Errorf("bad node index %q", r.URL.Query().Get("i"))
		}
		return c.nodes[i], nil
	}
	mux.HandleFunc("POST /broker/kill", func(w http.ResponseWriter, r *http.Request) {
		do(w, func() error { c.broker.kill(); return nil })
	})
	mux.HandleFunc("POST /broker/start", func(w http.ResponseWriter, r *http.Request) {
		do(w, c.broker.start)
	})
	mux.HandleFunc("POST /broker/flush", func(w http.ResponseWriter, r *http.Request) {
		do(w, func() error {
			c.broker.kill()
			if err := os.RemoveAll(c.brokerDir); err != nil {
				return err
			}
			if err := os.MkdirAll(c.brokerDir, 0o755); err != nil {
				return err
			}
			return c.broker.start()
		})
	})
	mux.HandleFunc("POST /node/kill", func(w http.ResponseWriter, r *http.Request) {
		do(w, func() error {
			n, err := node(r)
			if err == nil {
				n.kill()
			}
			return err
		})
	})
	mux.HandleFunc("POST /node/start", func(w http.ResponseWriter, r *http.Request) {
		do(w, func() error {
			n, err := node(r)
			if err == nil {
				err = n.start()
			}
			return err
		})
	})
	mux.HandleFunc("GET /lb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.lb.counts())
	})
	mux.HandleFunc("DELETE /lb", func(w http.ResponseWriter, r *http.Request) {
		c.lb.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// roundRobin is a load balancer without sticky sessions: each request goes
// to the next node, whatever the previous requests of the same client did.
type roundRobin struct {
	nodes []*proc
	proxy *httputil.ReverseProxy
	next  atomic.Uint64
	mu    sync.Mutex
	hits  map[string]int // LongPoll requests per node
}

func newRoundRobin(nodes []*proc) *roundRobin {
	rr := &roundRobin{nodes: nodes, hits: make(map[string]int)}
	rr.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			n := rr.nodes[int(rr.next.Add(1)%uint64(len(rr.nodes)))]
			pr.SetURL(&url.URL{Scheme: "http", Host: n.addr})
			if strings.HasSuffix(pr.In.URL.Path, "/longpoll") && pr.In.Method != http.MethodOptions {
				rr.mu.Lock()
				rr.hits[n.name]++
				rr.mu.Unlock()
			}
		},
		// A held poll answers after up to 10 s; nothing to flush before.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	return rr
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) { rr.proxy.ServeHTTP(w, r) }

func (rr *roundRobin) counts() map[string]int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make(map[string]int, len(rr.hits))
	for k, v := range rr.hits {
		out[k] = v
	}
	return out
}

func (rr *roundRobin) reset() {
	rr.mu.Lock()
	clear(rr.hits)
	rr.mu.Unlock()
}

// proc is a broker or node process that can be killed (SIGKILL, as a crash)
// and started again on the same address.
type proc struct {
	name, bin, addr string
	args            []string
	listen          bool // wait for the "listening on" line rather than for the port

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, once done is closed
	out  bytes.Buffer
}

// start runs the process and waits up to 30 s until it serves. Starting a
// running process does nothing, so that a scenario can restore the cluster
// whatever state its failure left it in.
func (p *proc) start() error {
	listening, done, err := p.spawn()
	if err != nil || listening == nil {
		return err
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		if p.listen {
			select {
			case <-listening:
				return nil
			case <-done:
				return fmt.Errorf("%s exited before listening:\n%s", p.name, p.output())
			case <-deadline.C:
				return fmt.Errorf("%s did not listen within 30 s:\n%s", p.name, p.output())
			}
		}
		if conn, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond); err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before accepting on %s:\n%s", p.name, p.addr, p.output())
		case <-deadline.C:
			return fmt.Errorf("%s did not accept on %s within 30 s", p.name, p.addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// spawn starts the process with goroutines that collect its output (and
// close listening at the "listening on" line) and reap it (closing done).
func (p *proc) spawn() (listening, done chan struct{}, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil, nil, nil
	}
	cmd := exec.Command(p.bin, p.args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	listening, done = make(chan struct{}), make(chan struct{})
	p.cmd, p.done = cmd, done
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if !seen && strings.Contains(line, "listening on http://") {
				seen = true
				close(listening)
			}
		}
		_, _ = io.Copy(io.Discard, pr) // a line over the limit: keep the pipe drained
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		<-copied
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return listening, done, nil
}

// kill sends SIGKILL and waits for the exit; it does nothing if the process
// is not running.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM and waits up to 15 s for a clean exit.
func (p *proc) stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within 15 s of SIGTERM; killed", p.name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("%s exited after SIGTERM: %w\n%s", p.name, p.err, p.out.String())
	}
	return nil
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// BenchmarkClusterFanOut measures cross-node fan-out through real servers:
// 100 WebSocket subscribers on each of nodes 1 and 2, broadcasts posted to
// node 0's /api/broadcast and delivered through the broker. It reports
// deliveries per second and the latency from the POST to each subscriber's
// read. "max" posts from 8 concurrent HTTP clients as fast as node 0
// answers (throughput, with the queueing that comes with it); "paced"
// posts 200 broadcasts/s (40,000 deliveries/s), for latency below
// saturation. The subscribers run in the benchmark process, on the same
// cores as the nodes and the broker.
//
//	go test -run '^$' -bench ClusterFanOut -benchtime 2000x ./examples/conformance/
func BenchmarkClusterFanOut(b *testing.B) {
	bin := testenv.BuildConformance(b)
	for _, ad := range adapters {
		b.Run(ad.name, func(b *testing.B) {
			c := startCluster(b, bin, ad)
			b.Run("max", func(b *testing.B) { benchFanOut(b, c, 100, 8, 0) })
			b.Run("paced", func(b *testing.B) { benchFanOut(b, c, 100, 1, 200) })
			c.stop(b)
		})
	}
}

// benchFanOut connects perNode subscribers to each of nodes 1 and 2 on one
// bench: topic (no presence, no intercept) and posts b.N broadcasts to node
// 0 from posters concurrent HTTP clients, at rate broadcasts per second in
// all (0: no pacing).
func benchFanOut(b *testing.B, c *cluster, perNode, posters, rate int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topic := "bench:fanout-" + strconv.Itoa(rand.IntN(1<<30))
	base := time.Now()
	subs := 2 * perNode
	lat := make([]time.Duration, 0, b.N*subs)
	var mu sync.Mutex
	var received atomic.Int64
	want := int64(b.N * subs)
	allIn := make(chan struct{})
	var readers sync.WaitGroup
	var conns []*websocket.Conn
	for _, n := range c.nodes[1:] {
		for i := range perNode {
			ws, _, err := websocket.Dial(ctx, "ws://"+n.addr+"/socket/websocket?vsn=2.0.0&token=alice", nil)
			if err != nil {
				b.Fatalf("dial %s: %v", n.name, err)
			}
			ws.SetReadLimit(1 << 20)
			conns = append(conns, ws)
			join := fmt.Sprintf(`["1","1",%q,"phx_join",{}]`, topic)
			if err := ws.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
				b.Fatal(err)
			}
			if _, msg, err := ws.Read(ctx); err != nil || !bytes.Contains(msg, []byte(`"ok"`)) {
				b.Fatalf("join %d on %s: %s %v", i, n.name, msg, err)
			}
			readers.Add(1)
			go func() {
				defer readers.Done()
				var mine []time.Duration
				defer func() {
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
				for {
					_, msg, err := ws.Read(ctx)
					if err != nil {
						return
					}
					var f [5]json.RawMessage
					var p struct{ T int64 }
					if json.Unmarshal(msg, &f) != nil || string(f[3]) != `"tick"` || json.Unmarshal(f[4], &p) != nil {
						continue
					}
					mine = append(mine, time.Since(base)-time.Duration(p.T))
					if received.Add(1) == want {
						close(allIn)
					}
				}
			}()
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: posters}}
	defer client.CloseIdleConnections()
	post := "http://" + c.nodes[0].addr + "/api/broadcast?topic=" + topic + "&event=tick"
	var next atomic.Int64
	var errMu sync.Mutex
	var postErr error

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if rate > 0 {
					// A late slot is not made up for by a burst.
					if d := time.Duration(i-1)*time.Second/time.Duration(rate) - time.Since(start); d > 0 {
						time.Sleep(d)
					}
				}
				body := fmt.Sprintf(`{"t":%d,"pad":"%s"}`, time.Since(base), strings.Repeat("x", 64))
				resp, err := client.Post(post, "application/json", strings.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errMu.Lock()
					postErr = cmp.Or(postErr, err)
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if postErr != nil {
		b.Fatalf("POST /api/broadcast: %v", postErr)
	}
	select {
	case <-allIn:
	case <-time.After(60 * time.Second):
		b.Errorf("received %d of %d deliveries", received.Load(), want)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, ws := range conns {
		_ = ws.CloseNow()
	}
	readers.Wait()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(received.Load())/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "broadcasts/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// TestClusterFlagErrors: a node refuses to start, rather than run deaf,
// when its -pubsub URL is unusable or its broker unreachable.
func TestClusterFlagErrors(t *testing.T) {
	bin := testenv.BuildConformance(t)
	closed := testenv.FreeAddr(t) // nothing listens there
	for _, tc := range []struct{ name, url, want string }{
		{"scheme", "kafka://127.0.0.1:9092", "want redis://HOST:PORT or nats://HOST:PORT"},
		{"redis", "redis://" + closed, "connection refused"},
		{"nats", "nats://" + closed, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-addr", testenv.FreeAddr(t), "-node", "n", "-pubsub", tc.url)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("want a prompt non-zero exit, got %v:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "listening on") {
				t.Errorf("output lacks %q or shows the node listening:\n%s", tc.want, out)
			}
		})
	}
}
