package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/internal/pubsubtest"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var harness = pubsubtest.Harness{
	Start:                    pubsubtest.StartRedis,
	NewNode:                  newNode,
	PublishFailsDuringOutage: true,
}

func newNode(t testing.TB, s *pubsubtest.Server, name string) pubsubtest.Node {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := redis.New(ctx, client, redis.Options{
		Node:   name,
		Logger: pubsubtest.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, ps.Close())
		assert.NoError(t, client.Close())
	})
	return ps
}

func TestAdapter(t *testing.T) { pubsubtest.Run(t, harness) }

func TestNewValidates(t *testing.T) {
	s := pubsubtest.StartRedis(t)
	client := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	defer client.Close()
	_, err := redis.New(context.Background(), client, redis.Options{})
	require.Error(t, err, "node is required")
	_, err = redis.New(context.Background(), nil, redis.Options{Node: "a"})
	require.Error(t, err)
}

func TestNewFailsWithoutBroker(t *testing.T) {
	s := pubsubtest.StartRedis(t)
	s.Kill()
	client := goredis.NewClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := redis.New(ctx, client, redis.Options{Node: "a"})
	require.Error(t, err)
}

// BenchmarkCrossNode publishes 128-byte broadcasts on one node as fast as
// Broadcast returns and receives them on another: throughput.
func BenchmarkCrossNode(b *testing.B) { pubsubtest.Bench(b, harness, 128, 0) }

// BenchmarkCrossNodePaced does the same at 5,000 messages/s: latency below
// saturation.
func BenchmarkCrossNodePaced(b *testing.B) { pubsubtest.Bench(b, harness, 128, 5000) }

func TestStats(t *testing.T) {
	ctx := context.Background()
	s := pubsubtest.StartRedis(t)
	a := newNode(t, s, "a").(*redis.PubSub)
	b := newNode(t, s, "b").(*redis.PubSub)
	r := &pubsubtest.Recorder{}
	b.Subscribe("t", r)
	require.NoError(t, a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "e"}))
	require.Eventually(t, func() bool { return len(r.Messages()) == 1 }, 5*time.Second, 10*time.Millisecond)

	s.Kill()
	require.Eventually(t, func() bool { return !b.Healthy() }, 5*time.Second, 10*time.Millisecond)
	require.Error(t, a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "e"}))
	s.Restart()
	require.Eventually(t, b.Healthy, 10*time.Second, 10*time.Millisecond)

	as := a.Stats()
	assert.EqualValues(t, 1, as.Published)
	assert.EqualValues(t, 1, as.PublishErrors)
	bs := b.Stats()
	assert.EqualValues(t, 1, bs.Received)
	assert.EqualValues(t, 1, bs.Outages)
}

// TestHalfOpenConnectionReplaced freezes the subscription's TCP traffic
// without closing it: only the health-check PING can notice, and the
// connection must be replaced once traffic flows again.
func TestHalfOpenConnectionReplaced(t *testing.T) {
	ctx := context.Background()
	s := pubsubtest.StartRedis(t)
	proxy := pubsubtest.NewProxy(t, s.Addr)
	client := goredis.NewClient(&goredis.Options{Addr: proxy.Addr})
	b, err := redis.New(ctx, client, redis.Options{
		Node:        "b",
		Logger:      pubsubtest.Logger(t),
		HealthCheck: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, b.Close())
		assert.NoError(t, client.Close())
	})
	a := newNode(t, s, "a")
	r := &pubsubtest.Recorder{}
	b.Subscribe("t", r)

	proxy.Freeze()
	require.Eventually(t, func() bool { return !b.Healthy() }, 5*time.Second, 10*time.Millisecond)
	proxy.Thaw()
	require.Eventually(t, b.Healthy, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "e"}))
	require.Eventually(t, func() bool { return len(r.Messages()) == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	assert.Len(t, r.Messages(), 1, "the replaced subscription does not duplicate")
	assert.EqualValues(t, 1, b.Stats().Outages)
}

// TestBroadcastFailsFastDuringOutage: once a publish has failed, Broadcast
// does not wait for go-redis's dial attempts again until a backoff has
// passed, so channel handlers that broadcast do not stall on an outage;
// local delivery goes on, and publishing resumes after recovery.
func TestBroadcastFailsFastDuringOutage(t *testing.T) {
	ctx := context.Background()
	s := pubsubtest.StartRedis(t)
	a := newNode(t, s, "a").(*redis.PubSub)
	b := newNode(t, s, "b").(*redis.PubSub)
	ra, rb := &pubsubtest.Recorder{}, &pubsubtest.Recorder{}
	a.Subscribe("t", ra)
	b.Subscribe("t", rb)

	s.Kill()
	require.Eventually(t, func() bool { return !a.Healthy() }, 5*time.Second, 10*time.Millisecond)
	require.Error(t, a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "e"}), "the first publish tries and fails")
	start := time.Now()
	for range 20 {
		err := a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "e"})
		require.ErrorIs(t, err, redis.ErrUnavailable)
	}
	assert.Less(t, time.Since(start), 40*time.Millisecond, "later publishes fail fast")
	assert.Len(t, ra.Messages(), 21, "local delivery goes on")

	s.Restart()
	require.Eventually(t, func() bool { return a.Healthy() && b.Healthy() }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "after"}), "the breaker lets a publish through once subscribed again")
	require.Eventually(t, func() bool { return len(rb.Messages()) == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, "after", rb.Messages()[0].Event)
	assert.EqualValues(t, 21, a.Stats().PublishErrors)
}
