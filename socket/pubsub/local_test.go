package pubsub_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

type counter struct {
	n    atomic.Int64
	last atomic.Pointer[pubsub.Message]
}

func (c *counter) Deliver(m *pubsub.Message) { c.n.Add(1); c.last.Store(m) }

func TestSubscribeBroadcastUnsubscribe(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	assert.Equal(t, "n1", ps.Node())
	a, b := &counter{}, &counter{}
	ps.Subscribe("room:a", a)
	ps.Subscribe("room:a", a) // idempotent
	ps.Subscribe("room:a", b)
	ps.Subscribe("room:b", b)
	assert.Equal(t, 2, ps.Subscribers("room:a"))

	m := &pubsub.Message{Topic: "room:a", Event: "e", Payload: protocol.JSONPayload([]byte(`{"x":1}`))}
	require.NoError(t, ps.Broadcast(context.Background(), m))
	assert.EqualValues(t, 1, a.n.Load())
	assert.EqualValues(t, 1, b.n.Load())

	ps.Unsubscribe("room:a", a)
	ps.LocalBroadcast(&pubsub.Message{Topic: "room:a", Event: "e"})
	assert.EqualValues(t, 1, a.n.Load())
	assert.EqualValues(t, 2, b.n.Load())
	ps.Unsubscribe("room:a", b)
	assert.Equal(t, 0, ps.Subscribers("room:a"))
}

func TestFrameEncodedOncePerSerializer(t *testing.T) {
	m := &pubsub.Message{Topic: "t", Event: "e", Payload: protocol.JSONPayload([]byte(`{"a":1}`))}
	f1, bin, err := m.Frame(protocol.V2)
	require.NoError(t, err)
	assert.False(t, bin)
	f2, _, _ := m.Frame(protocol.V2)
	assert.Same(t, &f1[0], &f2[0], "the same bytes are shared")
	v1, _, _ := m.Frame(protocol.V1)
	assert.JSONEq(t, `{"topic":"t","event":"e","payload":{"a":1},"ref":null}`, string(v1))
}

// sink is a subscriber that touches the shared frame like a connection would.
type sink struct{ bytes int }

func (s *sink) Deliver(m *pubsub.Message) {
	f, _, _ := m.Frame(protocol.V2)
	s.bytes += len(f)
}

// BenchmarkBroadcast10k measures one broadcast delivered to 10,000 local
// subscribers; allocations per op must not grow with the subscriber count.
func BenchmarkBroadcast10k(b *testing.B) {
	ps := pubsub.NewLocal("bench")
	subs := make([]*sink, 10000)
	for i := range subs {
		subs[i] = &sink{}
		ps.Subscribe("room:bench", subs[i])
	}
	payload := protocol.JSONPayload([]byte(`{"body":"` + string(make([]byte, 0)) + `hello world"}`))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ps.LocalBroadcast(&pubsub.Message{Topic: "room:bench", Event: "shout", Payload: payload})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/delivery")
}

// failing delivers locally and then fails to publish, like an adapter whose
// broker is down.
type failing struct{ *pubsub.Local }

func (f failing) Broadcast(_ context.Context, m *pubsub.Message) error {
	f.LocalBroadcast(m)
	return errors.New("broker down")
}

func TestTolerant(t *testing.T) {
	local := pubsub.NewLocal("n")
	c := &counter{}
	local.Subscribe("t", c)
	ps := pubsub.Tolerant(failing{local}, nil)
	require.NoError(t, ps.Broadcast(context.Background(), &pubsub.Message{Topic: "t", Event: "e"}))
	assert.EqualValues(t, 1, c.n.Load(), "delivered locally")
	assert.Equal(t, "n", ps.Node())
}
