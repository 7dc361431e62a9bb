package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/phxgo/phx/presence"
)

// clusterConfig holds the flags of `bench cluster`.
type clusterConfig struct {
	sockets, nodes, topics, ptopics int
	workers, concurrency, topicMsgs int
	pubsub                          string
	hold, timeout, down             time.Duration
	topicPace                       time.Duration
	profileDir                      string
	phases                          map[string]bool
	out                             string
}

var allClusterPhases = []string{"connect", "idle", "topic", "all", "presence", "kill", "storm"}

// maxSocketsPerProc keeps every process (worker or node) under the file
// limit of 20,000 descriptors, with room for the rest.
const maxSocketsPerProc = 12500

// ClusterResult is the JSON `bench cluster` prints.
type ClusterResult struct {
	Scenario string         `json:"scenario"`
	Args     map[string]any `json:"args"`
	Broker   string         `json:"broker"`
	Load1    [2]float64     `json:"load1"`
	Seconds  float64        `json:"seconds"`
	OK       bool           `json:"ok"`
	Problems []string       `json:"problems"`
	Note     string         `json:"note"`

	Connect  *connectPhase  `json:"connect,omitempty"`
	Idle     *idlePhase     `json:"idle,omitempty"`
	Topic    *deliveryPhase `json:"topic,omitempty"`
	All      *deliveryPhase `json:"all,omitempty"`
	Presence *presencePhase `json:"presence,omitempty"`
	Kill     *killPhase     `json:"kill,omitempty"`
	Storm    *stormPhase    `json:"storm,omitempty"`
}

type connectPhase struct {
	Sockets   int              `json:"sockets"`
	Connected int              `json:"connected"` // connected with both channels joined
	Seconds   float64          `json:"seconds"`
	PerS      float64          `json:"connect_join_per_s"`
	Dials     int64            `json:"dials"`
	Errors    map[string]int64 `json:"errors"`
	FirstErr  string           `json:"first_error,omitempty"`
}

type nodeIdle struct {
	Node            string  `json:"node"`
	Connections     int     `json:"connections"`
	RSSBeforeKiB    int64   `json:"rss_before_kib"`
	RSSKiB          int64   `json:"rss_kib"`
	RSSPerSocketKiB float64 `json:"rss_per_socket_kib"`
	HeapPerSocketB  float64 `json:"heap_per_socket_b"`
	StackPerSocketB float64 `json:"stack_per_socket_b"`
	Goroutines      int     `json:"goroutines"`
}

type idlePhase struct {
	HoldS             float64    `json:"hold_s"`
	Nodes             []nodeIdle `json:"nodes"`
	Dropped           int64      `json:"sockets_dropped"`
	HeartbeatsSent    int64      `json:"heartbeats_sent"`
	HeartbeatReplies  int64      `json:"heartbeat_replies"`
	HeartbeatTimeouts int64      `json:"heartbeat_timeouts"`
	HeartbeatsHeld    bool       `json:"heartbeats_held"`
}

type deliveryPhase struct {
	Broadcasts     int     `json:"broadcasts"`
	Topics         string  `json:"topics"`
	SentTo         string  `json:"sent_to"`
	Expected       int64   `json:"expected"`
	Deliveries     int64   `json:"deliveries"`
	Lost           int64   `json:"lost"`
	Duplicated     int64   `json:"duplicated"`
	Latency        Latency `json:"latency"`
	LastDeliveryMS float64 `json:"last_delivery_ms"` // from the first send to the last delivery
}

type nodeTraffic struct {
	Node          string  `json:"node"`
	SentMsgsPerS  float64 `json:"tracker_sent_msgs_per_s"`
	SentBytesPerS float64 `json:"tracker_sent_bytes_per_s"`
	RecvMsgsPerS  float64 `json:"tracker_recv_msgs_per_s"`
	RecvBytesPerS float64 `json:"tracker_recv_bytes_per_s"`
	CPUPercent    float64 `json:"cpu_percent"`
}

type presencePhase struct {
	Expected   int            `json:"expected"`
	Converged  bool           `json:"converged"`
	ConvergedS float64        `json:"converged_s"` // from the end of connect
	Seen       map[string]int `json:"seen"`        // per node, at convergence or timeout
	Idle       []nodeTraffic  `json:"idle,omitempty"`
	Note       string         `json:"note"`
}

type killPhase struct {
	Node            string  `json:"node"`
	SocketsOnNode   int     `json:"sockets_on_node"`
	DownPeriodS     float64 `json:"down_period_s"`
	Cleared         bool    `json:"cleared"`
	ClearedS        float64 `json:"cleared_s"`
	TransfersSent   int64   `json:"transfers_sent"`
	TransfersRecv   int64   `json:"transfers_recv"`
	PubSubSentBytes int64   `json:"pubsub_sent_bytes"` // survivors, kill to cleared
	PubSubRecvBytes int64   `json:"pubsub_recv_bytes"`
	Restored        bool    `json:"restored"`
	RestoredS       float64 `json:"restored_s"` // restart to its sockets rejoined
}

