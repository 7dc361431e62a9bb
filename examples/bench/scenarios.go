package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tracker checks the delivery stream of one receiving socket: every
// message carries a unique id (bit in seen), its sender (src) and the
// sender's sequence number n, so losses, duplicates and reordering per
// sender are counted exactly. Only that socket's goroutine touches it.
type tracker struct {
	seen    []uint64
	last    []int64 // per sender, the last n seen; -1 before the first
	got     int64
	dup     int64
	ooo     int64
	lat     []time.Duration
	lastAt  int64
	sampled int
}

func newTracker(ids, senders, latCap int) *tracker {
	t := &tracker{seen: make([]uint64, (ids+63)/64), last: make([]int64, senders), lat: make([]time.Duration, 0, latCap)}
	for i := range t.last {
		t.last[i] = -1
	}
	return t
}

func (t *tracker) record(id, src, n int64, sent int64, at time.Time) {
	if id < 0 || int(id/64) >= len(t.seen) || src < 0 || int(src) >= len(t.last) {
		t.dup++ // not a message of this run: count it as an anomaly
		return
	}
	w, bit := id/64, uint64(1)<<(id%64)
	if t.seen[w]&bit != 0 {
		t.dup++
		return
	}
	t.seen[w] |= bit
	t.got++
	if n <= t.last[src] {
		t.ooo++
	} else {
		t.last[src] = n
	}
	ns := at.UnixNano()
	t.lastAt = ns
	if len(t.lat) < cap(t.lat) {
		t.lat = append(t.lat, time.Duration(ns-sent))
	}
}

// totals adds up the trackers into res; expected is per tracker.
func totals(res *Result, ts []*tracker, expected int64) (lastAt int64) {
	var lat []time.Duration
	for _, t := range ts {
		res.Deliveries += t.got
		res.Duplicated += t.dup
		res.OutOfOrder += t.ooo
		res.Lost += expected - t.got
		lat = append(lat, t.lat...)
		lastAt = max(lastAt, t.lastAt)
	}
	res.Expected = expected * int64(len(ts))
	res.Latency = summarize(lat)
	return lastAt
}

// waitFor polls cond every 5 ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// runFanout: N subscribers on one topic, K broadcasts of S bytes through
// POST /api/broadcast, one at a time (so the server sees them in order)
// and either back to back or paced at -rate per second.
func runFanout(ctx context.Context, cfg config, res *Result) error {
	n, k, size := orDefault(cfg.n, 2000), orDefault(cfg.k, 200), orDefault(cfg.size, 256)
	topic := "bench:fanout-" + runID()
	res.Sockets = n
	res.Args = map[string]any{"n": n, "k": k, "size": size, "rate": cfg.rate, "driver": cfg.driver, "topic": topic}
	ts := make([]*tracker, n)
	for i := range ts {
		ts[i] = newTracker(k, 1, k)
	}
	var total atomic.Int64
	conns, err := openMany(ctx, cfg, n, topic, k+64, func(i int, event string, p []byte, at time.Time) {
		seq, ok1 := intField(p, "seq")
		sent, ok2 := intField(p, "ts")
		if event != "fanout" || !ok1 || !ok2 {
			return
		}
		ts[i].record(seq, 0, seq, sent, at)
		total.Add(1)
	})
	if err != nil {
		return err
	}
	res.Connected = n
	defer closeAll(conns)
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go heartbeats(hbCtx, conns)

	bURL, err := cfg.broadcastURL(topic, "fanout")
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	probe := serverProbe{cfg.pid}
	cpu0 := probe.cpu()
	start := time.Now()
	var fe firstErr
	for i := range k {
		if cfg.rate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		p := benchPayload(size, "seq", int64(i), "ts", time.Now().UnixNano())
		if err := post(ctx, hc, bURL, p); err != nil {
			res.Errors++
			fe.set(err)
		}
	}
	want := int64(n) * int64(k) // assumes every post went through; errors say otherwise
	waitFor(ctx, cfg.timeout, func() bool { return total.Load() >= want })
	res.ServerCPU = round3(probe.cpu() - cpu0)
	// Let stragglers and duplicates arrive before the books are closed.
	time.Sleep(200 * time.Millisecond)
	lastAt := totals(res, ts, int64(k))
	checkFailed(res, &fe, conns)
	res.FirstErr = fe.String()
	elapsed := time.Duration(lastAt - start.UnixNano())
	res.DeliveriesPerS = rate(res.Deliveries, elapsed)
	res.CPUPerMillion = perMillion(res.ServerCPU, res.Deliveries)
	return verdict(res)
}

func verdict(res *Result) error {
	if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Errors != 0 {
		return fmt.Errorf("%d lost, %d duplicated, %d out of order, %d errors (%s)", res.Lost, res.Duplicated, res.OutOfOrder, res.Errors, res.FirstErr)
	}
	return nil
}

func post(ctx context.Context, hc *http.Client, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("broadcast: HTTP %d", resp.StatusCode)
	}
	return nil
}

