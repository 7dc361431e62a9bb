package main

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestScenarios runs every in-process scenario small, with both drivers,
// against the -serve app: the books must balance exactly.
func TestScenarios(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv, mux := benchApp()
	hs := httptest.NewServer(mux)
	defer func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
	}()
	base := config{
		url:         "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket",
		params:      url.Values{"token": {"alice"}},
		pid:         os.Getpid(), // the server is this process: exercises /proc
		timeout:     10 * time.Second,
		concurrency: 8,
		window:      5,
		topics:      3,
		life:        200 * time.Millisecond,
	}
	for _, driver := range []string{"client", "raw"} {
		cases := []struct {
			name string
			edit func(*config)
		}{
			{"fanout", func(c *config) { c.n, c.k = 20, 30 }},
			{"fanout", func(c *config) { c.n, c.k, c.rate = 5, 5, 50 }},
			{"shout", func(c *config) { c.n, c.k = 5, 50 }},
			{"echo", func(c *config) { c.n, c.duration = 3, 300*time.Millisecond }},
		}
		if driver == "client" { // churn always uses socket/client
			cases = append(cases, struct {
				name string
				edit func(*config)
			}{"churn", func(c *config) { c.rate, c.k, c.duration = 20, 20, time.Second }})
		}
		for _, tc := range cases {
			t.Run(driver+"/"+tc.name, func(t *testing.T) {
				cfg := base
				cfg.scenario, cfg.driver = tc.name, driver
				tc.edit(&cfg)
				res, err := run(context.Background(), cfg)
				require.NoError(t, err)
				assert.Zero(t, res.Errors)
				assert.Zero(t, res.Lost)
				assert.Zero(t, res.Duplicated)
				assert.Zero(t, res.OutOfOrder)
				switch tc.name {
				case "echo":
					assert.Positive(t, res.Requests)
					assert.Positive(t, res.Latency.N)
				case "churn":
					assert.Positive(t, res.Churn.Joins)
					assert.Equal(t, res.Churn.Connects, res.Churn.Disconnects)
				default:
					assert.Positive(t, res.Deliveries)
					assert.Equal(t, res.Expected, res.Deliveries)
				}
			})
		}
	}
}

func TestProcReaders(t *testing.T) {
	cpu, err := procCPU(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, cpu, 0.0)
	rss, err := procRSS(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, rss)
	_, err = procCPU(1 << 30)
	assert.Error(t, err)
}

func TestPayloadHelpers(t *testing.T) {
	p := benchPayload(64, "seq", int64(12), "ts", int64(345))
	assert.Len(t, p, 64)
	assert.True(t, strings.HasPrefix(string(p), `{"seq":12,"ts":345,"pad":"`))
	v, ok := intField(p, "ts")
	assert.True(t, ok)
	assert.Equal(t, int64(345), v)
	_, ok = intField(p, "nope")
	assert.False(t, ok)
	assert.Equal(t, `{"pad":"xx"}`, string(benchPayload(12)))
	l := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	assert.Equal(t, Latency{N: 3, P50: 2, P90: 3, P99: 3, Max: 3}, l)
}
