package nats_test

import (
	"context"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/internal/pubsubtest"
	"github.com/phxgo/phx/socket/pubsub/nats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var harness = pubsubtest.Harness{
	Start:   pubsubtest.StartNATS,
	NewNode: newNode,
}

// node adds the round trip the suite needs after a reconnect: nats.go
// resends SUB before reporting the connection up, but only a PING/PONG
// proves the server has processed it.
type node struct {
	*nats.PubSub
	nc *natsgo.Conn
}

func (n node) Sync(t testing.TB) { require.NoError(t, n.nc.Flush()) }

func connect(t testing.TB, s *pubsubtest.Server) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect("nats://"+s.Addr,
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(50*time.Millisecond),
		natsgo.ReconnectJitter(0, 0))
	require.NoError(t, err)
	return nc
}

func newNode(t testing.TB, s *pubsubtest.Server, name string) pubsubtest.Node {
	t.Helper()
	nc := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := nats.New(ctx, nc, nats.Options{
		Node:   name,
		Logger: pubsubtest.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, ps.Close())
		nc.Close()
	})
	return node{ps, nc}
}

func TestAdapter(t *testing.T) { pubsubtest.Run(t, harness) }

func TestNewValidates(t *testing.T) {
	s := pubsubtest.StartNATS(t)
	nc := connect(t, s)
	defer nc.Close()
	_, err := nats.New(context.Background(), nc, nats.Options{})
	require.Error(t, err, "node is required")
	_, err = nats.New(context.Background(), nil, nats.Options{Node: "a"})
	require.Error(t, err)
}

func TestStatsAndHandlers(t *testing.T) {
	ctx := context.Background()
	s := pubsubtest.StartNATS(t)
	userReconnects := make(chan struct{}, 1)
	nc, err := natsgo.Connect("nats://"+s.Addr,
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(50*time.Millisecond),
		natsgo.ReconnectHandler(func(*natsgo.Conn) { userReconnects <- struct{}{} }))
	require.NoError(t, err)
	defer nc.Close()
	b, err := nats.New(ctx, nc, nats.Options{Node: "b", Logger: pubsubtest.Logger(t)})
	require.NoError(t, err)
	a := newNode(t, s, "a").(node)

	r := &pubsubtest.Recorder{}
	b.Subscribe("t", r)
	require.NoError(t, a.Broadcast(ctx, &pubsub.Message{Topic: "t", Event: "e"}))
	require.Eventually(t, func() bool { return len(r.Messages()) == 1 }, 5*time.Second, 10*time.Millisecond)

	s.Kill()
	require.Eventually(t, func() bool { return !b.Healthy() }, 5*time.Second, 10*time.Millisecond)
	s.Restart()
	select {
	case <-userReconnects: // the application's own handler still runs
	case <-time.After(10 * time.Second):
		t.Fatal("the connection's reconnect handler was not chained")
	}
	require.Eventually(t, b.Healthy, 10*time.Second, 10*time.Millisecond)

	st := b.Stats()
	assert.EqualValues(t, 1, st.Received)
	assert.EqualValues(t, 1, st.Outages)
	assert.EqualValues(t, 1, a.Stats().Published)
	require.NoError(t, b.Close())
	assert.NotNil(t, nc.ReconnectHandler(), "Close restores the application's handler")
}

// BenchmarkCrossNode publishes 128-byte broadcasts on one node as fast as
// Broadcast returns and receives them on another: throughput.
func BenchmarkCrossNode(b *testing.B) { pubsubtest.Bench(b, harness, 128, 0) }

// BenchmarkCrossNodePaced does the same at 5,000 messages/s: latency below
// saturation.
func BenchmarkCrossNodePaced(b *testing.B) { pubsubtest.Bench(b, harness, 128, 5000) }
