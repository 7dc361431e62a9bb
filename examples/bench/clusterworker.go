package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// reconnectAfter is phoenix.js's reconnectAfterMs: by tries, then 5 s.
func reconnectAfter(tries int) time.Duration {
	steps := []int{10, 50, 100, 150, 200, 250, 500, 1000, 2000}
	if tries >= 1 && tries <= len(steps) {
		return time.Duration(steps[tries-1]) * time.Millisecond
	}
	return 5 * time.Second
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (not in package
// syscall): with it, binding the source address leaves the choice of port
// to connect(). Without it every bind(addr, 0) searches the ephemeral
// range for a port no other bound socket holds, which at 10,000 sockets
// from one address costs the worker a core of system time.
const ipBindAddressNoPort = 24

// clusterHTTPClient is httpClientFrom(src) with IP_BIND_ADDRESS_NO_PORT.
func clusterHTTPClient(src net.IP) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// joinTimeout is phoenix.js's default push timeout.
const joinTimeout = 10 * time.Second

// clusterLayout places the sockets of a cluster run: socket i goes to node
// i%nodes, and to the bench and lobby topics of its rank on that node, so
// that every topic spreads over all nodes.
type clusterLayout struct {
	Sockets, Nodes, Topics, PresenceTopics int
	Run                                    string
}

func (l clusterLayout) node(i int) int       { return i % l.Nodes }
func (l clusterLayout) benchTopic(i int) int { return (i / l.Nodes) % l.Topics }
func (l clusterLayout) lobby(i int) int      { return (i / l.Nodes) % l.PresenceTopics }

func (l clusterLayout) benchTopicName(t int) string {
	return "bench:c-" + l.Run + "-" + strconv.Itoa(t)
}
func lobbyTopicName(p int) string { return "lobby:" + strconv.Itoa(p) }

// lobbyMembers is the number of sockets that join lobby:p.
func (l clusterLayout) lobbyMembers(p int) int {
	n := 0
	for i := range l.Sockets {
		if l.lobby(i) == p {
			n++
		}
	}
	return n
}

// Socket states.
const (
	sockDown   = iota
	sockOpen   // connected, no channel joined yet
	sockBench  // bench topic joined
	sockJoined // both joined
)

type csock struct {
	i            int
	url          string
	bench, lobby string
	key          string

	state     atomic.Int32
	joinedAt  atomic.Int64
	hbPending atomic.Bool
	ref       atomic.Uint64

	mu   sync.Mutex
	ws   *websocket.Conn
	seqs []int64 // broadcast sequence numbers received
}

func (s *csock) conn() *websocket.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ws
}

func (s *csock) nextRef() string { return strconv.FormatUint(s.ref.Add(1), 10) }

// clusterWorker is one load-generator process of `bench cluster`.
type clusterWorker struct {
	layout      clusterLayout
	index       int
	hc          *http.Client
	socks       []*csock
	concurrency int
	startNS     int64

	dials, drops, hbSent, hbReplies, hbTimeouts, chanErrors atomic.Int64
	lastJoin                                                atomic.Int64

	mu        sync.Mutex
	errs      map[string]int64
	firstErr  string
	lat       map[int64][]int64 // phase → latencies in µs
	lastRecv  map[int64]int64   // phase → last delivery, unix ns
	stopping  atomic.Bool
	unmatched atomic.Int64
}

// workerStatus is the answer to {"cmd":"status"}.
type workerStatus struct {
	Sockets     int              `json:"sockets"`
	Connected   int              `json:"connected"`
	Joined      int              `json:"joined"`
	Half        int              `json:"half_joined"`
	JoinedSince int              `json:"joined_since"`
	StartNS     int64            `json:"start_ns"`
	LastJoinNS  int64            `json:"last_join_ns"`
	Dials       int64            `json:"dials"`
	Drops       int64            `json:"drops"`
	HBSent      int64            `json:"heartbeats_sent"`
	HBReplies   int64            `json:"heartbeat_replies"`
	HBTimeouts  int64            `json:"heartbeat_timeouts"`
	ChanErrors  int64            `json:"channel_errors"`
	Errors      map[string]int64 `json:"errors"`
	FirstErr    string           `json:"first_error,omitempty"`
}

// workerCmd is one line the parent sends.
type workerCmd struct {
	Cmd    string             `json:"cmd"` // status, report, stop
	Since  int64              `json:"since,omitempty"`
	Phase  int64              `json:"ph,omitempty"`
	Expect map[string][]int64 `json:"expect,omitempty"` // topic → seqs each member must get once
	Lat    bool               `json:"lat,omitempty"`
}

// deliveryReport is the answer to {"cmd":"report"}.
type deliveryReport struct {
	Deliveries int64   `json:"deliveries"`
	Lost       int64   `json:"lost"`
	Duplicated int64   `json:"duplicated"`
	Unexpected int64   `json:"unexpected"`
	LastNS     int64   `json:"last_ns"`
	LatUS      []int64 `json:"lat_us,omitempty"`
}

// runClusterWorker is `bench cluster-worker`: it opens its share of the
// sockets, keeps them joined (reconnecting like phoenix.js) and answers the
// parent's commands on stdin, one JSON line each, until "stop" or EOF.
func runClusterWorker(args []string) error {
	fs := flag.NewFlagSet("cluster-worker", flag.ContinueOnError)
	var l clusterLayout
	var nodes, src string
	var index, workers, concurrency int
	fs.IntVar(&l.Sockets, "sockets", 0, "sockets of the run")
	fs.IntVar(&l.Topics, "topics", 1, "bench topics")
	fs.IntVar(&l.PresenceTopics, "presence-topics", 1, "lobby topics")
	fs.StringVar(&l.Run, "run", "", "run id")
	fs.StringVar(&nodes, "nodes", "", "comma list of socket URLs, ws://HOST:PORT/socket")
	fs.StringVar(&src, "src", "", "source address")
	fs.IntVar(&index, "index", 0, "this worker's index")
	fs.IntVar(&workers, "workers", 1, "worker processes")
	fs.IntVar(&concurrency, "concurrency", 32, "initial connects in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	urls := strings.Split(nodes, ",")
	l.Nodes = len(urls)
	var ip net.IP
	if src != "" {
		if ip = net.ParseIP(src); ip == nil {
			return fmt.Errorf("-src %q is not an IP address", src)
		}
	}
	w := &clusterWorker{layout: l, index: index, hc: clusterHTTPClient(ip), concurrency: concurrency,
		errs: map[string]int64{}, lat: map[int64][]int64{}, lastRecv: map[int64]int64{}}
	for i := index; i < l.Sockets; i += workers {
		w.socks = append(w.socks, &csock{
			i:     i,
			url:   strings.TrimRight(urls[l.node(i)], "/") + "/websocket?token=w" + strconv.Itoa(index) + "&vsn=2.0.0",
			bench: l.benchTopicName(l.benchTopic(i)),
			lobby: lobbyTopicName(l.lobby(i)),
			key:   "w" + strconv.Itoa(index) + "-" + strconv.Itoa(i),
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	w.startNS = time.Now().UnixNano()
	sem := make(chan struct{}, max(1, concurrency))
	for _, s := range w.socks {
		wg.Go(func() { w.runSocket(ctx, s, sem) })
	}
	wg.Go(func() { w.heartbeats(ctx) })

	err := w.serve(ctx, os.Stdin, os.Stdout)
	w.stopping.Store(true)
	cancel()
	for _, s := range w.socks {
		if ws := s.conn(); ws != nil {
			_ = ws.CloseNow()
		}
	}
	wg.Wait()
	return err
}

// serve answers the parent's commands until stop or EOF.
func (w *clusterWorker) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var c workerCmd
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("worker %d: bad command: %w", w.index, err)
		}
		var v any
		switch c.Cmd {
		case "status":
			v = w.status(c.Since)
		case "report":
			v = w.report(c)
		case "stop":
			return nil
		default:
			v = map[string]string{"error": "unknown command " + c.Cmd}
		}
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("worker %d: answer: %w", w.index, err)
		}
	}
	return sc.Err()
}

func (w *clusterWorker) status(since int64) workerStatus {
	st := workerStatus{Sockets: len(w.socks), StartNS: w.startNS, LastJoinNS: w.lastJoin.Load(),
		Dials: w.dials.Load(), Drops: w.drops.Load(), HBSent: w.hbSent.Load(), HBReplies: w.hbReplies.Load(),
		HBTimeouts: w.hbTimeouts.Load(), ChanErrors: w.chanErrors.Load()}
	for _, s := range w.socks {
		switch s.state.Load() {
		case sockJoined:
			st.Connected++
			st.Joined++
			if s.joinedAt.Load() > since {
				st.JoinedSince++
			}
		case sockOpen, sockBench:
			st.Connected++
			st.Half++
		}
	}
	w.mu.Lock()
	st.Errors = make(map[string]int64, len(w.errs))
	for k, v := range w.errs {
		st.Errors[k] = v
	}
	st.FirstErr = w.firstErr
	w.mu.Unlock()
	return st
}

func (w *clusterWorker) report(c workerCmd) deliveryReport {
	var r deliveryReport
	counts := map[int64]int{}
	for _, s := range w.socks {
		exp := append(append([]int64(nil), c.Expect[s.lobby]...), c.Expect[s.bench]...)
		if len(exp) == 0 {
			continue
		}
		clear(counts)
		for _, q := range exp {
			counts[q] = 0
		}
		s.mu.Lock()
		for _, q := range s.seqs {
			if n, ok := counts[q]; ok {
				counts[q] = n + 1
			}
		}
		s.mu.Unlock()
		for _, n := range counts {
			r.Deliveries += int64(n)
			switch {
			case n == 0:
				r.Lost++
			case n > 1:
				r.Duplicated += int64(n - 1)
			}
		}
	}
	r.Unexpected = w.unmatched.Load()
	w.mu.Lock()
	r.LastNS = w.lastRecv[c.Phase]
	if c.Lat {
		r.LatUS = append([]int64(nil), w.lat[c.Phase]...)
	}
	w.mu.Unlock()
	return r
}

func (w *clusterWorker) fail(kind string, err error) {
	w.mu.Lock()
	w.errs[kind]++
	if w.firstErr == "" && err != nil {
		w.firstErr = kind + ": " + err.Error()
	}
	w.mu.Unlock()
}

// errKind classifies a connect or join error for the report.
func errKind(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(s, "connection reset"):
		return "reset"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(s, "timeout"):
		return "timeout"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "addr_not_avail"
	case strings.Contains(s, "status code"):
		if i := strings.LastIndex(s, "got "); i >= 0 {
			return "http_" + strings.Fields(s[i+4:])[0]
		}
		return "http"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(s, "EOF"):
		return "eof"
	}
	return "other"
}

