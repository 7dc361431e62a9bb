// Command bench is a load generator for Phoenix Channels servers: phx apps,
// and Phoenix itself. It drives a server over WebSocket on the spec of
// examples/conformance (topics bench:*, POST /api/broadcast) and prints one
// JSON result per run. With -pid it samples the server process from /proc:
// CPU-seconds (utime+stime) per million deliveries or requests, which stays
// comparable when the generator, on the same cores, is the bottleneck; and
// VmRSS per idle socket.
//
//	go run ./examples/bench -scenario conns  -n 15000 -pid PID
//	go run ./examples/bench -scenario fanout -n 2000 -k 200 -size 256 -pid PID
//	go run ./examples/bench -scenario fanout -n 2000 -k 100 -rate 5 -pid PID
//	go run ./examples/bench -scenario shout  -n 100 -k 1000 -pid PID
//	go run ./examples/bench -scenario echo   -n 50 -duration 10s -pid PID
//	go run ./examples/bench -scenario churn  -rate 50 -duration 60s -pid PID
//
// -serve ADDR runs a small phx server with the bench:* routes instead, for
// profiling the server side with -cpuprofile. See docs/benchmarks.md for
// the method and the limits (file descriptors, source addresses, workers).
//
// bench cluster runs a multi-node scale scenario on this machine and prints
// one JSON result: it starts its own redis-server or nats-server, -nodes
// server processes (-serve with -pubsub and a presence tracker) and worker
// processes holding the sockets, runs the phases connect, idle, topic, all,
// presence, kill and storm, and stops everything at the end (docs/scaling.md):
//
//	go run ./examples/bench cluster -sockets 100000 -nodes 6 -pubsub redis
//	go run ./examples/bench cluster -sockets 10000 -nodes 3 -pubsub nats -hold 5s -out result.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

