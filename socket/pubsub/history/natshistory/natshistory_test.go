package natshistory_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/history/natshistory"
	"github.com/phxgo/phx/socket/pubsub/internal/pubsubtest"
	"github.com/phxgo/phx/socket/pubsub/nats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type node struct {
	ps    *nats.PubSub
	nc    *natsgo.Conn
	js    jetstream.JetStream
	store *natshistory.Store
}

func connect(t *testing.T, s *pubsubtest.Server) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect("nats://"+s.Addr,
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(50*time.Millisecond),
		natsgo.ReconnectJitter(0, 0))
	require.NoError(t, err)
	return nc
}

func newNode(t *testing.T, s *pubsubtest.Server, name string, opts natshistory.Options) node {
	t.Helper()
	nc := connect(t, s)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := nats.New(ctx, nc, nats.Options{Node: name, Logger: pubsubtest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ps.Close()) })
	opts.Logger = pubsubtest.Logger(t)
	store, err := natshistory.New(ctx, pubsub.Tolerant(ps, nil), opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return node{ps, nc, js, store}
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

func (r *recorder) all() []*pubsub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pubsub.Message(nil), r.got...)
}

// wait returns what r got once it has at least n messages.
func (r *recorder) wait(t *testing.T, n int) []*pubsub.Message {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.all()) >= n }, 10*time.Second, 5*time.Millisecond, "want %d messages", n)
	return r.all()
}

// waitFor returns what r got once it has a message with payload n.
func (r *recorder) waitFor(t *testing.T, n int) []*pubsub.Message {
	t.Helper()
	want := `{"n":` + strconv.Itoa(n) + `}`
	require.Eventually(t, func() bool {
		for _, m := range r.all() {
			if string(m.Payload.JSON()) == want {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "want message %d", n)
	return r.all()
}

func msg(topic string, n int) *pubsub.Message {
	return &pubsub.Message{Topic: topic, Event: "n", PosKey: "phx_pos", Payload: protocol.JSONPayload([]byte(`{"n":` + strconv.Itoa(n) + `}`))}
}

func publish(t *testing.T, n node, topic string, i int) *pubsub.Message {
	t.Helper()
	m := msg(topic, i)
	require.NoError(t, n.store.Publish(context.Background(), n.ps, m))
	return m
}

func since(t *testing.T, n node, topic string, off uint64, epoch string, limit int) history.Result {
	t.Helper()
	res, err := n.store.Since(context.Background(), topic, history.Position{Offset: off, Epoch: epoch}, limit)
	require.NoError(t, err)
	return res
}

func offsets(ms []*pubsub.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Offset
	}
	return out
}

// TestTwoNodesSeeOneOrder has both nodes publish to one topic at once:
// subscribers on both see every broadcast once, in the same offset order,
// and each node's history answers for the other's broadcasts.
func TestTwoNodesSeeOneOrder(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	var ra, rb recorder
	a.ps.Subscribe("room:1", &ra)
	b.ps.Subscribe("room:1", &rb)
	const each = 300
	var wg sync.WaitGroup
	for k, n := range []node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := msg("room:1", k*each+i)
				assert.NoError(t, n.store.Publish(context.Background(), pubsub.Tolerant(n.ps, nil), m))
				assert.NotZero(t, m.Offset)
				assert.NotEmpty(t, m.Epoch)
			}
		}()
	}
	wg.Wait()
	// The last broadcast arrives after all the others: what came before it
	// is everything, and nothing more may come.
	last := publish(t, a, "room:1", -1)
	ga, gb := ra.waitFor(t, -1), rb.waitFor(t, -1)
	require.Len(t, ga, 2*each+1, "each broadcast exactly once")
	require.Len(t, gb, 2*each+1, "each broadcast exactly once")
	assert.Equal(t, offsets(ga), offsets(gb), "one order on both nodes")
	nodes := map[string]int{}
	for i, m := range ga {
		if i > 0 {
			require.Greater(t, m.Offset, ga[i-1].Offset, "offset order")
		}
		require.Equal(t, last.Epoch, m.Epoch)
		require.Equal(t, "phx_pos", m.PosKey)
		require.Equal(t, gb[i].Payload.JSON(), m.Payload.JSON())
		nodes[m.Node]++
	}
	assert.Equal(t, map[string]int{"a": each + 1, "b": each}, nodes)
	assert.Equal(t, last.Offset, ga[2*each].Offset)
	assert.JSONEq(t, `{"n":-1,"phx_pos":{"offset":`+strconv.FormatUint(last.Offset, 10)+`,"epoch":"`+last.Epoch+`"}}`,
		string(ga[2*each].Delivered().JSON()))

	res := since(t, b, "room:1", ga[549].Offset, last.Epoch, 100)
	assert.True(t, res.Complete)
	assert.Equal(t, history.Position{Offset: last.Offset, Epoch: last.Epoch}, res.Top)
	require.Len(t, res.Messages, 2*each+1-550)
	for i, m := range res.Messages {
		assert.Equal(t, ga[550+i].Offset, m.Offset)
		assert.Equal(t, last.Epoch, m.Epoch)
		assert.Equal(t, ga[550+i].Payload.JSON(), m.Payload.JSON())
		assert.Equal(t, ga[550+i].Node, m.Node)
		assert.Equal(t, "phx_pos", m.PosKey)
	}
}

