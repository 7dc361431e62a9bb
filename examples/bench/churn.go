package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/socket/client"
)

// churnCounts are the events of a churn run.
type churnCounts struct {
	Connects     int64 `json:"connects"`
	ConnectErrs  int64 `json:"connect_errors"`
	Joins        int64 `json:"joins"`
	JoinErrs     int64 `json:"join_errors"`
	Leaves       int64 `json:"leaves"`
	LeaveErrs    int64 `json:"leave_errors"`
	Disconnects  int64 `json:"disconnects"`
	Broadcasts   int64 `json:"broadcasts"`
	BcastErrs    int64 `json:"broadcast_errors"`
	Skipped      int64 `json:"skipped_at_cap"`
	PeakSessions int64 `json:"peak_sessions"`
}

// runChurn opens -rate sockets per second for -duration; each joins one of
// -topics bench:churn-* topics, stays -life while broadcasts arrive
// (-k per second in all, spread over the topics), leaves and disconnects.
// It is the soak of the hardening work: errors must stay 0, and the
// server's RSS after the run shows whether sessions leak.
func runChurn(ctx context.Context, cfg config, res *Result) error {
	r := orDefault(cfg.rate, 50)
	d := orDefault(cfg.duration, 60*time.Second)
	bps := orDefault(cfg.k, 20)
	limit := orDefault(cfg.n, int(r*cfg.life.Seconds()*4)+16)
	prefix := "bench:churn-" + runID() + "-"
	res.Args = map[string]any{"rate": r, "duration_s": d.Seconds(), "life_s": cfg.life.Seconds(), "topics": cfg.topics,
		"broadcasts_per_s": bps, "max_sessions": limit, "topic": prefix + "*"}
	cc := &churnCounts{}
	res.Churn = cc
	probe := serverProbe{cfg.pid}
	res.RSSBeforeKiB = probe.rss()
	cpu0 := probe.cpu()
	params := map[string]string{}
	for k := range cfg.params {
		params[k] = cfg.params.Get(k)
	}
	hc := httpClientFrom(cfg.srcIP(0))
	defer hc.CloseIdleConnections()
	var deliveries, live atomic.Int64
	var mu sync.Mutex
	var fe firstErr
	fail := func(counter *int64, err error) {
		mu.Lock()
		*counter++
		fe.set(err)
		mu.Unlock()
	}
	count := func(counter *int64) {
		mu.Lock()
		*counter++
		mu.Unlock()
	}

	session := func(i int) {
		defer live.Add(-1)
		actx, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		c, err := client.Dial(actx, cfg.url, client.Options{
			Params: params, HTTPClient: hc, Timeout: cfg.timeout,
			ReconnectAfter: func(int) time.Duration { return time.Hour },
		})
		if err != nil {
			fail(&cc.ConnectErrs, fmt.Errorf("connect: %w", err))
			return
		}
		count(&cc.Connects)
		defer func() {
			c.Close()
			count(&cc.Disconnects)
		}()
		ch := c.Channel(prefix+strconv.Itoa(i%cfg.topics), nil)
		if _, err := ch.Join(actx); err != nil {
			fail(&cc.JoinErrs, fmt.Errorf("join: %w", err))
			return
		}
		count(&cc.Joins)
		lctx, lcancel := context.WithTimeout(ctx, cfg.life)
		for {
			if _, err := ch.Next(lctx, "churn"); err != nil {
				break
			}
			deliveries.Add(1)
		}
		lcancel()
		if err := ch.Leave(actx); err != nil && ctx.Err() == nil {
			fail(&cc.LeaveErrs, fmt.Errorf("leave: %w", err))
			return
		}
		count(&cc.Leaves)
	}

	// Broadcaster.
	bctx, stopB := context.WithCancel(ctx)
	var bwg sync.WaitGroup
	bwg.Go(func() {
		hc := &http.Client{Timeout: cfg.timeout, Transport: &http.Transport{}}
		defer hc.CloseIdleConnections()
		tick := time.NewTicker(time.Second / time.Duration(bps))
		defer tick.Stop()
		for n := int64(0); ; n++ {
			select {
			case <-bctx.Done():
				return
			case <-tick.C:
			}
			u, err := cfg.broadcastURL(prefix+strconv.Itoa(rand.IntN(cfg.topics)), "churn")
			if err == nil {
				err = post(bctx, hc, u, benchPayload(64, "n", n))
			}
			if err != nil && bctx.Err() == nil {
				fail(&cc.BcastErrs, err)
				continue
			}
			count(&cc.Broadcasts)
		}
	})

	start := time.Now()
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / r))
	end := time.After(d)
loop:
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-tick.C:
		}
		if live.Load() >= int64(limit) {
			count(&cc.Skipped)
			continue
		}
		if l := live.Add(1); l > cc.PeakSessions {
			mu.Lock()
			cc.PeakSessions = max(cc.PeakSessions, l)
			mu.Unlock()
		}
		wg.Go(func() { session(i) })
	}
	tick.Stop()
	wg.Wait()
	stopB()
	bwg.Wait()
	elapsed := time.Since(start)

	res.ServerCPU = round3(probe.cpu() - cpu0)
	res.Deliveries = deliveries.Load()
	res.DeliveriesPerS = rate(res.Deliveries, elapsed)
	res.Requests = cc.Connects + cc.Joins + cc.Leaves
	res.RequestsPerS = rate(res.Requests, elapsed)
	res.CPUPerMillion = perMillion(res.ServerCPU, res.Requests+res.Deliveries)
	res.Errors = cc.ConnectErrs + cc.JoinErrs + cc.LeaveErrs + cc.BcastErrs
	res.FirstErr = fe.String()
	// Give the server a moment to finish tearing down, then read RSS.
	time.Sleep(2 * time.Second)
	res.RSSAfterKiB = probe.rss()
	if res.Errors != 0 {
		return fmt.Errorf("%d errors (%s)", res.Errors, res.FirstErr)
	}
	return nil
}