type config struct {
	scenario    string
	url         string // the socket mount, ws://host:port/socket
	params      url.Values
	pid         int
	n           int // sockets, subscribers or clients
	k           int // broadcasts or shouts
	size        int // payload bytes
	rate        float64
	duration    time.Duration
	hold        time.Duration
	timeout     time.Duration
	concurrency int
	workers     int
	perWorker   int
	srcBase     int // first source address is 127.0.0.srcBase
	life        time.Duration
	topics      int
	window      int
	driver      string
	bcastURL    string
	worker      bool
	src         string
	prefix      string
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "cluster":
			if err := runClusterCmd(os.Args[2:]); err != nil {
				fatal(err)
			}
			return
		case "cluster-worker":
			debug.SetGCPercent(400)
			if err := runClusterWorker(os.Args[2:]); err != nil {
				fatal(err)
			}
			return
		}
	}
	var cfg config
	var params, serve, cpuprofile, memprofile string
	var nopts nodeOptions
	flag.StringVar(&cfg.scenario, "scenario", "", "conns, fanout, shout, echo or churn")
	flag.StringVar(&cfg.url, "url", "ws://127.0.0.1:4000/socket", "socket mount URL of the server")
	flag.StringVar(&params, "params", "token=alice", "connect params (query string)")
	flag.IntVar(&cfg.pid, "pid", 0, "server process id, for CPU and RSS from /proc (0: none)")
	flag.IntVar(&cfg.n, "n", 0, "sockets (conns), subscribers (fanout), clients (shout, echo), concurrent sessions cap (churn); 0: scenario default")
	flag.IntVar(&cfg.k, "k", 0, "broadcasts (fanout) or shouts (shout); 0: scenario default")
	flag.IntVar(&cfg.size, "size", 0, "payload bytes; 0: scenario default (256 fanout, 64 echo and shout)")
	flag.Float64Var(&cfg.rate, "rate", 0, "fanout: broadcasts per second (0: unpaced); churn: connects per second")
	flag.DurationVar(&cfg.duration, "duration", 0, "echo and churn: how long to run (default 10s echo, 60s churn)")
	flag.DurationVar(&cfg.hold, "hold", 35*time.Second, "conns: idle time with heartbeats before RSS is read")
	flag.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "bound on every wait (joins, deliveries, drains)")
	flag.IntVar(&cfg.concurrency, "concurrency", 32, "conns: connects in flight per worker")
	flag.IntVar(&cfg.workers, "workers", 0, "conns: worker processes (0: one per -per-worker sockets)")
	flag.IntVar(&cfg.perWorker, "per-worker", 8000, "conns: sockets per worker process (the file limit is per process)")
	flag.IntVar(&cfg.srcBase, "src-base", 2, "source addresses start at 127.0.0.N, one per worker (0: kernel's choice)")
	flag.DurationVar(&cfg.life, "life", 2*time.Second, "churn: how long each socket stays joined")
	flag.IntVar(&cfg.topics, "topics", 10, "churn: topics sessions join and broadcasts go to")
	flag.IntVar(&cfg.window, "window", 10, "shout: shouts a client may have in flight (bounds the server's queues)")
	flag.StringVar(&cfg.driver, "driver", "client", "fanout, shout, echo: socket/client or raw (lean coder/websocket driver)")
	flag.StringVar(&cfg.bcastURL, "broadcast-url", "", "broadcast endpoint (default http://HOST/api/broadcast of -url)")
	flag.BoolVar(&cfg.worker, "worker", false, "internal: run as a conns worker process")
	flag.StringVar(&cfg.src, "src", "", "internal: worker source address")
	flag.StringVar(&cfg.prefix, "topic-prefix", "", "internal: worker topic prefix")
	flag.StringVar(&serve, "serve", "", "run a phx server with the bench:* routes on ADDR instead of generating load")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of this process (the generator, or with -serve the server)")
	flag.StringVar(&memprofile, "memprofile", "", "with -serve: write a heap profile on SIGUSR1")
	flag.StringVar(&nopts.pubsubURL, "pubsub", "", "with -serve: run as a cluster node on the redis://… or nats://… PubSub (bench cluster)")
	flag.StringVar(&nopts.node, "node", "", "with -pubsub: node name")
	flag.IntVar(&nopts.presenceTopics, "presence-topics", 10, "with -pubsub: presence topics counted by GET /api/stats")
	flag.DurationVar(&nopts.down, "down-period", 0, "with -pubsub: presence tracker down period (0: the package default)")
	flag.Parse()

	var err error
	if cfg.params, err = url.ParseQuery(params); err != nil {
		fatal(fmt.Errorf("-params: %w", err))
	}
	if serve != "" {
		var np *nodeOptions
		if nopts.pubsubURL != "" {
			np = &nopts
		}
		if err := runServer(serve, cpuprofile, memprofile, np); err != nil {
			fatal(err)
		}
		return
	}
	// The generator trades memory (plentiful here) for fewer collections,
	// whose pauses would otherwise land in the server's latency figures.
	debug.SetGCPercent(400)
	if cfg.worker {
		if err := runConnsWorker(cfg); err != nil {
			fatal(err)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfile, err := startProfile(cpuprofile)
	if err != nil {
		fatal(err)
	}
	res, err := run(ctx, cfg)
	stopProfile()
	if res != nil {
		enc := json.NewEncoder(os.Stdout)
		_ = enc.Encode(res)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// Result is the JSON line a run prints. Fields that do not apply to a
// scenario are omitted.
type Result struct {
	Scenario string         `json:"scenario"`
	URL      string         `json:"url"`
	Args     map[string]any `json:"args"`
	Load1    [2]float64     `json:"load1"` // 1-minute load average at start and end
	Seconds  float64        `json:"seconds"`

	Sockets   int    `json:"sockets,omitempty"`
	Connected int    `json:"connected,omitempty"`
	Errors    int64  `json:"errors"`
	FirstErr  string `json:"first_error,omitempty"`

	Deliveries      int64   `json:"deliveries,omitempty"`
	Expected        int64   `json:"expected,omitempty"`
	Lost            int64   `json:"lost"`
	Duplicated      int64   `json:"duplicated"`
	OutOfOrder      int64   `json:"out_of_order"`
	DeliveriesPerS  float64 `json:"deliveries_per_s,omitempty"`
	Requests        int64   `json:"requests,omitempty"`
	RateLimited     int64   `json:"rate_limited,omitempty"` // echo: requests answered {"reason":"rate limited"}
	RequestsPerS    float64 `json:"requests_per_s,omitempty"`
	ConnectJoinPerS float64 `json:"connect_join_per_s,omitempty"`
	Latency         Latency `json:"latency"`

	ServerCPU     float64 `json:"server_cpu_s,omitempty"`
	CPUPerMillion float64 `json:"server_cpu_s_per_million,omitempty"`
	RSSBeforeKiB  int64   `json:"server_rss_before_kib,omitempty"`
	RSSAfterKiB   int64   `json:"server_rss_after_kib,omitempty"`
	RSSPerSocket  float64 `json:"server_rss_per_socket_kib,omitempty"`
	// GeneratorCPU is this process's own CPU-seconds over the whole run
	// (setup included; conns workers not included): on a shared machine
	// it is the share of the cores the server did not get.
	GeneratorCPU float64 `json:"generator_cpu_s,omitempty"`

	Churn *churnCounts `json:"churn,omitempty"`
}

func run(ctx context.Context, cfg config) (*Result, error) {
	res := &Result{Scenario: cfg.scenario, URL: cfg.url, Args: map[string]any{}}
	res.Load1[0] = loadAvg()
	self := serverProbe{os.Getpid()}
	gen0 := self.cpu()
	start := time.Now()
	var err error
	switch cfg.scenario {
	case "conns":
		err = runConns(ctx, cfg, res)
	case "fanout":
		err = runFanout(ctx, cfg, res)
	case "shout":
		err = runShout(ctx, cfg, res)
	case "echo":
		err = runEcho(ctx, cfg, res)
	case "churn":
		err = runChurn(ctx, cfg, res)
	default:
		return nil, fmt.Errorf("unknown -scenario %q (conns, fanout, shout, echo, churn)", cfg.scenario)
	}
	res.Seconds = round3(time.Since(start).Seconds())
	res.GeneratorCPU = round3(self.cpu() - gen0)
	res.Load1[1] = loadAvg()
	return res, err
}

// wsURL is the WebSocket endpoint with the connect params and vsn 2.0.0.
func (cfg config) wsURL() string {
	q := url.Values{}
	for k, v := range cfg.params {
		q[k] = v
	}
	q.Set("vsn", "2.0.0")
	return strings.TrimRight(cfg.url, "/") + "/websocket?" + q.Encode()
}

// broadcastURL is POST /api/broadcast on the socket's host.
func (cfg config) broadcastURL(topic, event string) (string, error) {
	base := cfg.bcastURL
	if base == "" {
		u, err := url.Parse(cfg.url)
		if err != nil {
			return "", fmt.Errorf("-url: %w", err)
		}
		scheme := "http"
		if u.Scheme == "wss" || u.Scheme == "https" {
			scheme = "https"
		}
		base = scheme + "://" + u.Host + "/api/broadcast"
	}
	return base + "?" + url.Values{"topic": {topic}, "event": {event}}.Encode(), nil
}

// srcIP is the source address of worker i (nil: the kernel's choice).
func (cfg config) srcIP(i int) net.IP {
	if cfg.srcBase <= 0 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(cfg.srcBase+i))
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// runID makes topic names unique per run, so that runs against a long-lived
// server never see each other's subscribers.
func runID() string { return fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff) }

// firstErr keeps the first error of many, for the report.
type firstErr struct {
	err error
}

func (f *firstErr) set(err error) {
	if f.err == nil && err != nil && !errors.Is(err, context.Canceled) {
		f.err = err
	}
}

func (f *firstErr) String() string {
	if f.err == nil {
		return ""
	}
	return f.err.Error()
}

// startProfile starts a CPU profile to path; the returned func stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
