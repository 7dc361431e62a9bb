package presence

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/nats"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

// TestReplicationOverRealAdapters runs trackers over the Redis and NATS
// adapters with real brokers. The adapters stamp Message.Node with their
// own node name and drop their own envelopes by it; the tracker must not
// depend on either: it names replicas in its payload, so trackers whose
// WithNode differs from the adapter's node, and two trackers sharing one
// adapter, still converge, and graceful and silent exits are seen.
func TestReplicationOverRealAdapters(t *testing.T) {
	for _, tc := range []struct {
		name string
		node func(t *testing.T, addr, name string) pubsub.PubSub
		args func(port string) []string
		bin  string
	}{
		{"redis", redisNode, func(p string) []string {
			return []string{"--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
		}, "redis-server"},
		{"nats", natsNode, func(p string) []string { return []string{"-a", "127.0.0.1", "-p", p} }, "nats-server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startBroker(t, tc.bin, tc.args)
			a, b := tc.node(t, addr, "ps-a"), tc.node(t, addr, "ps-b")
			opts := func(extra ...Option) []Option {
				return append([]Option{WithBroadcastPeriod(50 * time.Millisecond), WithDownPeriod(time.Second), WithLogger(quiet)}, extra...)
			}
			t1 := newTracker(t, a, opts(WithNode("tracker-1"))...)
			t2 := newTracker(t, b, opts(WithNode("tracker-2"))...)
			t3 := newTracker(t, b, opts()...) // named after its adapter, ps-b
			for i, tr := range []*Tracker{t1, t2, t3} {
				_, err := tr.Track(newChan("room:1"), "user"+strconv.Itoa(i+1), map[string]any{"i": i})
				require.NoError(t, err)
			}
			assert.Equal(t, 3, countMetas(converged(t, "room:1", t1, t2, t3)))

			// A graceful exit is seen at once, well within the down period.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, t1.Shutdown(ctx))
			assert.Eventually(t, func() bool {
				return len(t2.List("room:1")) == 2 && len(t3.List("room:1")) == 2
			}, 500*time.Millisecond, poll, "graceful_permdown crossed the broker")
			assert.Equal(t, 2, countMetas(converged(t, "room:1", t2, t3)))

			// A silent exit is seen after the down period.
			require.NoError(t, t2.Close())
			require.Eventually(t, func() bool { return len(t3.List("room:1")) == 1 }, 5*time.Second, poll)
			assert.Contains(t, t3.List("room:1"), "user3")
		})
	}
}

// startBroker runs bin on a free loopback port until the test ends and
// returns its address once it accepts connections.
func startBroker(t *testing.T, bin string, args func(port string) []string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	require.NoError(t, err, "install the Debian package %s", bin)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, args(port)...)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept on %s: %v", bin, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func redisNode(t *testing.T, addr, name string) pubsub.PubSub {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := redis.New(ctx, client, redis.Options{Node: name, Logger: quiet})
	require.NoError(t, err)
	// Registered before the trackers' cleanups, so it runs after them.
	t.Cleanup(func() {
		assert.NoError(t, ps.Close())
		assert.NoError(t, client.Close())
	})
	return ps
}

func natsNode(t *testing.T, addr, name string) pubsub.PubSub {
	t.Helper()
	nc, err := natsgo.Connect("nats://"+addr, natsgo.MaxReconnects(-1))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := nats.New(ctx, nc, nats.Options{Node: name, Logger: quiet})
	require.NoError(t, err, fmt.Sprintf("nats node %s", name))
	t.Cleanup(func() {
		assert.NoError(t, ps.Close())
		nc.Close()
	})
	return ps
}