func TestSince(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	var r1 []*pubsub.Message
	for i := range 10 {
		r1 = append(r1, publish(t, a, "room:1", i))
		publish(t, a, "room:2", i)
	}
	epoch := r1[0].Epoch
	top := history.Position{Offset: r1[9].Offset, Epoch: epoch}

	res := since(t, a, "room:1", r1[3].Offset, epoch, 100)
	assert.True(t, res.Complete)
	assert.Equal(t, top, res.Top)
	assert.Equal(t, offsets(r1[4:]), offsets(res.Messages))
	for i, m := range res.Messages {
		assert.Equal(t, r1[4+i].Payload.JSON(), m.Payload.JSON())
		assert.Equal(t, epoch, m.Epoch)
		assert.Equal(t, "room:1", m.Topic)
	}

	res = since(t, a, "room:1", r1[3].Offset, epoch, 2)
	assert.False(t, res.Complete, "limited")
	assert.Equal(t, top, res.Top)
	assert.Equal(t, offsets(r1[8:]), offsets(res.Messages), "the newest")

	res = since(t, a, "room:1", r1[3].Offset, epoch, 6)
	assert.True(t, res.Complete, "exactly the limit")

	res = since(t, a, "room:1", r1[3].Offset, "other", 100)
	assert.False(t, res.Complete, "another epoch")
	assert.Empty(t, res.Messages)
	assert.Equal(t, top, res.Top)

	res = since(t, a, "room:1", r1[9].Offset+1000, epoch, 100)
	assert.False(t, res.Complete, "past the top")
	assert.Equal(t, top, res.Top)

	res = since(t, a, "room:1", r1[3].Offset, epoch, 0)
	assert.False(t, res.Complete, "missed some, none asked for")
	assert.Empty(t, res.Messages)
	assert.Equal(t, top, res.Top)

	res = since(t, a, "room:1", r1[9].Offset, epoch, 0)
	assert.True(t, res.Complete, "up to date")
	assert.Empty(t, res.Messages)

	// A topic without broadcasts is at the stream's last sequence; what it
	// gets later follows that position.
	res = since(t, a, "room:3", 0, "", 10)
	assert.False(t, res.Complete)
	assert.Equal(t, history.Position{Offset: r1[9].Offset + 1, Epoch: epoch}, res.Top, "room:2's last")
	res = since(t, a, "room:3", res.Top.Offset, epoch, 10)
	assert.True(t, res.Complete)
	assert.Empty(t, res.Messages)
	publish(t, a, "room:1", 10)
	m := publish(t, a, "room:3", 0)
	res2 := since(t, a, "room:3", res.Top.Offset, epoch, 10)
	assert.True(t, res2.Complete)
	assert.Equal(t, history.Position{Offset: m.Offset, Epoch: epoch}, res2.Top)
	require.Len(t, res2.Messages, 1)
	assert.Equal(t, m.Offset, res2.Messages[0].Offset)

	// Topics are encoded: NATS wildcards and separators are plain text.
	for _, topic := range []string{"a.b", "a.*", "a.>", "x y:z", "é"} {
		publish(t, a, topic, 1)
	}
	res = since(t, a, "a.*", m.Offset, epoch, 10)
	assert.True(t, res.Complete)
	require.Len(t, res.Messages, 1)
	assert.Equal(t, "a.*", res.Messages[0].Topic)
}