type stormPhase struct {
	Sockets             int              `json:"sockets"`
	RestartS            float64          `json:"restart_s"` // kill to every node listening again
	Rejoined            bool             `json:"rejoined"`
	Seconds             float64          `json:"seconds"` // kill to all rejoined (or the timeout)
	JoinedAtEnd         int              `json:"joined_at_end"`
	HalfJoined          int              `json:"half_joined"`
	Dials               int64            `json:"dials"`
	Errors              map[string]int64 `json:"errors"`
	HeartbeatTimeouts   int64            `json:"heartbeat_timeouts"`
	PeakCPUPercent      float64          `json:"peak_cpu_percent"` // the busiest node, per sample
	PeakCPUPercentTotal float64          `json:"peak_cpu_percent_total"`
	PeakRSSKiB          int64            `json:"peak_rss_kib"` // the largest node
	PeakRSSKiBTotal     int64            `json:"peak_rss_kib_total"`
	PresenceConverged   bool             `json:"presence_converged"`
	PresenceConvergedS  float64          `json:"presence_converged_s"` // from the kill
	Overloaded          bool             `json:"overloaded"`
	Note                string           `json:"note,omitempty"`
}

const presenceNote = "lobby:P joins are tracked under the aliased topic presence:P, which no channel subscribes to, " +
	"and no presence_state is pushed: at 10,000 members per topic per-member presence_state (O(n) per join) and diffs " +
	"to every member (O(n^2)) would dominate, in Phoenix as here. This measures the tracker's replication."

// runClusterCmd is `bench cluster [flags]`.
func runClusterCmd(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	var cfg clusterConfig
	var phases string
	fs.IntVar(&cfg.sockets, "sockets", 100000, "sockets, spread round-robin over the nodes")
	fs.IntVar(&cfg.nodes, "nodes", 6, "server nodes (processes)")
	fs.StringVar(&cfg.pubsub, "pubsub", "redis", "redis or nats (start a broker), or a redis://… or nats://… URL")
	fs.IntVar(&cfg.topics, "topics", 1000, "bench:c-* topics, one joined per socket")
	fs.IntVar(&cfg.ptopics, "presence-topics", 10, "lobby:* presence topics, one joined per socket")
	fs.IntVar(&cfg.workers, "workers", 0, "load-generator processes (0: ceil(sockets/12500))")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "initial connects in flight per worker")
	fs.IntVar(&cfg.topicMsgs, "broadcasts", 20, "topic phase: broadcasts to lobby:0")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "nodes write DIR/NODE.cpu (whole run) and, on SIGUSR1, DIR/NODE.heap")
	fs.DurationVar(&cfg.topicPace, "broadcast-interval", 500*time.Millisecond,
		"topic phase: time between broadcasts (latency of one broadcast at a time; shorter measures a queue)")
	fs.DurationVar(&cfg.hold, "hold", 35*time.Second, "idle time with heartbeats before RSS is read")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "bound on every wait")
	fs.DurationVar(&cfg.down, "down-period", 0, "presence tracker down period on the nodes (0: the package default)")
	fs.StringVar(&phases, "phases", strings.Join(allClusterPhases, ","), "comma list of phases")
	fs.StringVar(&cfg.out, "out", "", "also write the JSON result to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.phases = map[string]bool{}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allClusterPhases, p) {
			return fmt.Errorf("-phases: unknown phase %q (%s)", p, strings.Join(allClusterPhases, ","))
		}
		cfg.phases[p] = true
	}
	cfg.phases["connect"] = true // every other phase needs the sockets
	if cfg.workers <= 0 {
		cfg.workers = (cfg.sockets + maxSocketsPerProc - 1) / maxSocketsPerProc
	}
	switch {
	case cfg.sockets <= 0 || cfg.nodes <= 0 || cfg.topics <= 0 || cfg.ptopics <= 0 || cfg.workers <= 0:
		return errors.New("-sockets, -nodes, -topics, -presence-topics and -workers must be positive")
	case (cfg.sockets+cfg.workers-1)/cfg.workers > maxSocketsPerProc:
		return fmt.Errorf("%d sockets over %d workers exceeds %d per process (file limit)", cfg.sockets, cfg.workers, maxSocketsPerProc)
	case (cfg.sockets+cfg.nodes-1)/cfg.nodes > 19000:
		return fmt.Errorf("%d sockets over %d nodes exceeds the file limit of a node (about 19,000 sockets)", cfg.sockets, cfg.nodes)
	case cfg.workers > 250:
		return errors.New("at most 250 workers (source addresses 127.0.0.2-251)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runCluster(ctx, cfg)
	if res != nil {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		if cfg.out != "" {
			ib, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(cfg.out, append(ib, '\n'), 0o644); werr != nil {
				err = errors.Join(err, fmt.Errorf("-out: %w", werr))
			}
		}
	}
	return err
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench cluster: "+format+"\n", args...)
}

// clusterRun is one run's processes.
type clusterRun struct {
	cfg     clusterConfig
	exe     string
	dir     string
	broker  string
	layout  clusterLayout
	nodes   []*benchNode
	workers []*benchWorker
	hc      *http.Client
	res     *ClusterResult
}

func (r *clusterRun) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logf("PROBLEM: %s", msg)
	r.res.Problems = append(r.res.Problems, msg)
}

