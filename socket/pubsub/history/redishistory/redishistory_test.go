package redishistory_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/history/redishistory"
	"github.com/phxgo/phx/socket/pubsub/internal/pubsubtest"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type node struct {
	ps     *redis.PubSub
	client *goredis.Client
	store  *redishistory.Store
}

func newNode(t *testing.T, s *pubsubtest.Server, name string, opts redishistory.Options) node {
	client := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := redis.New(ctx, client, redis.Options{Node: name, Logger: pubsubtest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, ps.Close())
		assert.NoError(t, client.Close())
	})
	return node{ps, client, redishistory.New(client, opts)}
}

type recorder struct {
	mu  sync.Mutex
	got []*pubsub.Message
}

func (r *recorder) Deliver(m *pubsub.Message) {
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
}

func (r *recorder) wait(t *testing.T, n int) []*pubsub.Message {
	t.Helper()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.got) >= n
	}, 10*time.Second, 5*time.Millisecond, "want %d messages", n)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pubsub.Message(nil), r.got...)
}

func msg(topic string, n int) *pubsub.Message {
	return &pubsub.Message{Topic: topic, Event: "n", PosKey: "phx_pos", Payload: protocol.JSONPayload([]byte(`{"n":` + strconv.Itoa(n) + `}`))}
}

// TestTwoNodesSeeOneOrder has both nodes publish to one topic at once:
// subscribers on both see every broadcast once, in offset order, and each
// node's history answers for the other's broadcasts.
func TestTwoNodesSeeOneOrder(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	a := newNode(t, srv, "a", redishistory.Options{})
	b := newNode(t, srv, "b", redishistory.Options{})
	var ra, rb recorder
	a.ps.Subscribe("room:1", &ra)
	b.ps.Subscribe("room:1", &rb)
	const each = 300
	var wg sync.WaitGroup
	for _, n := range []node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				assert.NoError(t, n.store.Publish(context.Background(), pubsub.Tolerant(n.ps, nil), msg("room:1", i)))
			}
		}()
	}
	wg.Wait()
	for _, r := range []*recorder{&ra, &rb} {
		got := r.wait(t, 2*each)
		for i, m := range got {
			require.Equal(t, uint64(i+1), m.Offset, "contiguous, in order")
			require.Equal(t, got[0].Epoch, m.Epoch)
			require.Equal(t, "phx_pos", m.PosKey)
		}
	}
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, ra.wait(t, 0), 2*each, "no duplicate")

	epoch := ra.got[0].Epoch
	res, err := b.store.Since(context.Background(), "room:1", history.Position{Offset: 550, Epoch: epoch}, 100)
	require.NoError(t, err)
	assert.True(t, res.Complete)
	assert.Equal(t, history.Position{Offset: 600, Epoch: epoch}, res.Top)
	require.Len(t, res.Messages, 50)
	for i, m := range res.Messages {
		assert.Equal(t, uint64(551+i), m.Offset)
		assert.Equal(t, ra.got[550+i].Payload.JSON(), m.Payload.JSON())
		assert.Equal(t, `{"n":`, string(m.Delivered().JSON()[:5]))
	}

	res, _ = a.store.Since(context.Background(), "room:1", history.Position{Offset: 100, Epoch: epoch}, 20)
	assert.False(t, res.Complete, "limited")
	assert.Equal(t, uint64(581), res.Messages[0].Offset, "the newest")

	res, _ = a.store.Since(context.Background(), "room:1", history.Position{Offset: 600, Epoch: epoch}, 20)
	assert.True(t, res.Complete)
	assert.Empty(t, res.Messages)
}

func TestTrimmingAndFlushEndRecovery(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	a := newNode(t, srv, "a", redishistory.Options{Options: history.Options{Size: 10}})
	ctx := context.Background()
	for i := range 500 {
		require.NoError(t, a.store.Publish(ctx, a.ps, msg("room:1", i)))
	}
	first := msg("room:2", 0)
	require.NoError(t, a.store.Publish(ctx, a.ps, first))
	assert.Equal(t, uint64(1), first.Offset, "each topic counts for itself")

	res, err := a.store.Since(ctx, "room:1", history.Position{Offset: 490, Epoch: first.Epoch}, 100)
	require.NoError(t, err)
	assert.False(t, res.Complete, "another topic's epoch")
	epoch := res.Top.Epoch

	res, _ = a.store.Since(ctx, "room:1", history.Position{Offset: 490, Epoch: epoch}, 100)
	assert.True(t, res.Complete)
	assert.Len(t, res.Messages, 10)
	res, _ = a.store.Since(ctx, "room:1", history.Position{Offset: 10, Epoch: epoch}, 1000)
	assert.False(t, res.Complete, "trimmed")
	assert.Less(t, len(res.Messages), 490)
	assert.Equal(t, uint64(500), res.Messages[len(res.Messages)-1].Offset)

	require.NoError(t, a.client.FlushAll(ctx).Err())
	res, _ = a.store.Since(ctx, "room:1", history.Position{Offset: 500, Epoch: epoch}, 100)
	assert.False(t, res.Complete, "the history was flushed")
	assert.NotEqual(t, epoch, res.Top.Epoch)
	assert.Zero(t, res.Top.Offset)
	m := msg("room:1", 0)
	require.NoError(t, a.store.Publish(ctx, a.ps, m))
	assert.Equal(t, history.Position{Offset: 1, Epoch: res.Top.Epoch}, history.Position{Offset: m.Offset, Epoch: m.Epoch},
		"the epoch the query created is the new history's")
}

func TestHistoryExpires(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	a := newNode(t, srv, "a", redishistory.Options{Options: history.Options{TTL: 300 * time.Millisecond}})
	ctx := context.Background()
	m := msg("room:1", 0)
	require.NoError(t, a.store.Publish(ctx, a.ps, m))
	ttl := a.client.PTTL(ctx, "phx:history:{room:1}:stream").Val()
	assert.Greater(t, ttl, time.Duration(0))
	require.Eventually(t, func() bool {
		return a.client.Exists(ctx, "phx:history:{room:1}:epoch").Val() == 0
	}, 5*time.Second, 20*time.Millisecond)
	res, _ := a.store.Since(ctx, "room:1", history.Position{Offset: 1, Epoch: m.Epoch}, 10)
	assert.False(t, res.Complete)
}

func TestPublishNeedsTheRedisAdapter(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	a := newNode(t, srv, "a", redishistory.Options{})
	err := a.store.Publish(context.Background(), pubsub.NewLocal("x"), msg("t", 1))
	assert.True(t, errors.Is(err, history.ErrUnsupported), "%v", err)
}

func TestPublishFailsWithoutRedis(t *testing.T) {
	srv := pubsubtest.StartRedis(t)
	a := newNode(t, srv, "a", redishistory.Options{})
	var r recorder
	a.ps.Subscribe("t", &r)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	assert.Error(t, a.store.Publish(ctx, a.ps, msg("t", 1)))
	assert.Empty(t, r.wait(t, 0), "an unnumbered broadcast is delivered nowhere")
}