func TestTrimming(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{Options: history.Options{Size: 5}})
	var ms []*pubsub.Message
	for i := range 20 {
		ms = append(ms, publish(t, a, "room:1", i))
	}
	epoch := ms[0].Epoch
	res := since(t, a, "room:1", ms[1].Offset, epoch, 100)
	assert.False(t, res.Complete, "trimmed")
	assert.Equal(t, offsets(ms[15:]), offsets(res.Messages), "what is left")
	res = since(t, a, "room:1", ms[16].Offset, epoch, 100)
	assert.True(t, res.Complete)
	assert.Equal(t, offsets(ms[17:]), offsets(res.Messages))
	res = since(t, a, "room:1", ms[15].Offset, epoch, 100)
	assert.True(t, res.Complete, "the oldest kept")
	assert.Equal(t, offsets(ms[16:]), offsets(res.Messages))
}

// TestTrimmingBehindAnOldTopic: another topic's old broadcast keeps the
// stream's first sequence low, which must not hide that this topic's
// history was trimmed.
func TestTrimmingBehindAnOldTopic(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{Options: history.Options{Size: 5}})
	old := publish(t, a, "room:0", 0)
	var ms []*pubsub.Message
	for i := range 20 {
		ms = append(ms, publish(t, a, "room:1", i))
	}
	res := since(t, a, "room:1", ms[1].Offset, old.Epoch, 100)
	assert.False(t, res.Complete, "trimmed")
	assert.Equal(t, offsets(ms[15:]), offsets(res.Messages))
	res = since(t, a, "room:1", ms[16].Offset, old.Epoch, 100)
	assert.True(t, res.Complete)
	res = since(t, a, "room:0", old.Offset, old.Epoch, 100)
	assert.True(t, res.Complete)
	assert.Equal(t, old.Offset, res.Top.Offset)

	// Fewer than Size after a position whose own broadcast is gone: nothing
	// was trimmed or expired after it.
	b := publish(t, a, "room:2", 0)
	c := publish(t, a, "room:2", 1)
	res = since(t, a, "room:2", b.Offset-1, old.Epoch, 100)
	assert.True(t, res.Complete)
	assert.Equal(t, []uint64{b.Offset, c.Offset}, offsets(res.Messages))
}

func TestHistoryExpires(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{Options: history.Options{TTL: 300 * time.Millisecond}})
	first := publish(t, a, "room:1", 0)
	publish(t, a, "room:1", 1)
	require.Eventually(t, func() bool {
		st, err := a.js.Stream(context.Background(), natshistory.DefaultStream)
		return err == nil && st.CachedInfo().State.Msgs == 0
	}, 5*time.Second, 20*time.Millisecond)
	res := since(t, a, "room:1", first.Offset, first.Epoch, 10)
	assert.False(t, res.Complete, "the second expired")
	assert.Empty(t, res.Messages)
	assert.Equal(t, history.Position{Offset: first.Offset + 1, Epoch: first.Epoch}, res.Top, "expiry keeps the epoch")
	res = since(t, a, "room:1", first.Offset+1, first.Epoch, 10)
	assert.True(t, res.Complete, "nothing was missed")
}

// TestSinceReadsLongHistories reads a history longer than one fetch.
func TestSinceReadsLongHistories(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{Options: history.Options{Size: 5000}})
	var ms []*pubsub.Message
	for i := range 2500 {
		ms = append(ms, publish(t, a, "room:1", i))
		if i%100 == 0 {
			publish(t, a, "room:2", i)
		}
	}
	res := since(t, a, "room:1", ms[0].Offset, ms[0].Epoch, 5000)
	assert.True(t, res.Complete)
	assert.Equal(t, offsets(ms[1:]), offsets(res.Messages))
	res = since(t, a, "room:1", ms[0].Offset, ms[0].Epoch, 1500)
	assert.False(t, res.Complete)
	assert.Equal(t, offsets(ms[1000:]), offsets(res.Messages))
	assert.Equal(t, `{"n":1000}`, string(res.Messages[0].Payload.JSON()))
}

