package main

import (
	"math"
	"slices"
	"time"
)

// Latency summarises a set of latencies, in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		i = max(0, min(i, len(s)-1))
		return round3(float64(s[i]) / float64(time.Millisecond))
	}
	return Latency{N: len(s), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: q(1)}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// perMillion is CPU-seconds per million events, or 0 when there were none.
func perMillion(cpu float64, events int64) float64 {
	if events <= 0 {
		return 0
	}
	return round3(cpu / float64(events) * 1e6)
}

func rate(events int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(events) / d.Seconds())
}