// runSocket keeps one socket connected and joined until ctx ends.
func (w *clusterWorker) runSocket(ctx context.Context, s *csock, sem chan struct{}) {
	tries := 0
	first := true
	release := func() {
		if first {
			first = false
			<-sem
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	for ctx.Err() == nil {
		joined := w.session(ctx, s, release)
		release()
		if ctx.Err() != nil {
			return
		}
		if joined {
			tries = 0
		}
		tries++
		d := reconnectAfter(tries)
		d += time.Duration(rand.Int64N(int64(d/10) + int64(5*time.Millisecond)))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session dials, joins both channels and reads until the connection ends.
// It reports whether both joins succeeded.
func (w *clusterWorker) session(ctx context.Context, s *csock, joinedFn func()) bool {
	w.dials.Add(1)
	dctx, cancel := context.WithTimeout(ctx, joinTimeout)
	ws, _, err := websocket.Dial(dctx, s.url, &websocket.DialOptions{HTTPClient: w.hc, CompressionMode: websocket.CompressionDisabled})
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.fail("connect_"+errKind(err), err)
		}
		return false
	}
	ws.SetReadLimit(16 << 20)
	s.mu.Lock()
	s.ws = ws
	s.mu.Unlock()
	s.hbPending.Store(false)
	s.state.Store(sockOpen)
	defer func() {
		s.state.Store(sockDown)
		s.mu.Lock()
		s.ws = nil
		s.mu.Unlock()
		_ = ws.CloseNow()
	}()
	if err := w.join(ctx, s, ws, s.bench, `{}`); err != nil {
		if ctx.Err() == nil {
			w.fail("join_"+errKind(err), err)
		}
		return false
	}
	s.state.Store(sockBench)
	if err := w.join(ctx, s, ws, s.lobby, `{"key":"`+s.key+`"}`); err != nil {
		if ctx.Err() == nil {
			w.fail("join_"+errKind(err), err)
		}
		return false
	}
	now := time.Now().UnixNano()
	s.joinedAt.Store(now)
	s.state.Store(sockJoined)
	for {
		last := w.lastJoin.Load()
		if now <= last || w.lastJoin.CompareAndSwap(last, now) {
			break
		}
	}
	joinedFn()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			if ctx.Err() == nil && !w.stopping.Load() {
				w.drops.Add(1)
			}
			return true
		}
		if w.frame(s, data) {
			w.chanErrors.Add(1)
			return true // phx_close or phx_error: start over, as a rejoin would
		}
	}
}

