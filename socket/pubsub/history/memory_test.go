package history

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

type sink struct{ got []*pubsub.Message }

func (s *sink) Deliver(m *pubsub.Message) { s.got = append(s.got, m) }

func msg(topic string) *pubsub.Message {
	return &pubsub.Message{Topic: topic, Event: "e", Payload: protocol.JSONPayload([]byte(`{}`))}
}

func TestMemoryNumbersDeliversAndRecovers(t *testing.T) {
	ctx := context.Background()
	ps := pubsub.NewLocal("n")
	var s sink
	ps.Subscribe("a", &s)
	st := NewMemory(Options{Size: 3})
	for range 5 {
		require.NoError(t, st.Publish(ctx, ps, msg("a")))
	}
	require.NoError(t, st.Publish(ctx, ps, msg("b")))
	require.Len(t, s.got, 5)
	epoch := s.got[0].Epoch
	for i, m := range s.got {
		assert.Equal(t, uint64(i+1), m.Offset)
		assert.Equal(t, epoch, m.Epoch)
	}

	res, err := st.Since(ctx, "a", Position{2, epoch}, 10)
	require.NoError(t, err)
	assert.True(t, res.Complete)
	assert.Equal(t, Position{5, epoch}, res.Top)
	assert.Equal(t, s.got[2:], res.Messages)

	res, _ = st.Since(ctx, "a", Position{1, epoch}, 10)
	assert.False(t, res.Complete, "offset 2 was trimmed")
	assert.Equal(t, s.got[2:], res.Messages)

	res, _ = st.Since(ctx, "a", Position{2, epoch}, 2)
	assert.False(t, res.Complete, "limited")
	assert.Equal(t, s.got[3:], res.Messages, "the newest")

	res, _ = st.Since(ctx, "a", Position{5, epoch}, 10)
	assert.True(t, res.Complete)
	assert.Empty(t, res.Messages)

	res, _ = st.Since(ctx, "a", Position{9, epoch}, 10)
	assert.False(t, res.Complete, "a position from the future")

	res, _ = st.Since(ctx, "b", Position{0, epoch}, 10)
	assert.False(t, res.Complete, "each topic has its own epoch")
	assert.NotEqual(t, epoch, res.Top.Epoch)
}

func TestMemoryHistoryExpires(t *testing.T) {
	ctx := context.Background()
	ps := pubsub.NewLocal("n")
	st := NewMemory(Options{TTL: time.Minute})
	now := time.Now()
	st.now = func() time.Time { return now }
	m := msg("a")
	require.NoError(t, st.Publish(ctx, ps, m))
	now = now.Add(59 * time.Second)
	res, _ := st.Since(ctx, "a", Position{0, m.Epoch}, 10)
	assert.True(t, res.Complete, "a query keeps the history alive")
	now = now.Add(61 * time.Second)
	res, _ = st.Since(ctx, "a", Position{0, m.Epoch}, 10)
	assert.False(t, res.Complete)
	assert.NotEqual(t, m.Epoch, res.Top.Epoch, "an expired history comes back with a new epoch")
	assert.Zero(t, res.Top.Offset)

	// Sweeping drops idle topics.
	for i := range 2000 {
		now = now.Add(2 * time.Minute)
		require.NoError(t, st.Publish(ctx, ps, msg("t"+string(rune('a'+i%26)))))
	}
	total := 0
	for i := range st.shards {
		total += len(st.shards[i].topics)
	}
	assert.Less(t, total, 100)
}

func TestMemoryRefusesClusterAdapters(t *testing.T) {
	st := NewMemory(Options{})
	err := st.Publish(context.Background(), cluster{pubsub.NewLocal("n")}, msg("a"))
	assert.True(t, errors.Is(err, ErrUnsupported), "%v", err)
	tolerant := pubsub.Tolerant(pubsub.NewLocal("n"), nil)
	assert.NoError(t, st.Publish(context.Background(), tolerant, msg("a")), "a wrapped Local is fine")
}

type cluster struct{ *pubsub.Local }