// TestFlush deletes the stream: the next broadcast starts a new history,
// which every node delivers, and positions in the old one do not recover.
func TestFlush(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	var ra, rb recorder
	a.ps.Subscribe("room:1", &ra)
	b.ps.Subscribe("room:1", &rb)
	var old *pubsub.Message
	for i := range 5 {
		old = publish(t, a, "room:1", i)
	}
	rb.wait(t, 5)
	ctx := context.Background()
	require.NoError(t, a.js.DeleteStream(ctx, natshistory.DefaultStream))

	m := publish(t, a, "room:1", 5)
	for _, r := range []*recorder{&ra, &rb} {
		got := r.waitFor(t, 5)
		require.Len(t, got, 6)
		assert.Equal(t, history.Position{Offset: 1, Epoch: m.Epoch}, history.Position{Offset: got[5].Offset, Epoch: got[5].Epoch})
	}
	m2 := publish(t, b, "room:1", 6)
	assert.Equal(t, m.Epoch, m2.Epoch)
	assert.Equal(t, uint64(2), m2.Offset)
	for _, r := range []*recorder{&ra, &rb} {
		got := r.waitFor(t, 6)
		require.Len(t, got, 7)
		assert.Equal(t, m.Epoch, got[6].Epoch)
	}

	res := since(t, b, "room:1", old.Offset, old.Epoch, 100)
	assert.False(t, res.Complete, "the old history is gone")
	assert.Empty(t, res.Messages)
	assert.Equal(t, history.Position{Offset: 2, Epoch: m.Epoch}, res.Top)
	res = since(t, b, "room:1", 1, m.Epoch, 100)
	assert.True(t, res.Complete)
	assert.Equal(t, []uint64{2}, offsets(res.Messages))

	// A query is the first to find the stream gone.
	require.NoError(t, a.js.DeleteStream(ctx, natshistory.DefaultStream))
	res = since(t, b, "room:1", 2, m.Epoch, 100)
	assert.False(t, res.Complete)
	assert.NotEqual(t, m.Epoch, res.Top.Epoch)
	assert.Zero(t, res.Top.Offset)
	m3 := publish(t, a, "room:1", 7)
	assert.Equal(t, history.Position{Offset: 1, Epoch: res.Top.Epoch}, history.Position{Offset: m3.Offset, Epoch: m3.Epoch})
	for _, r := range []*recorder{&ra, &rb} {
		got := r.waitFor(t, 7)
		require.Len(t, got, 8)
		assert.Equal(t, m3.Epoch, got[7].Epoch)
	}
}

// TestPublishNoticesRecreation: a node that missed a flush (its consumer
// was not told, as happens when the deletion races a pull) still gives the
// publisher's copy the new stream's epoch, because the acknowledged
// sequence went back.
func TestPublishNoticesRecreation(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	var ra recorder
	a.ps.Subscribe("room:1", &ra)
	var old *pubsub.Message
	for i := range 3 {
		old = publish(t, a, "room:1", i)
	}
	ra.wait(t, 3)
	require.NoError(t, a.js.DeleteStream(context.Background(), natshistory.DefaultStream))
	m := publish(t, b, "room:1", 3) // recreates the stream
	require.NotEqual(t, old.Epoch, m.Epoch)
	got := ra.waitFor(t, 3) // a's consumer reads the new stream
	require.Equal(t, m.Epoch, got[3].Epoch)

	a.store.ForgetRecreation(old.Epoch, old.Offset)
	m2 := publish(t, a, "room:1", 4)
	assert.Equal(t, history.Position{Offset: 2, Epoch: m.Epoch}, history.Position{Offset: m2.Offset, Epoch: m2.Epoch})
	got = ra.waitFor(t, 4)
	assert.Equal(t, m.Epoch, got[4].Epoch)
	// The new epoch is now the known one, and the next publish keeps it.
	m3 := publish(t, a, "room:1", 5)
	assert.Equal(t, history.Position{Offset: 3, Epoch: m.Epoch}, history.Position{Offset: m3.Offset, Epoch: m3.Epoch})
}

// TestConsumerLossResumes deletes a node's delivery consumer: the node
// starts over after the last broadcast it delivered, missing none and
// repeating none.
func TestConsumerLossResumes(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	var rb recorder
	b.ps.Subscribe("room:1", &rb)
	for i := range 25 {
		publish(t, a, "room:1", i)
	}
	rb.wait(t, 25)
	ctx := context.Background()
	st, err := a.js.Stream(ctx, natshistory.DefaultStream)
	require.NoError(t, err)
	deleted := 0
	for ci := range st.ListConsumers(ctx).Info() {
		if ci.Config.Description == "phx history delivery to node b" {
			require.NoError(t, st.DeleteConsumer(ctx, ci.Name))
			deleted++
		}
	}
	require.Equal(t, 1, deleted)
	for i := 25; i < 50; i++ {
		publish(t, a, "room:1", i)
	}
	got := rb.waitFor(t, 49)
	require.Len(t, got, 50)
	for i, m := range got {
		require.Equal(t, `{"n":`+strconv.Itoa(i)+`}`, string(m.Payload.JSON()))
		if i > 0 {
			require.Greater(t, m.Offset, got[i-1].Offset)
		}
	}
	m := publish(t, b, "room:1", 50)
	assert.Equal(t, got[0].Epoch, m.Epoch)
}

