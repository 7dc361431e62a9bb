package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// heartbeatInterval is phoenix.js's.
const heartbeatInterval = 30 * time.Second

// workerReport is what a conns worker prints once its sockets are joined.
type workerReport struct {
	OK       int     `json:"ok"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	LatUS    []int64 `json:"lat_us"`
	StartNS  int64   `json:"start_ns"`
	EndNS    int64   `json:"end_ns"`
}

// runConns opens N idle sockets, each joined to one bench:idle-* topic,
// spread over worker processes (re-executions of this binary) that each
// dial from their own 127.0.0.x: the file limit is per process, and each
// source address has its own ephemeral ports. Workers send heartbeats like
// phoenix.js until the parent, after -hold, has read the server's RSS.
func runConns(ctx context.Context, cfg config, res *Result) error {
	n := orDefault(cfg.n, 15000)
	workers := cfg.workers
	if workers <= 0 {
		workers = (n + cfg.perWorker - 1) / cfg.perWorker
	}
	id := runID()
	res.Sockets = n
	res.Args = map[string]any{"n": n, "workers": workers, "concurrency": cfg.concurrency, "hold_s": cfg.hold.Seconds(), "topic": "bench:idle-" + id + "-*"}
	probe := serverProbe{cfg.pid}
	res.RSSBeforeKiB = probe.rss()
	cpu0 := probe.cpu()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	procs := make([]proc, 0, workers)
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
		}
		for _, p := range procs {
			_ = p.cmd.Wait()
		}
	}()
	for w := range workers {
		share := n / workers
		if w < n%workers {
			share++
		}
		args := []string{"-worker", "-n", strconv.Itoa(share), "-url", cfg.url, "-params", cfg.params.Encode(),
			"-concurrency", strconv.Itoa(cfg.concurrency), "-timeout", cfg.timeout.String(),
			"-topic-prefix", "bench:idle-" + id + "-" + strconv.Itoa(w) + "-"}
		if ip := cfg.srcIP(w); ip != nil {
			args = append(args, "-src", ip.String())
		}
		cmd := exec.CommandContext(ctx, exe, args...)
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
		procs = append(procs, proc{cmd, stdin, bufio.NewReaderSize(stdout, 1<<20)})
	}

	var lat []time.Duration
	var start, end int64
	var fe firstErr
	for w, p := range procs {
		line, err := p.out.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("worker %d ended before reporting: %w", w, err)
		}
		var r workerReport
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("worker %d report: %w", w, err)
		}
		res.Connected += r.OK
		res.Errors += int64(r.Errors)
		if r.FirstErr != "" {
			fe.set(fmt.Errorf("worker %d: %s", w, r.FirstErr))
		}
		for _, us := range r.LatUS {
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		if start == 0 || r.StartNS < start {
			start = r.StartNS
		}
		end = max(end, r.EndNS)
	}
	res.FirstErr = fe.String()
	res.Latency = summarize(lat)
	elapsed := time.Duration(end - start)
	res.ConnectJoinPerS = rate(int64(res.Connected), elapsed)
	res.ServerCPU = round3(probe.cpu() - cpu0)
	res.CPUPerMillion = perMillion(res.ServerCPU, int64(res.Connected))

	// Idle, heartbeats flowing, then the figure.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.hold):
	}
	res.RSSAfterKiB = probe.rss()
	if res.Connected > 0 && cfg.pid != 0 {
		res.RSSPerSocket = round3(float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(res.Connected))
	}
	if res.Connected < n {
		return fmt.Errorf("%d of %d sockets joined: %s", res.Connected, n, res.FirstErr)
	}
	return nil
}

// runConnsWorker is one worker process of runConns: -n sockets from -src,
// topic names prefixed by -topic-prefix. It reports on stdout once all are
// joined, heartbeats until stdin closes, then drops its sockets.
func runConnsWorker(cfg config) error {
	hc := httpClientFrom(nil)
	if cfg.src != "" {
		ip := net.ParseIP(cfg.src)
		if ip == nil {
			return fmt.Errorf("-src %q is not an IP address", cfg.src)
		}
		hc = httpClientFrom(ip)
	}
	wsURL := cfg.wsURL()
	prefix := cfg.prefix
	conns := make([]*rawConn, cfg.n)
	lat := make([]int64, cfg.n)
	var nerr atomic.Int64
	var fe firstErr
	var feMu sync.Mutex
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range max(1, cfg.concurrency) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
				t0 := time.Now()
				c, err := dialRaw(ctx, hc, wsURL)
				if err == nil {
					if err = c.join(ctx, prefix+strconv.Itoa(i)); err != nil {
						c.close()
					}
				}
				cancel()
				if err != nil {
					nerr.Add(1)
					feMu.Lock()
					fe.set(err)
					feMu.Unlock()
					continue
				}
				lat[i] = time.Since(t0).Microseconds()
				conns[i] = c
			}
		})
	}
	wg.Wait()
	end := time.Now()

	rep := workerReport{Errors: int(nerr.Load()), FirstErr: fe.String(), StartNS: start.UnixNano(), EndNS: end.UnixNano()}
	live := conns[:0]
	for i, c := range conns {
		if c != nil {
			live = append(live, c)
			rep.LatUS = append(rep.LatUS, lat[i])
		}
	}
	rep.OK = len(live)
	var drains sync.WaitGroup
	for _, c := range live {
		drains.Go(func() { _ = c.drain() })
	}
	b, _ := json.Marshal(rep)
	if _, err := os.Stdout.Write(append(b, '\n')); err != nil {
		return err
	}

	// Heartbeats, spread evenly over the interval, until the parent is done.
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	if len(live) > 0 {
		tick := time.NewTicker(max(heartbeatInterval/time.Duration(len(live)), time.Millisecond))
		defer tick.Stop()
		deadline := time.After(2*cfg.timeout + 10*time.Minute)
	loop:
		for i := 0; ; i = (i + 1) % len(live) {
			select {
			case <-done:
				break loop
			case <-deadline:
				break loop
			case <-tick.C:
				_ = live[i].heartbeat(context.Background())
			}
		}
	}
	for _, c := range live {
		c.close()
	}
	drains.Wait()
	return nil
}