// errJoinRefused is a join answered with an error status.
var errJoinRefused = errors.New("join refused")

// join joins topic and waits for its reply, handling other frames.
func (w *clusterWorker) join(ctx context.Context, s *csock, ws *websocket.Conn, topic, payload string) error {
	ref := s.nextRef()
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	frame := `["` + ref + `","` + ref + `","` + topic + `","phx_join",` + payload + `]`
	if err := ws.Write(jctx, websocket.MessageText, []byte(frame)); err != nil {
		return fmt.Errorf("join %s: %w", topic, err)
	}
	prefix := `["` + ref + `","` + ref + `"`
	for {
		_, data, err := ws.Read(jctx)
		if err != nil {
			return fmt.Errorf("join %s: %w", topic, err)
		}
		if !strings.HasPrefix(string(data), prefix) {
			w.frame(s, data)
			continue
		}
		if !strings.Contains(string(data), `"status":"ok"`) {
			return fmt.Errorf("join %s: %w: %s", topic, errJoinRefused, data)
		}
		return nil
	}
}

// frame handles one incoming frame: heartbeat replies and broadcasts
// ("b", payload {"seq":…,"ts":…,"ph":…}). It reports whether the server
// closed one of the socket's channels.
func (w *clusterWorker) frame(s *csock, data []byte) bool {
	var f [5]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil {
		return false
	}
	switch string(f[3]) {
	case `"phx_reply"`:
		if string(f[2]) == `"phoenix"` {
			s.hbPending.Store(false)
			w.hbReplies.Add(1)
		}
	case `"phx_close"`, `"phx_error"`:
		return true
	case `"b"`:
		now := time.Now().UnixNano()
		seq, ok1 := intField(f[4], "seq")
		ts, ok2 := intField(f[4], "ts")
		ph, ok3 := intField(f[4], "ph")
		if !ok1 || !ok2 || !ok3 {
			w.unmatched.Add(1)
			return false
		}
		s.mu.Lock()
		s.seqs = append(s.seqs, seq)
		s.mu.Unlock()
		w.mu.Lock()
		w.lat[ph] = append(w.lat[ph], (now-ts)/1000)
		w.lastRecv[ph] = max(w.lastRecv[ph], now)
		w.mu.Unlock()
	}
	return false
}

// heartbeats sends each open socket a heartbeat every 30 s, spread evenly,
// as phoenix.js does; a heartbeat still unanswered at the next one closes
// the connection (phoenix.js's heartbeat timeout), which then reconnects.
func (w *clusterWorker) heartbeats(ctx context.Context) {
	if len(w.socks) == 0 {
		return
	}
	tick := time.NewTicker(max(heartbeatInterval/time.Duration(len(w.socks)), time.Millisecond))
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(w.socks) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := w.socks[i]
		if s.state.Load() == sockDown {
			continue
		}
		ws := s.conn()
		if ws == nil {
			continue
		}
		if s.hbPending.Load() {
			w.hbTimeouts.Add(1)
			_ = ws.CloseNow()
			continue
		}
		s.hbPending.Store(true)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ws.Write(wctx, websocket.MessageText, []byte(`[null,"`+s.nextRef()+`","phoenix","heartbeat",{}]`))
		cancel()
		if err == nil {
			w.hbSent.Add(1)
		}
	}
}