// runShout: C clients on one topic; together they shout M times (the
// server's bench channel rebroadcasts each shout to all C). A client keeps
// at most -window of its own shouts unseen by itself, so the run measures
// throughput without overrunning the server's outbound queues.
func runShout(ctx context.Context, cfg config, res *Result) error {
	c, m, size := orDefault(cfg.n, 100), orDefault(cfg.k, 1000), orDefault(cfg.size, 64)
	per := (m + c - 1) / c
	m = per * c
	topic := "bench:shout-" + runID()
	res.Sockets = c
	res.Args = map[string]any{"n": c, "k": m, "size": size, "window": cfg.window, "driver": cfg.driver, "topic": topic}
	ts := make([]*tracker, c)
	own := make([]atomic.Int64, c) // per client: how many of its own shouts it has seen
	for i := range ts {
		ts[i] = newTracker(m, c, m)
	}
	var total atomic.Int64
	conns, err := openMany(ctx, cfg, c, topic, m+64, func(i int, event string, p []byte, at time.Time) {
		id, ok1 := intField(p, "id")
		src, ok2 := intField(p, "src")
		seq, ok3 := intField(p, "n")
		sent, ok4 := intField(p, "ts")
		if event != "shout" || !ok1 || !ok2 || !ok3 || !ok4 {
			return
		}
		ts[i].record(id, src, seq, sent, at)
		if src == int64(i) {
			own[i].Add(1)
		}
		total.Add(1)
	})
	if err != nil {
		return err
	}
	res.Connected = c
	defer closeAll(conns)

	probe := serverProbe{cfg.pid}
	cpu0 := probe.cpu()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fe firstErr
	for i, conn := range conns {
		wg.Go(func() {
			for j := range per {
				if !waitFor(ctx, cfg.timeout, func() bool { return int64(j)-own[i].Load() < int64(cfg.window) }) {
					mu.Lock()
					fe.set(errors.New("shout window never opened: own shouts not delivered"))
					res.Errors++
					mu.Unlock()
					return
				}
				p := benchPayload(size, "id", int64(i*per+j), "src", int64(i), "n", int64(j), "ts", time.Now().UnixNano())
				if err := conn.send("shout", p); err != nil {
					mu.Lock()
					fe.set(err)
					res.Errors++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	want := int64(c) * int64(m)
	waitFor(ctx, cfg.timeout, func() bool { return total.Load() >= want })
	res.ServerCPU = round3(probe.cpu() - cpu0)
	time.Sleep(200 * time.Millisecond)
	lastAt := totals(res, ts, int64(m))
	checkFailed(res, &fe, conns)
	res.FirstErr = fe.String()
	res.DeliveriesPerS = rate(res.Deliveries, time.Duration(lastAt-start.UnixNano()))
	res.CPUPerMillion = perMillion(res.ServerCPU, res.Deliveries)
	return verdict(res)
}

// runEcho: C clients in a closed loop, each pushing a 64-byte echo and
// waiting for its reply before the next, for -duration.
func runEcho(ctx context.Context, cfg config, res *Result) error {
	c, size, d := orDefault(cfg.n, 50), orDefault(cfg.size, 64), orDefault(cfg.duration, 10*time.Second)
	topic := "bench:echo-" + runID()
	res.Sockets = c
	res.Args = map[string]any{"n": c, "size": size, "duration_s": d.Seconds(), "driver": cfg.driver, "topic": topic}
	conns, err := openMany(ctx, cfg, c, topic, 64, nil)
	if err != nil {
		return err
	}
	res.Connected = c
	defer closeAll(conns)
	payload := benchPayload(size)

	probe := serverProbe{cfg.pid}
	cpu0 := probe.cpu()
	start := time.Now()
	stop := start.Add(d)
	lats := make([][]time.Duration, c)
	var nerr, limited atomic.Int64
	var mu sync.Mutex
	var fe firstErr
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(stop) && ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, cfg.timeout)
				t0 := time.Now()
				err := conn.request(rctx, "echo", payload)
				cancel()
				if err != nil && strings.Contains(err.Error(), "rate limited") {
					// The server's per-socket message limit answered: that
					// is its policy working, reported apart from errors.
					limited.Add(1)
					continue
				}
				if err != nil {
					// A failed socket stops: its error is the finding, and
					// retrying at full speed would only spin.
					nerr.Add(1)
					mu.Lock()
					fe.set(err)
					mu.Unlock()
					break
				}
				l = append(l, time.Since(t0))
			}
			lats[i] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.ServerCPU = round3(probe.cpu() - cpu0)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.Requests = int64(len(all))
	res.RateLimited = limited.Load()
	res.Errors = nerr.Load()
	res.FirstErr = fe.String()
	res.RequestsPerS = rate(res.Requests, elapsed)
	res.Latency = summarize(all)
	// Every request was answered, rate-limited ones with an error reply.
	res.CPUPerMillion = perMillion(res.ServerCPU, res.Requests+res.RateLimited)
	return verdict(res)
}
