package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestClusterSmall runs `bench cluster` at CI size on Redis and on NATS:
// 10,000 sockets over 3 nodes (the 100,000-socket scenario scaled down
// tenfold), every phase. CI installs redis-server and
// nats-server; without them the test fails rather than skips.
func TestClusterSmall(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, b := range []string{"redis-server", "nats-server"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is not installed (needed by bench cluster; CI installs redis-server and nats-server): %v", b, err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bench")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "go build")

	const sockets = 10000
	for _, ps := range []string{"redis", "nats"} {
		t.Run(ps, func(t *testing.T) {
			out := filepath.Join(dir, ps+".json")
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "cluster", "-sockets", strconv.Itoa(sockets), "-nodes", "3", "-pubsub", ps,
				"-topics", "100", "-presence-topics", "10", "-workers", "2", "-hold", "2s", "-down-period", "3s",
				"-timeout", "60s", "-out", out)
			// On timeout, let the command stop its broker, nodes and workers.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 30 * time.Second
			cmd.Stderr = os.Stderr
			err := cmd.Run()
			b, rerr := os.ReadFile(out)
			require.NoError(t, rerr, "no result (run error: %v)", err)
			var res ClusterResult
			require.NoError(t, json.Unmarshal(b, &res))
			assert.NoError(t, err)
			assert.True(t, res.OK, "problems: %v", res.Problems)

			require.NotNil(t, res.Connect)
			assert.Equal(t, sockets, res.Connect.Connected)
			require.NotNil(t, res.Idle)
			assert.True(t, res.Idle.HeartbeatsHeld)
			assert.Zero(t, res.Idle.Dropped)
			assert.Len(t, res.Idle.Nodes, 3)
			for _, p := range []*deliveryPhase{res.Topic, res.All} {
				require.NotNil(t, p)
				assert.Zero(t, p.Lost)
				assert.Zero(t, p.Duplicated)
				assert.Equal(t, p.Expected, p.Deliveries)
				assert.Positive(t, p.Latency.N)
			}
			assert.Equal(t, int64(sockets), res.All.Deliveries, "every socket gets the all-broadcast")
			require.NotNil(t, res.Presence)
			assert.True(t, res.Presence.Converged)
			require.NotNil(t, res.Kill)
			assert.True(t, res.Kill.Cleared)
			// The 3 s down period, plus up to one 1.5 s broadcast period for
			// the tick that notices it.
			assert.Less(t, res.Kill.ClearedS, 5.0)
			assert.True(t, res.Kill.Restored)
			require.NotNil(t, res.Storm)
			assert.True(t, res.Storm.Rejoined)
			assert.Zero(t, res.Storm.HalfJoined)
			assert.Equal(t, sockets, res.Storm.JoinedAtEnd)
		})
	}
}