func runCluster(ctx context.Context, cfg clusterConfig) (res *ClusterResult, err error) {
	start := time.Now()
	res = &ClusterResult{Scenario: "cluster", Problems: []string{}, Note: presenceNote, Args: map[string]any{
		"sockets": cfg.sockets, "nodes": cfg.nodes, "pubsub": cfg.pubsub, "topics": cfg.topics,
		"presence_topics": cfg.ptopics, "workers": cfg.workers, "concurrency": cfg.concurrency,
		"broadcasts": cfg.topicMsgs, "broadcast_interval_s": cfg.topicPace.Seconds(), "hold_s": cfg.hold.Seconds(), "timeout_s": cfg.timeout.Seconds(),
		"down_period_s": cfg.down.Seconds(), "phases": slices.Sorted(maps.Keys(cfg.phases)),
	}}
	res.Load1[0] = loadAvg()
	defer func() {
		res.Seconds = round3(time.Since(start).Seconds())
		res.Load1[1] = loadAvg()
		res.OK = err == nil && len(res.Problems) == 0
	}()
	exe, err := os.Executable()
	if err != nil {
		return res, fmt.Errorf("find own executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-cluster-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	r := &clusterRun{cfg: cfg, exe: exe, dir: dir, res: res, hc: &http.Client{Timeout: 30 * time.Second},
		layout: clusterLayout{Sockets: cfg.sockets, Nodes: cfg.nodes, Topics: cfg.topics, PresenceTopics: cfg.ptopics, Run: runID()}}
	defer r.hc.CloseIdleConnections()

	brokerURL, stopBroker, err := startBroker(ctx, cfg.pubsub, dir)
	if err != nil {
		return res, err
	}
	defer stopBroker()
	r.broker, res.Broker = brokerURL, brokerURL

	defer r.stopNodes()
	for k := range cfg.nodes {
		n, err := r.startNode(ctx, "node"+strconv.Itoa(k), "127.0.0.1:0")
		if err != nil {
			return res, err
		}
		r.nodes = append(r.nodes, n)
	}
	before := make([]nodeStats, len(r.nodes))
	for k, n := range r.nodes {
		if before[k], err = r.stats(ctx, n, true); err != nil {
			return res, err
		}
	}
	logf("broker %s, %d nodes up", brokerURL, len(r.nodes))

	defer r.stopWorkers()
	connectStart := time.Now()
	if err := r.startWorkers(ctx); err != nil {
		return res, err
	}
	if err := r.phaseConnect(ctx, connectStart); err != nil {
		return res, err
	}
	connectEnd := time.Now()
	if cfg.phases["presence"] {
		res.Presence = &presencePhase{Expected: cfg.sockets, Note: "converged_s: from the end of connect until every node lists all presences; idle: tracker traffic per node while idle (payload bytes)"}
		ok, seen, last, err := r.waitPresence(ctx, r.nodes, cfg.sockets)
		if err != nil {
			return res, err
		}
		res.Presence.Converged, res.Presence.Seen = ok, seen
		res.Presence.ConvergedS = round3(max(0, last.Sub(connectEnd).Seconds()))
		if !ok {
			r.problem("presence did not converge within %s: %v", cfg.timeout, seen)
		}
	}
	if cfg.phases["idle"] || cfg.phases["presence"] {
		if err := r.phaseIdle(ctx, before); err != nil {
			return res, err
		}
	}
	seq := int64(0)
	if cfg.phases["topic"] {
		if err := r.phaseTopic(ctx, &seq); err != nil {
			return res, err
		}
	}
	if cfg.phases["all"] {
		if err := r.phaseAll(ctx, &seq); err != nil {
			return res, err
		}
	}
	if cfg.phases["kill"] {
		if err := r.phaseKill(ctx); err != nil {
			return res, err
		}
	}
	if cfg.phases["storm"] {
		if err := r.phaseStorm(ctx); err != nil {
			return res, err
		}
	}
	return res, ctx.Err()
}

// --- broker ---

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// childAttrs puts a child in its own process group, killed with us.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// startBroker starts redis-server or nats-server on a free port (or uses
// the URL given) and returns its URL and a func that stops it.
func startBroker(ctx context.Context, spec, dir string) (string, func(), error) {
	if strings.Contains(spec, "://") {
		return spec, func() {}, nil
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	var cmd *exec.Cmd
	var brokerURL string
	switch spec {
	case "redis":
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			return "", nil, fmt.Errorf("-pubsub redis needs redis-server in PATH (install redis-server): %w", err)
		}
		// Transfers of a node's whole state are large: the pubsub output
		// buffer limit is raised from redis's default (32mb hard, 8mb for
		// 60 s) so that a subscriber is not dropped mid-transfer.
		cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "no", "--client-output-buffer-limit", "pubsub 512mb 128mb 60", "--loglevel", "warning")
		brokerURL = fmt.Sprintf("redis://127.0.0.1:%d", port)
	case "nats":
		bin, err := exec.LookPath("nats-server")
		if err != nil {
			return "", nil, fmt.Errorf("-pubsub nats needs nats-server in PATH (install nats-server): %w", err)
		}
		// max_payload stays at NATS's default 1 MB: the tracker splits
		// transfers into 256 KiB messages. max_pending (per-client bytes
		// the server buffers, 64 MB by default) is raised because a
		// reconnect storm sends every node's state to every node at once.
		conf := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(conf, []byte("max_pending: 268435456\n"), 0o644); err != nil {
			return "", nil, fmt.Errorf("nats config: %w", err)
		}
		cmd = exec.Command(bin, "-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
		brokerURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	default:
		return "", nil, fmt.Errorf("-pubsub %q: want redis, nats, or a redis:// or nats:// URL", spec)
	}
	cmd.SysProcAttr = childAttrs()
	logPath := filepath.Join(dir, spec+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", nil, fmt.Errorf("%s log: %w", spec, err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", spec, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("%s did not listen on %s: %w", spec, addr, errors.Join(err, ctx.Err()))
		}
		select {
		case <-done:
			out, _ := os.ReadFile(logPath)
			return "", nil, fmt.Errorf("%s exited at start: %s", spec, bytes.TrimSpace(out))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return brokerURL, stop, nil
}

// --- nodes ---

type benchNode struct {
	name, addr string
	pid        int
	done       chan struct{}
}

// startNode runs `bench -serve ADDR -pubsub URL -node NAME` and waits for it
// to listen.
func (r *clusterRun) startNode(ctx context.Context, name, addr string) (*benchNode, error) {
	args := []string{"-serve", addr, "-pubsub", r.broker, "-node", name, "-presence-topics", strconv.Itoa(r.cfg.ptopics)}
	if r.cfg.down > 0 {
		args = append(args, "-down-period", r.cfg.down.String())
	}
	if d := r.cfg.profileDir; d != "" {
		args = append(args, "-cpuprofile", filepath.Join(d, name+".cpu"), "-memprofile", filepath.Join(d, name+".heap"))
	}
	cmd := exec.Command(r.exe, args...)
	cmd.SysProcAttr = childAttrs()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	n := &benchNode{name: name, pid: cmd.Process.Pid, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br)
		_ = cmd.Wait()
		close(n.done)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	var line string
	select {
	case line = <-lines:
	case <-t.C:
	case <-ctx.Done():
	}
	// "listening on http://ADDR pid N"
	f := strings.Fields(line)
	if len(f) < 3 || !strings.HasPrefix(f[2], "http://") {
		n.kill(syscall.SIGKILL)
		return nil, fmt.Errorf("node %s did not start (first line %q): %w", name, line, ctx.Err())
	}
	n.addr = strings.TrimPrefix(f[2], "http://")
	return n, nil
}

// kill signals the node's process group and waits for it to exit.
func (n *benchNode) kill(sig syscall.Signal) {
	_ = syscall.Kill(-n.pid, sig)
	select {
	case <-n.done:
		return
	case <-time.After(20 * time.Second):
	}
	_ = syscall.Kill(-n.pid, syscall.SIGKILL)
	<-n.done
}

func (r *clusterRun) stopNodes() {
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		if n != nil {
			wg.Go(func() { n.kill(syscall.SIGTERM) })
		}
	}
	wg.Wait()
}

func (r *clusterRun) stats(ctx context.Context, n *benchNode, gc bool) (nodeStats, error) {
	q := ""
	if gc {
		q = "gc=1"
	}
	return r.statsQuery(ctx, n, q)
}

// statsQuery is GET /api/stats?query on n.
func (r *clusterRun) statsQuery(ctx context.Context, n *benchNode, query string) (nodeStats, error) {
	var st nodeStats
	u := "http://" + n.addr + "/api/stats"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, fmt.Errorf("stats %s: %w", n.name, err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return st, fmt.Errorf("stats %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("stats %s: %w", n.name, err)
	}
	return st, nil
}

func (r *clusterRun) broadcast(ctx context.Context, n *benchNode, topic string, body []byte) error {
	u := "http://" + n.addr + "/api/broadcast?topic=" + topic + "&event=b"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("broadcast to %s: %w", n.name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("broadcast to %s: %s", n.name, resp.Status)
	}
	return nil
}

// --- workers ---

type benchWorker struct {
	index int
	pid   int
	stdin io.WriteCloser
	lines chan []byte
	done  chan struct{}
}

func (r *clusterRun) startWorkers(ctx context.Context) error {
	urls := make([]string, len(r.nodes))
	for k, n := range r.nodes {
		urls[k] = "ws://" + n.addr + "/socket"
	}
	for w := range r.cfg.workers {
		cmd := exec.Command(r.exe, "cluster-worker", "-index", strconv.Itoa(w), "-workers", strconv.Itoa(r.cfg.workers),
			"-sockets", strconv.Itoa(r.cfg.sockets), "-topics", strconv.Itoa(r.cfg.topics),
			"-presence-topics", strconv.Itoa(r.cfg.ptopics), "-run", r.layout.Run, "-nodes", strings.Join(urls, ","),
			"-src", net.IPv4(127, 0, 0, byte(2+w)).String(), "-concurrency", strconv.Itoa(r.cfg.concurrency))
		cmd.SysProcAttr = childAttrs()
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return fmt.Errorf("worker %d: %w", w, err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("worker %d: %w", w, err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start worker %d: %w", w, err)
		}
		bw := &benchWorker{index: w, pid: cmd.Process.Pid, stdin: stdin, lines: make(chan []byte, 1), done: make(chan struct{})}
		go func() {
			defer close(bw.done)
			defer close(bw.lines)
			br := bufio.NewReaderSize(stdout, 1<<20)
			for {
				line, err := br.ReadBytes('\n')
				if err != nil {
					_ = cmd.Wait()
					return
				}
				bw.lines <- line
			}
		}()
		r.workers = append(r.workers, bw)
	}
	return ctx.Err()
}

// call sends one command to a worker and decodes its answer.
func (r *clusterRun) call(ctx context.Context, w *benchWorker, c workerCmd, v any) error {
	b, _ := json.Marshal(c)
	if _, err := w.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("worker %d: %s: %w", w.index, c.Cmd, err)
	}
	t := time.NewTimer(r.cfg.timeout)
	defer t.Stop()
	select {
	case line, ok := <-w.lines:
		if !ok {
			return fmt.Errorf("worker %d exited", w.index)
		}
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("worker %d: %s: %w", w.index, c.Cmd, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("worker %d: %s: no answer in %s", w.index, c.Cmd, r.cfg.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *clusterRun) stopWorkers() {
	for _, w := range r.workers {
		_, _ = w.stdin.Write([]byte(`{"cmd":"stop"}` + "\n"))
		_ = w.stdin.Close()
	}
	for _, w := range r.workers {
		go func() {
			for range w.lines { // drain answers nobody reads any more
			}
		}()
		select {
		case <-w.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-w.pid, syscall.SIGKILL)
			<-w.done
		}
	}
}

// status sums the workers' status.
func (r *clusterRun) status(ctx context.Context, since int64) (workerStatus, error) {
	sum := workerStatus{Errors: map[string]int64{}, StartNS: 1<<63 - 1}
	for _, w := range r.workers {
		var st workerStatus
		if err := r.call(ctx, w, workerCmd{Cmd: "status", Since: since}, &st); err != nil {
			return sum, err
		}
		sum.Sockets += st.Sockets
		sum.Connected += st.Connected
		sum.Joined += st.Joined
		sum.Half += st.Half
		sum.JoinedSince += st.JoinedSince
		sum.StartNS = min(sum.StartNS, st.StartNS)
		sum.LastJoinNS = max(sum.LastJoinNS, st.LastJoinNS)
		sum.Dials += st.Dials
		sum.Drops += st.Drops
		sum.HBSent += st.HBSent
		sum.HBReplies += st.HBReplies
		sum.HBTimeouts += st.HBTimeouts
		sum.ChanErrors += st.ChanErrors
		for k, v := range st.Errors {
			sum.Errors[k] += v
		}
		if sum.FirstErr == "" && st.FirstErr != "" {
			sum.FirstErr = fmt.Sprintf("worker %d: %s", w.index, st.FirstErr)
		}
	}
	return sum, nil
}

func errorsSince(now, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitJoined polls the workers until done(status) or the timeout.
func (r *clusterRun) waitJoined(ctx context.Context, since int64, done func(workerStatus) bool) (workerStatus, bool, error) {
	deadline := time.Now().Add(r.cfg.timeout)
	for {
		st, err := r.status(ctx, since)
		if err != nil {
			return st, false, err
		}
		if done(st) {
			return st, true, nil
		}
		if time.Now().After(deadline) {
			return st, false, nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return st, false, err
		}
	}
}

// --- phases ---

func (r *clusterRun) phaseConnect(ctx context.Context, start time.Time) error {
	S := r.cfg.sockets
	last := time.Now()
	st, ok, err := r.waitJoined(ctx, 0, func(st workerStatus) bool {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			logf("connect: %d/%d joined", st.Joined, S)
		}
		return st.Joined == S
	})
	if err != nil {
		return err
	}
	end := time.Now()
	if st.LastJoinNS > 0 && ok {
		end = time.Unix(0, st.LastJoinNS)
	}
	p := &connectPhase{Sockets: S, Connected: st.Joined, Seconds: round3(end.Sub(start).Seconds()),
		Dials: st.Dials, Errors: st.Errors, FirstErr: st.FirstErr}
	p.PerS = rate(int64(st.Joined), end.Sub(start))
	r.res.Connect = p
	logf("connect: %d/%d joined in %.1fs", st.Joined, S, p.Seconds)
	if !ok {
		r.problem("connect: %d of %d sockets joined within %s (first error: %s)", st.Joined, S, r.cfg.timeout, st.FirstErr)
	}
	return nil
}

// presenceSeen is the total of a node's presence counts from List.
func presenceSeen(st nodeStats) int {
	n := 0
	for _, v := range st.Presence {
		n += v
	}
	return n
}

// waitPresence polls nodes (all at once, every 50 ms) until each one's
// presence diffs leave want presences visible, then checks that List
// agrees. The time returned is that of the last change on any node, as the
// nodes dated it, so polling does not add to it.
func (r *clusterRun) waitPresence(ctx context.Context, nodes []*benchNode, want int) (bool, map[string]int, time.Time, error) {
	deadline := time.Now().Add(r.cfg.timeout)
	for {
		sts := make([]nodeStats, len(nodes))
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for k, n := range nodes {
			wg.Go(func() { sts[k], errs[k] = r.statsQuery(ctx, n, "") })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return false, nil, time.Time{}, err
		}
		seen := map[string]int{}
		all := true
		var last int64
		for k, n := range nodes {
			seen[n.name] = sts[k].PresenceSeen
			all = all && sts[k].PresenceSeen == want
			last = max(last, sts[k].PresenceChanged)
		}
		if all {
			for _, n := range nodes {
				l, d, err := r.listAgrees(ctx, n, want)
				if err != nil {
					return false, seen, time.Time{}, err
				}
				if l != want || d != want {
					r.problem("presence: %s lists %d presences and its diffs show %d, for %s after they showed %d",
						n.name, l, d, listSettle, want)
					seen[n.name] = l
					all = false
				}
			}
			return all, seen, time.Unix(0, last), nil
		}
		if time.Now().After(deadline) {
			return false, seen, time.Unix(0, last), nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return false, seen, time.Time{}, err
		}
	}
}

// listAgrees returns what n's List and diffs count once both are want, or
// after listSettle of anything else. A socket that rejoins at the
// moment of the check (its heartbeat timed out on a loaded box) leaves List
// and the diffs apart for a moment: the tracker changes its state at once
// and sends the diff after the coalescing window, or later if it is
// starved. Only a difference that outlasts that is a problem.
func (r *clusterRun) listAgrees(ctx context.Context, n *benchNode, want int) (list, diffs int, err error) {
	deadline := time.Now().Add(listSettle)
	for {
		st, err := r.statsQuery(ctx, n, "list=1")
		if err != nil {
			return 0, 0, err
		}
		list, diffs = presenceSeen(st), st.PresenceSeen
		if (list == want && diffs == want) || time.Now().After(deadline) {
			return list, diffs, nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, 0, err
		}
	}
}

// listSettle bounds how long List and the diffs may disagree before it is
// a problem: well above a starved tracker's flush delay (seconds).
const listSettle = 10 * time.Second

func (r *clusterRun) allStats(ctx context.Context, gc bool) ([]nodeStats, error) {
	out := make([]nodeStats, len(r.nodes))
	for k, n := range r.nodes {
		var err error
		if out[k], err = r.stats(ctx, n, gc); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *clusterRun) phaseIdle(ctx context.Context, before []nodeStats) error {
	ws0, err := r.status(ctx, 0)
	if err != nil {
		return err
	}
	s0, err := r.allStats(ctx, false)
	if err != nil {
		return err
	}
	logf("idle: holding %s", r.cfg.hold)
	if err := sleep(ctx, r.cfg.hold); err != nil {
		return err
	}
	s1, err := r.allStats(ctx, false)
	if err != nil {
		return err
	}
	ws1, err := r.status(ctx, 0)
	if err != nil {
		return err
	}
	if r.res.Presence != nil {
		for k, n := range r.nodes {
			dt := float64(s1[k].UnixNano-s0[k].UnixNano) / 1e9
			a, b := s0[k].PubSub, s1[k].PubSub
			if dt <= 0 || a == nil || b == nil {
				continue
			}
			per := func(x, y int64) float64 { return round3(float64(y-x) / dt) }
			r.res.Presence.Idle = append(r.res.Presence.Idle, nodeTraffic{Node: n.name,
				SentMsgsPerS: per(a.TrackerSentMsgs, b.TrackerSentMsgs), SentBytesPerS: per(a.TrackerSentBytes, b.TrackerSentBytes),
				RecvMsgsPerS: per(a.RecvMsgs, b.RecvMsgs), RecvBytesPerS: per(a.RecvBytes, b.RecvBytes),
				CPUPercent: round3((s1[k].CPUS - s0[k].CPUS) / dt * 100)})
		}
	}
	if !r.cfg.phases["idle"] {
		return nil
	}
	gc, err := r.allStats(ctx, true)
	if err != nil {
		return err
	}
	p := &idlePhase{HoldS: r.cfg.hold.Seconds(), Dropped: ws1.Drops - ws0.Drops, HeartbeatsSent: ws1.HBSent - ws0.HBSent,
		HeartbeatReplies: ws1.HBReplies - ws0.HBReplies, HeartbeatTimeouts: ws1.HBTimeouts - ws0.HBTimeouts}
	p.HeartbeatsHeld = p.Dropped == 0 && p.HeartbeatTimeouts == 0 && ws1.Joined == r.cfg.sockets
	for k, n := range r.nodes {
		g, b := gc[k], before[k]
		ni := nodeIdle{Node: n.name, Connections: g.Connections, RSSBeforeKiB: b.RSSKiB, RSSKiB: g.RSSKiB, Goroutines: g.Goroutines}
		if g.Connections > 0 {
			c := float64(g.Connections)
			ni.RSSPerSocketKiB = round3(float64(g.RSSKiB-b.RSSKiB) / c)
			ni.HeapPerSocketB = round3((float64(g.HeapInuse) - float64(b.HeapInuse)) / c)
			ni.StackPerSocketB = round3((float64(g.StackInuse) - float64(b.StackInuse)) / c)
		}
		p.Nodes = append(p.Nodes, ni)
	}
	r.res.Idle = p
	logf("idle: dropped %d, heartbeats %d sent %d replies %d timeouts", p.Dropped, p.HeartbeatsSent, p.HeartbeatReplies, p.HeartbeatTimeouts)
	if !p.HeartbeatsHeld {
		r.problem("idle: %d sockets dropped, %d heartbeat timeouts, %d of %d joined", p.Dropped, p.HeartbeatTimeouts, ws1.Joined, r.cfg.sockets)
	}
	return nil
}

// deliver sends broadcasts (topic → seqs, payload {"seq","ts","ph"}) to
// node 0 and waits until every member got every one, then reports.
func (r *clusterRun) deliver(ctx context.Context, ph int64, sends []struct {
	topic string
	seq   int64
}, expected int64, pace time.Duration) (*deliveryPhase, error) {
	n := r.nodes[0]
	expect := map[string][]int64{}
	var first int64
	for i, s := range sends {
		if i > 0 && pace > 0 {
			if err := sleep(ctx, pace); err != nil {
				return nil, err
			}
		}
		ts := time.Now().UnixNano()
		if first == 0 {
			first = ts
		}
		if err := r.broadcast(ctx, n, s.topic, benchPayload(128, "seq", s.seq, "ts", ts, "ph", ph)); err != nil {
			return nil, err
		}
		expect[s.topic] = append(expect[s.topic], s.seq)
	}
	p := &deliveryPhase{Broadcasts: len(sends), SentTo: n.name, Expected: expected}
	deadline := time.Now().Add(r.cfg.timeout)
	for {
		var sum deliveryReport
		final := false
		for _, w := range r.workers {
			var rep deliveryReport
			if err := r.call(ctx, w, workerCmd{Cmd: "report", Phase: ph, Expect: expect}, &rep); err != nil {
				return nil, err
			}
			sum.Deliveries += rep.Deliveries
		}
		if sum.Deliveries >= expected || time.Now().After(deadline) {
			final = true
		}
		if final {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	var lat []time.Duration
	var last int64
	for _, w := range r.workers {
		var rep deliveryReport
		if err := r.call(ctx, w, workerCmd{Cmd: "report", Phase: ph, Expect: expect, Lat: true}, &rep); err != nil {
			return nil, err
		}
		p.Deliveries += rep.Deliveries
		p.Lost += rep.Lost
		p.Duplicated += rep.Duplicated
		last = max(last, rep.LastNS)
		for _, us := range rep.LatUS {
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	p.Latency = summarize(lat)
	if last > 0 {
		p.LastDeliveryMS = round3(float64(last-first) / 1e6)
	}
	return p, nil
}

func (r *clusterRun) phaseTopic(ctx context.Context, seq *int64) error {
	topic := lobbyTopicName(0)
	var sends []struct {
		topic string
		seq   int64
	}
	for range r.cfg.topicMsgs {
		*seq++
		sends = append(sends, struct {
			topic string
			seq   int64
		}{topic, *seq})
	}
	members := int64(r.layout.lobbyMembers(0))
	p, err := r.deliver(ctx, 1, sends, members*int64(len(sends)), r.cfg.topicPace)
	if err != nil {
		return err
	}
	p.Topics = fmt.Sprintf("%s (%d members over %d nodes)", topic, members, min(int64(r.cfg.nodes), members))
	r.res.Topic = p
	logf("topic: %d/%d delivered, lost %d, p99 %.1f ms", p.Deliveries, p.Expected, p.Lost, p.Latency.P99)
	if p.Lost != 0 || p.Duplicated != 0 || p.Deliveries != p.Expected {
		r.problem("topic: %d of %d delivered, %d lost, %d duplicated", p.Deliveries, p.Expected, p.Lost, p.Duplicated)
	}
	return nil
}

func (r *clusterRun) phaseAll(ctx context.Context, seq *int64) error {
	var sends []struct {
		topic string
		seq   int64
	}
	for p := range r.cfg.ptopics {
		*seq++
		sends = append(sends, struct {
			topic string
			seq   int64
		}{lobbyTopicName(p), *seq})
	}
	p, err := r.deliver(ctx, 2, sends, int64(r.cfg.sockets), 0)
	if err != nil {
		return err
	}
	p.Topics = fmt.Sprintf("lobby:0..%d, one broadcast each", r.cfg.ptopics-1)
	r.res.All = p
	logf("all: %d/%d delivered, lost %d, last after %.1f ms", p.Deliveries, p.Expected, p.Lost, p.LastDeliveryMS)
	if p.Lost != 0 || p.Duplicated != 0 || p.Deliveries != p.Expected {
		r.problem("all: %d of %d delivered, %d lost, %d duplicated", p.Deliveries, p.Expected, p.Lost, p.Duplicated)
	}
	return nil
}

func (r *clusterRun) phaseKill(ctx context.Context) error {
	if len(r.nodes) < 2 {
		r.problem("kill: needs at least 2 nodes")
		return nil
	}
	k := len(r.nodes) - 1
	victim := r.nodes[k]
	survivors := r.nodes[:k]
	on := 0
	for i := range r.cfg.sockets {
		if r.layout.node(i) == k {
			on++
		}
	}
	down := r.cfg.down
	if down <= 0 {
		down = presence.DefaultDownPeriod
	}
	p := &killPhase{Node: victim.name, SocketsOnNode: on, DownPeriodS: down.Seconds()}
	r.res.Kill = p
	c0 := make([]*psCounts, len(survivors))
	for j, n := range survivors {
		st, err := r.stats(ctx, n, false)
		if err != nil {
			return err
		}
		c0[j] = st.PubSub
	}
	t0 := time.Now()
	victim.kill(syscall.SIGKILL)
	ok, seen, last, err := r.waitPresence(ctx, survivors, r.cfg.sockets-on)
	if err != nil {
		return err
	}
	p.Cleared, p.ClearedS = ok, round3(last.Sub(t0).Seconds())
	for j, n := range survivors {
		st, err := r.stats(ctx, n, false)
		if err != nil {
			return err
		}
		if a, b := c0[j], st.PubSub; a != nil && b != nil {
			p.TransfersSent += b.TransfersSent - a.TransfersSent
			p.TransfersRecv += b.TransfersRecv - a.TransfersRecv
			p.PubSubSentBytes += b.TrackerSentBytes - a.TrackerSentBytes
			p.PubSubRecvBytes += b.RecvBytes - a.RecvBytes
		}
	}
	logf("kill: %s's %d presences gone from the others in %.2fs (cleared %v)", victim.name, on, p.ClearedS, ok)
	if !ok {
		r.problem("kill: presences of %s not cleared within %s: %v", victim.name, r.cfg.timeout, seen)
	}
	// Back to full strength for the storm: the same node on the same port.
	t1 := time.Now()
	n, err := r.startNode(ctx, victim.name, victim.addr)
	if err != nil {
		return err
	}
	r.nodes[k] = n
	_, ok, err = r.waitJoined(ctx, t0.UnixNano(), func(st workerStatus) bool {
		return st.Joined == r.cfg.sockets && st.JoinedSince >= on
	})
	if err != nil {
		return err
	}
	p.Restored, p.RestoredS = ok, round3(time.Since(t1).Seconds())
	if !ok {
		r.problem("kill: the sockets of restarted %s did not all rejoin within %s", victim.name, r.cfg.timeout)
	}
	return nil
}

func (r *clusterRun) phaseStorm(ctx context.Context) error {
	S := r.cfg.sockets
	p := &stormPhase{Sockets: S}
	r.res.Storm = p
	st0, err := r.status(ctx, 0)
	if err != nil {
		return err
	}
	// Sample the nodes' CPU and RSS from /proc every 200 ms.
	var mu sync.Mutex
	pids := make([]int, len(r.nodes))
	sctx, stopSampler := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		prev := map[int]float64{}
		prevAt := time.Now()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			cur := slices.Clone(pids)
			mu.Unlock()
			now := time.Now()
			dt := now.Sub(prevAt).Seconds()
			prevAt = now
			var cpuTotal float64
			var rssTotal int64
			next := map[int]float64{}
			for _, pid := range cur {
				if pid == 0 {
					continue
				}
				cpu, err1 := procCPU(pid)
				rss, err2 := procRSS(pid)
				if err1 != nil || err2 != nil {
					continue
				}
				next[pid] = cpu
				if c0, ok := prev[pid]; ok && dt > 0 {
					pct := (cpu - c0) / dt * 100
					cpuTotal += pct
					mu.Lock()
					p.PeakCPUPercent = max(p.PeakCPUPercent, round3(pct))
					mu.Unlock()
				}
				rssTotal += rss
				mu.Lock()
				p.PeakRSSKiB = max(p.PeakRSSKiB, rss)
				mu.Unlock()
			}
			prev = next
			mu.Lock()
			p.PeakCPUPercentTotal = max(p.PeakCPUPercentTotal, round3(cpuTotal))
			p.PeakRSSKiBTotal = max(p.PeakRSSKiBTotal, rssTotal)
			mu.Unlock()
		}
	})
	defer func() {
		stopSampler()
		sampler.Wait()
	}()

	logf("storm: killing %d nodes", len(r.nodes))
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		wg.Go(func() { n.kill(syscall.SIGKILL) })
	}
	wg.Wait()
	for k, n := range r.nodes {
		nn, err := r.startNode(ctx, n.name, n.addr)
		if err != nil {
			return err
		}
		r.nodes[k] = nn
		mu.Lock()
		pids[k] = nn.pid
		mu.Unlock()
	}
	p.RestartS = round3(time.Since(t0).Seconds())
	st, ok, err := r.waitJoined(ctx, t0.UnixNano(), func(st workerStatus) bool { return st.JoinedSince == S })
	if err != nil {
		return err
	}
	p.Rejoined, p.Seconds = ok, round3(time.Since(t0).Seconds())
	p.JoinedAtEnd, p.HalfJoined = st.Joined, st.Half
	p.Dials = st.Dials - st0.Dials
	p.Errors = errorsSince(st.Errors, st0.Errors)
	p.HeartbeatTimeouts = st.HBTimeouts - st0.HBTimeouts
	logf("storm: %d/%d rejoined in %.1fs, %d half-joined, errors %v", st.JoinedSince, S, p.Seconds, p.HalfJoined, p.Errors)
	if !ok {
		p.Overloaded = true
		p.Note = fmt.Sprintf("not all sockets rejoined within %s: %d rejoined, %d half-joined; the nodes did not keep up (see errors)", r.cfg.timeout, st.JoinedSince, st.Half)
		r.problem("storm: %s", p.Note)
	} else if p.HalfJoined != 0 {
		r.problem("storm: %d sockets half-joined at the end", p.HalfJoined)
	}
	if r.cfg.phases["presence"] {
		ok, seen, last, err := r.waitPresence(ctx, r.nodes, S)
		if err != nil {
			return err
		}
		p.PresenceConverged, p.PresenceConvergedS = ok, round3(max(0, last.Sub(t0).Seconds()))
		if !ok {
			r.problem("storm: presence did not converge again: %v", seen)
		}
	}
	return nil
}