func TestNeedsTheNATSAdapter(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	err := a.store.Publish(context.Background(), pubsub.NewLocal("x"), msg("t", 1))
	assert.True(t, errors.Is(err, history.ErrUnsupported), "%v", err)
	err = a.store.Publish(context.Background(), b.ps, msg("t", 1))
	assert.True(t, errors.Is(err, history.ErrUnsupported), "another node's adapter: %v", err)
	_, err = natshistory.New(context.Background(), pubsub.NewLocal("x"), natshistory.Options{})
	assert.True(t, errors.Is(err, history.ErrUnsupported), "%v", err)
}

// TestJetStreamDown kills the server: a broadcast fails and reaches nobody;
// after the restart (the file-backed stream survives, and so does its
// epoch) broadcasting works and both nodes deliver again.
func TestJetStreamDown(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	var ra, rb recorder
	a.ps.Subscribe("t", &ra)
	b.ps.Subscribe("t", &rb)
	before := publish(t, a, "t", 0)
	ra.wait(t, 1)
	rb.wait(t, 1)

	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	// In flight as the link breaks: nats.go may keep it in its reconnect
	// buffer and store it after the restart (see the package doc).
	assert.Error(t, a.store.Publish(ctx, a.ps, msg("t", 1)))
	assert.Less(t, time.Since(start), 2500*time.Millisecond, "within the deadline")
	require.Eventually(t, func() bool { return !a.nc.IsConnected() }, 5*time.Second, 5*time.Millisecond)
	// Made once the link is known down: refused, and never delivered.
	assert.Error(t, a.store.Publish(ctx, a.ps, msg("t", 3)))

	srv.Restart()
	// Whatever a kept for the reconnect goes out first, before n=2.
	require.Eventually(t, a.nc.IsConnected, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, a.nc.Flush())
	var after *pubsub.Message
	require.Eventually(t, func() bool {
		m := msg("t", 2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if b.store.Publish(ctx, b.ps, m) != nil {
			return false
		}
		after = m
		return true
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, before.Epoch, after.Epoch, "the stream survived")
	assert.Greater(t, after.Offset, before.Offset)
	for _, r := range []*recorder{&ra, &rb} {
		got := r.waitFor(t, 2)
		for _, m := range got {
			assert.NotEqual(t, `{"n":3}`, string(m.Payload.JSON()), "a broadcast refused while down is delivered nowhere")
			if string(m.Payload.JSON()) == `{"n":1}` {
				assert.Equal(t, before.Epoch, m.Epoch, "the in-flight broadcast, if stored, has its position")
				assert.Greater(t, m.Offset, before.Offset)
			}
		}
		assert.Equal(t, after.Offset, got[len(got)-1].Offset)
	}
	res := since(t, a, "t", before.Offset, before.Epoch, 10)
	assert.True(t, res.Complete)
	assert.Equal(t, after.Offset, res.Top.Offset)
}

func TestClose(t *testing.T) {
	srv := pubsubtest.StartJetStream(t)
	a := newNode(t, srv, "a", natshistory.Options{})
	b := newNode(t, srv, "b", natshistory.Options{})
	var ra, rb recorder
	a.ps.Subscribe("t", &ra)
	b.ps.Subscribe("t", &rb)
	publish(t, a, "t", 0)
	rb.wait(t, 1)
	require.NoError(t, b.store.Close())
	require.NoError(t, b.store.Close(), "twice")
	err := b.store.Publish(context.Background(), b.ps, msg("t", 1))
	assert.True(t, errors.Is(err, pubsub.ErrClosed), "%v", err)
	for i := 1; i <= 20; i++ {
		publish(t, a, "t", i)
	}
	ra.waitFor(t, 20)
	assert.Len(t, rb.all(), 1, "nothing after Close")
}
