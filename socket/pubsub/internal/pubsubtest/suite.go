package pubsubtest

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// Node is a cluster adapter under test.
type Node interface {
	pubsub.PubSub
	Healthy() bool
	Close() error
}

// Syncer is implemented by nodes that need a round trip to the broker before
// their (re)subscription is known to be registered there.
type Syncer interface {
	Sync(t testing.TB)
}

// Harness adapts the suite to one adapter.
type Harness struct {
	// Start runs a broker owned by the test.
	Start func(t testing.TB) *Server
	// NewNode connects a node named name to s and closes it (and its client)
	// when the test ends.
	NewNode func(t testing.TB, s *Server, name string) Node
	// PublishFailsDuringOutage says Broadcast reports an error while the
	// broker is down (Redis) rather than buffering (NATS).
	PublishFailsDuringOutage bool
}

// Recorder is a subscriber that keeps what it receives and, like a channel
// does, skips the broadcasts sent from its own identity.
type Recorder struct {
	ID   string
	mu   sync.Mutex
	msgs []*pubsub.Message
}

// Deliver implements pubsub.Subscriber.
func (r *Recorder) Deliver(m *pubsub.Message) {
	if r.ID != "" && m.From == r.ID {
		return
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// Messages returns a copy of what was received so far.
func (r *Recorder) Messages() []*pubsub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Seqs returns the sequence numbers (first 4 bytes of a binary payload) of
// the messages received so far.
func (r *Recorder) Seqs() []int {
	var out []int
	for _, m := range r.Messages() {
		out = append(out, int(binary.BigEndian.Uint32(m.Payload.Bytes())))
	}
	return out
}

func seqMsg(topic string, seq int) *pubsub.Message {
	return &pubsub.Message{Topic: topic, Event: "seq", Payload: protocol.BinaryPayload(binary.BigEndian.AppendUint32(nil, uint32(seq)))}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle leaves time for a stray duplicate to show up before counting.
func settle() { time.Sleep(200 * time.Millisecond) }

func span(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// Run runs the adapter suite.
func Run(t *testing.T, h Harness) {
	t.Run("FanOutExactlyOnce", func(t *testing.T) { testFanOut(t, h) })
	t.Run("BroadcastFromAcrossNodes", func(t *testing.T) { testBroadcastFrom(t, h) })
	t.Run("Payloads", func(t *testing.T) { testPayloads(t, h) })
	t.Run("BrokerRestart", func(t *testing.T) { testBrokerRestart(t, h) })
	t.Run("Close", func(t *testing.T) { testClose(t, h) })
	t.Run("CloseDuringOutage", func(t *testing.T) { testCloseDuringOutage(t, h) })
}

func testFanOut(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Start(t)
	a, b, c := h.NewNode(t, s, "a"), h.NewNode(t, s, "b"), h.NewNode(t, s, "c")
	ra, rb1, rb2, rc, other := &Recorder{}, &Recorder{}, &Recorder{}, &Recorder{}, &Recorder{}
	a.Subscribe("room:1", ra)
	b.Subscribe("room:1", rb1)
	b.Subscribe("room:1", rb2)
	c.Subscribe("room:1", rc)
	b.Subscribe("room:2", other)

	const n = 50
	for i := 1; i <= n; i++ {
		require.NoError(t, a.Broadcast(ctx, seqMsg("room:1", i)))
	}
	// b also broadcasts, so every node publishes and receives.
	require.NoError(t, b.Broadcast(ctx, seqMsg("room:1", n+1)))
	for _, r := range []*Recorder{ra, rb1, rb2, rc} {
		eventually(t, "fan-out", func() bool { return len(r.Messages()) >= n+1 })
	}
	settle()
	for name, r := range map[string]*Recorder{"a": ra, "b1": rb1, "b2": rb2, "c": rc} {
		require.Len(t, r.Messages(), n+1, "%s: no duplicates", name)
		// Order holds per publisher; b's own message may land anywhere.
		var fromA []int
		for _, m := range r.Messages() {
			assert.Equal(t, "seq", m.Event, name)
			if m.Node == "a" {
				fromA = append(fromA, int(binary.BigEndian.Uint32(m.Payload.Bytes())))
			}
		}
		assert.Equal(t, span(1, n), fromA, "%s: publisher order", name)
	}
	assert.Empty(t, other.Messages(), "other topics receive nothing")
}

func testBroadcastFrom(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Start(t)
	a, b, c := h.NewNode(t, s, "a"), h.NewNode(t, s, "b"), h.NewNode(t, s, "c")
	// sock-1 sends; the same identity subscribed on another node (a socket id
	// topic joined from two nodes) must skip it too.
	senderA, senderB := &Recorder{ID: "sock-1"}, &Recorder{ID: "sock-1"}
	peerA, peerB, peerC := &Recorder{ID: "sock-2"}, &Recorder{ID: "sock-3"}, &Recorder{ID: "sock-4"}
	a.Subscribe("room:x", senderA)
	a.Subscribe("room:x", peerA)
	b.Subscribe("room:x", senderB)
	b.Subscribe("room:x", peerB)
	c.Subscribe("room:x", peerC)

	m := &pubsub.Message{Topic: "room:x", Event: "shout", From: "sock-1", Payload: protocol.JSONPayload([]byte(`{"body":"hi"}`))}
	require.NoError(t, a.Broadcast(ctx, m))
	for _, r := range []*Recorder{peerA, peerB, peerC} {
		eventually(t, "broadcast_from", func() bool { return len(r.Messages()) == 1 })
	}
	settle()
	assert.Empty(t, senderA.Messages())
	assert.Empty(t, senderB.Messages())
	for _, r := range []*Recorder{peerA, peerB, peerC} {
		require.Len(t, r.Messages(), 1)
		got := r.Messages()[0]
		assert.Equal(t, "sock-1", got.From)
		assert.Equal(t, "a", got.Node)
		assert.JSONEq(t, `{"body":"hi"}`, string(got.Payload.JSON()))
	}
}

func testPayloads(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Start(t)
	a, b := h.NewNode(t, s, "a"), h.NewNode(t, s, "b")
	r := &Recorder{}
	b.Subscribe("bin", r)

	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	sent := []protocol.Payload{
		protocol.BinaryPayload([]byte{0, 0xff, 0xfe, '\n', 0}), // not UTF-8, has NULs
		protocol.BinaryPayload(nil),
		protocol.BinaryPayload(big),
		protocol.JSONPayload([]byte(`{"s":"\u00e9\n","n":[1,2]}`)),
		{}, // zero payload travels as {}
	}
	for _, p := range sent {
		require.NoError(t, a.Broadcast(ctx, &pubsub.Message{Topic: "bin", Event: "e", Payload: p}))
	}
	eventually(t, "payloads", func() bool { return len(r.Messages()) == len(sent) })
	for i, got := range r.Messages() {
		assert.Equal(t, sent[i].IsBinary(), got.Payload.IsBinary(), i)
		assert.Equal(t, sent[i].Bytes(), got.Payload.Bytes(), i)
	}
	// The receiver's frame encodes from the decoded payload like a local one.
	_, bin, err := r.Messages()[0].Frame(protocol.V2)
	require.NoError(t, err)
	assert.True(t, bin)
}

func testBrokerRestart(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Start(t)
	a, b, c := h.NewNode(t, s, "a"), h.NewNode(t, s, "b"), h.NewNode(t, s, "c")
	ra, rb, rc := &Recorder{}, &Recorder{}, &Recorder{}
	a.Subscribe("room:r", ra)
	b.Subscribe("room:r", rb)
	c.Subscribe("room:r", rc)

	for i := 1; i <= 5; i++ {
		require.NoError(t, a.Broadcast(ctx, seqMsg("room:r", i)))
	}
	for _, r := range []*Recorder{rb, rc} {
		eventually(t, "before the outage", func() bool { return len(r.Messages()) == 5 })
	}

	s.Kill()
	for _, n := range []Node{b, c} {
		eventually(t, "outage noticed", func() bool { return !n.Healthy() })
	}
	err := a.Broadcast(ctx, seqMsg("room:r", 6))
	if h.PublishFailsDuringOutage {
		require.Error(t, err, "publish during the outage")
	} else {
		require.NoError(t, err, "publish buffered during the outage")
	}
	assert.Equal(t, span(1, 6), ra.Seqs(), "local delivery works during the outage")

	s.Restart()
	for _, n := range []Node{a, b, c} {
		eventually(t, "recovery", n.Healthy)
		if sy, ok := n.(Syncer); ok {
			sy.Sync(t)
		}
	}
	for i := 7; i <= 26; i++ {
		require.NoError(t, a.Broadcast(ctx, seqMsg("room:r", i)))
	}
	for _, r := range []*Recorder{rb, rc} {
		eventually(t, "after recovery", func() bool {
			seqs := r.Seqs()
			return len(seqs) > 0 && seqs[len(seqs)-1] == 26
		})
	}
	settle()
	assert.Equal(t, span(1, 26), ra.Seqs(), "local: every message once, in order")
	for name, r := range map[string]*Recorder{"b": rb, "c": rc} {
		seqs := r.Seqs()
		// The message sent during the outage may be lost (at-most-once) or,
		// when buffered by the client, delivered once in its place.
		want := span(1, 26)
		if !slices.Contains(seqs, 6) {
			want = slices.Delete(want, 5, 6)
		}
		assert.Equal(t, want, seqs, "%s: no duplicates, order preserved", name)
	}
}

func testClose(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Start(t)
	a, b := h.NewNode(t, s, "a"), h.NewNode(t, s, "b")
	rb := &Recorder{}
	b.Subscribe("t", rb)
	require.NoError(t, a.Broadcast(ctx, seqMsg("t", 1)))
	eventually(t, "delivery", func() bool { return len(rb.Messages()) == 1 })

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	assert.False(t, b.Healthy())
	assert.True(t, errors.Is(b.Broadcast(ctx, seqMsg("t", 2)), pubsub.ErrClosed))
	require.NoError(t, a.Broadcast(ctx, seqMsg("t", 3)))
	settle()
	assert.Equal(t, []int{1}, rb.Seqs(), "nothing delivered after Close")
}

func testCloseDuringOutage(t *testing.T, h Harness) {
	s := h.Start(t)
	a := h.NewNode(t, s, "a")
	r := &Recorder{}
	a.Subscribe("t", r)
	s.Kill()
	eventually(t, "outage noticed", func() bool { return !a.Healthy() })
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs while the broker is down")
	}
	assert.True(t, errors.Is(a.Broadcast(context.Background(), seqMsg("t", 1)), pubsub.ErrClosed))
}

// Bench publishes b.N messages of payloadSize bytes on node a and counts
// them on node b, reporting throughput and the publish-to-delivery latency
// percentiles. rate (messages per second) paces the publisher so latency is
// measured below saturation; 0 publishes as fast as Broadcast returns, which
// measures throughput and the queueing latency that comes with it.
func Bench(b *testing.B, h Harness, payloadSize, rate int) {
	ctx := context.Background()
	s := h.Start(b)
	na, nb := h.NewNode(b, s, "a"), h.NewNode(b, s, "b")
	base := time.Now()

	lat := make([]time.Duration, b.N)
	var count atomic.Int64
	done := make(chan struct{})
	nb.Subscribe("bench", &funcSubscriber{func(m *pubsub.Message) {
		sent := time.Duration(binary.BigEndian.Uint64(m.Payload.Bytes()))
		i := count.Add(1) - 1
		if int(i) < len(lat) {
			lat[i] = time.Since(base) - sent
		}
		if int(i) == len(lat)-1 {
			close(done)
		}
	}})
	payload := make([]byte, max(payloadSize, 8))

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if rate > 0 {
			// Sleep until this message's slot; a late slot is not made up
			// for by sending a burst, the rate just drops.
			if d := time.Duration(i)*time.Second/time.Duration(rate) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
		p := slices.Clone(payload)
		binary.BigEndian.PutUint64(p, uint64(time.Since(base)))
		if err := na.Broadcast(ctx, &pubsub.Message{Topic: "bench", Event: "e", Payload: protocol.BinaryPayload(p)}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("received %d of %d", count.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// funcSubscriber is a pointer so it can be a map key in Local's registry.
type funcSubscriber struct{ f func(*pubsub.Message) }

func (s *funcSubscriber) Deliver(m *pubsub.Message) { s.f(m) }
