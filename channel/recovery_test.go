package channel_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
)

// feed is a recoverable channel: "say" broadcasts {"n": n}.
type feed struct{}

func (feed) Join(*channel.Context[struct{}], channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]string{"hello": "feed"}), nil
}

func (feed) HandleIn(c *channel.Context[struct{}], event string, p channel.Payload) (channel.Result, error) {
	return channel.NoReply(), c.Broadcast("n", p)
}

func (feed) HandleOut(c *channel.Context[struct{}], event string, p channel.Payload) (channel.Result, error) {
	return channel.NoReply(), c.Push(event+"_out", p)
}

// wire is a connection seen from the client: every frame, decoded, in order.
type wire struct {
	mu     sync.Mutex
	frames []protocol.Message
	more   chan struct{}
}

func (w *wire) Send(data []byte, binary bool) {
	m, err := protocol.V2.Decode(data, binary)
	if err != nil {
		panic(err)
	}
	w.mu.Lock()
	w.frames = append(w.frames, m)
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
}

// await returns the frames once n have arrived.
func (w *wire) await(t *testing.T, n int) []protocol.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		if len(w.frames) >= n {
			f := append([]protocol.Message(nil), w.frames...)
			w.mu.Unlock()
			return f
		}
		got := len(w.frames)
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d frames, want %d", got, n)
		}
	}
}

type pos struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

type feedMsg struct {
	N   int `json:"n"`
	Pos pos `json:"phx_pos"`
}

type joinReply struct {
	Hello     string `json:"hello"`
	Pos       pos    `json:"phx_pos"`
	Recovered bool   `json:"recovered"`
}

type rig struct {
	ps     *pubsub.Local
	rec    *channel.Recovery
	router *channel.Router[struct{}]
}

func newRig(opts history.Options, ropts channel.RecoveryOptions, routeOpts ...channel.RouteOption) *rig {
	r := &rig{ps: pubsub.NewLocal("n1"), rec: channel.NewRecovery(history.NewMemory(opts), ropts)}
	r.router = channel.NewRouter[struct{}]()
	r.router.Handle("feed:*", func() channel.Handler[struct{}] { return feed{} }, append(routeOpts, channel.Recoverable(r.rec))...)
	return r
}

func (r *rig) connect(t *testing.T) (*channel.Session[struct{}], *wire) {
	w := &wire{more: make(chan struct{}, 1)}
	s := channel.NewSession(channel.SessionConfig[struct{}]{
		Router: r.router, ID: "c" + strconv.Itoa(int(time.Now().UnixNano()%1e6)), Transport: "test",
		PubSub: r.ps, Serializer: protocol.V2, Out: w,
	})
	t.Cleanup(func() { s.Close(channel.Closed); s.Wait() })
	return s, w
}

func (r *rig) publish(t *testing.T, topic string, from, to int) {
	t.Helper()
	for n := from; n <= to; n++ {
		require.NoError(t, r.rec.Broadcast(context.Background(), r.ps, topic, "n", map[string]int{"n": n}))
	}
}

func join(s *channel.Session[struct{}], topic string, params any) {
	p, _ := protocol.Marshal(params)
	s.Handle(protocol.Message{JoinRef: protocol.StringRef("1"), Ref: protocol.StringRef("1"), Topic: topic, Event: protocol.EventJoin, Payload: p})
}

func decodeReply(t *testing.T, f protocol.Message) joinReply {
	t.Helper()
	require.Equal(t, protocol.EventReply, f.Event)
	var r struct {
		Status   string    `json:"status"`
		Response joinReply `json:"response"`
	}
	require.NoError(t, f.Payload.Decode(&r))
	require.Equal(t, "ok", r.Status)
	return r.Response
}

func decodeFeed(t *testing.T, f protocol.Message) feedMsg {
	t.Helper()
	require.Equal(t, "n", f.Event, "frame %s %s", f.Event, f.Payload)
	var m feedMsg
	require.NoError(t, f.Payload.Decode(&m))
	return m
}

func TestRecoverableBroadcastsCarryTheirPosition(t *testing.T) {
	r := newRig(history.Options{}, channel.RecoveryOptions{})
	s, w := r.connect(t)
	join(s, "feed:1", nil)
	reply := decodeReply(t, w.await(t, 1)[0])
	assert.Equal(t, "feed", reply.Hello, "the handler's reply is kept")
	assert.False(t, reply.Recovered, "a join without a position recovers nothing")
	assert.Zero(t, reply.Pos.Offset)
	require.Len(t, reply.Pos.Epoch, 16)

	r.publish(t, "feed:1", 1, 3)
	frames := w.await(t, 4)
	for i, f := range frames[1:] {
		m := decodeFeed(t, f)
		assert.Equal(t, i+1, m.N)
		assert.Equal(t, pos{uint64(i + 1), reply.Pos.Epoch}, m.Pos)
	}
}

func TestRejoinReplaysWhatWasMissedThenLive(t *testing.T) {
	r := newRig(history.Options{}, channel.RecoveryOptions{})
	r.publish(t, "feed:1", 1, 10)
	_, w0 := r.connect(t)
	_ = w0
	s, w := r.connect(t)
	epoch := historyEpoch(t, r, "feed:1")
	join(s, "feed:1", map[string]any{"since": pos{4, epoch}})
	r.publish(t, "feed:1", 11, 12)
	frames := w.await(t, 1+8)
	reply := decodeReply(t, frames[0])
	assert.True(t, reply.Recovered)
	assert.Equal(t, pos{10, epoch}, reply.Pos)
	for i, f := range frames[1:] {
		assert.Equal(t, 5+i, decodeFeed(t, f).N, "replay, then live, in order")
	}
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, w.await(t, 9), 9, "no duplicate")
}

func historyEpoch(t *testing.T, r *rig, topic string) string {
	s, w := r.connect(t)
	join(s, topic, nil)
	return decodeReply(t, w.await(t, 1)[0]).Pos.Epoch
}

func TestRecoveryFailsOnAnotherEpochOrTooLongAGap(t *testing.T) {
	r := newRig(history.Options{Size: 5}, channel.RecoveryOptions{})
	r.publish(t, "feed:1", 1, 12)
	epoch := historyEpoch(t, r, "feed:1")

	s, w := r.connect(t)
	join(s, "feed:1", map[string]any{"since": pos{3, "an-old-epoch"}})
	reply := decodeReply(t, w.await(t, 1)[0])
	assert.False(t, reply.Recovered, "the epoch changed")
	assert.Equal(t, pos{12, epoch}, reply.Pos)

	s2, w2 := r.connect(t)
	join(s2, "feed:1", map[string]any{"since": pos{3, epoch}})
	frames := w2.await(t, 6)
	assert.False(t, decodeReply(t, frames[0]).Recovered, "the history keeps 5 of the 9 missed")
	for i, f := range frames[1:] {
		assert.Equal(t, 8+i, decodeFeed(t, f).N, "the newest retained are replayed")
	}

	s3, w3 := r.connect(t)
	join(s3, "feed:1", map[string]any{"since": pos{7, epoch}})
	frames = w3.await(t, 6)
	assert.True(t, decodeReply(t, frames[0]).Recovered, "exactly the 5 retained were missed")
}

func TestMaxReplayCapsTheReplay(t *testing.T) {
	r := newRig(history.Options{}, channel.RecoveryOptions{MaxReplay: 3})
	r.publish(t, "feed:1", 1, 10)
	epoch := historyEpoch(t, r, "feed:1")
	s, w := r.connect(t)
	join(s, "feed:1", map[string]any{"since": pos{0, epoch}})
	frames := w.await(t, 4)
	assert.False(t, decodeReply(t, frames[0]).Recovered)
	assert.Equal(t, 8, decodeFeed(t, frames[1]).N)
	r.publish(t, "feed:1", 11, 11)
	assert.Equal(t, 11, decodeFeed(t, w.await(t, 5)[4]).N, "live follows the replay without a gap")
}

// TestReplayRacingLiveBroadcasts has a publisher running while clients join
// from every point of the history: each must see every broadcast after its
// position exactly once, in order.
func TestReplayRacingLiveBroadcasts(t *testing.T) {
	const total = 2000
	r := newRig(history.Options{Size: total}, channel.RecoveryOptions{MaxReplay: total})
	r.publish(t, "feed:1", 1, 400)
	epoch := historyEpoch(t, r, "feed:1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 401; n <= total; n++ {
			_ = r.rec.Broadcast(context.Background(), r.ps, "feed:1", "n", map[string]int{"n": n})
		}
	}()
	type client struct {
		since int
		w     *wire
	}
	var clients []client
	for i := 0; i < 40; i++ {
		since := i * 10
		s, w := r.connect(t)
		join(s, "feed:1", map[string]any{"since": pos{uint64(since), epoch}})
		clients = append(clients, client{since, w})
	}
	<-done
	for _, c := range clients {
		frames := c.w.await(t, 1+total-c.since)
		require.True(t, decodeReply(t, frames[0]).Recovered)
		for i, f := range frames[1:] {
			require.Equal(t, c.since+1+i, decodeFeed(t, f).N, "client since %d", c.since)
		}
		time.Sleep(5 * time.Millisecond)
		c.w.mu.Lock()
		assert.Len(t, c.w.frames, 1+total-c.since, "no duplicate for client since %d", c.since)
		c.w.mu.Unlock()
	}
}

func TestInterceptedRecoverableEventsKeepTheirPosition(t *testing.T) {
	r := newRig(history.Options{}, channel.RecoveryOptions{Key: "pos"}, channel.Intercept("n"))
	s, w := r.connect(t)
	join(s, "feed:1", nil)
	r.publish(t, "feed:1", 1, 1)
	f := w.await(t, 2)[1]
	assert.Equal(t, "n_out", f.Event)
	var p map[string]json.RawMessage
	require.NoError(t, f.Payload.Decode(&p))
	assert.Contains(t, p, "pos", "the configured key")
	assert.JSONEq(t, `1`, string(p["n"]))
}

func TestChannelBroadcastsOnARecoverableRouteAreRecorded(t *testing.T) {
	r := newRig(history.Options{}, channel.RecoveryOptions{})
	s, w := r.connect(t)
	join(s, "feed:1", nil)
	epoch := decodeReply(t, w.await(t, 1)[0]).Pos.Epoch
	s.Handle(protocol.Message{JoinRef: protocol.StringRef("1"), Ref: protocol.StringRef("2"), Topic: "feed:1", Event: "say", Payload: protocol.JSONPayload([]byte(`{"n":7}`))})
	assert.Equal(t, feedMsg{7, pos{1, epoch}}, decodeFeed(t, w.await(t, 2)[1]))

	s2, w2 := r.connect(t)
	join(s2, "feed:1", map[string]any{"since": pos{0, epoch}})
	frames := w2.await(t, 2)
	assert.True(t, decodeReply(t, frames[0]).Recovered)
	assert.Equal(t, 7, decodeFeed(t, frames[1]).N)
}

// TestGapRepair: a subscriber that stayed connected while its node missed
// broadcasts (they were recorded in the history but not delivered here, as
// when the node's broker link is down) gets them from the history as soon
// as a later broadcast shows the gap, in order, before that broadcast.
func TestGapRepair(t *testing.T) {
	store := history.NewMemory(history.Options{Size: 20})
	r := &rig{ps: pubsub.NewLocal("n1"), rec: channel.NewRecovery(store, channel.RecoveryOptions{})}
	r.router = channel.NewRouter[struct{}]()
	r.router.Handle("feed:*", func() channel.Handler[struct{}] { return feed{} }, channel.Recoverable(r.rec))
	elsewhere := pubsub.NewLocal("cut-off") // records in the same history, delivers to nobody here
	miss := func(from, to int) {
		for n := from; n <= to; n++ {
			p, _ := protocol.Marshal(map[string]int{"n": n})
			require.NoError(t, store.Publish(context.Background(), elsewhere, &pubsub.Message{Topic: "feed:1", Event: "n", Payload: p, PosKey: channel.DefaultPositionKey}))
		}
	}

	s, w := r.connect(t)
	join(s, "feed:1", nil)
	w.await(t, 1)
	r.publish(t, "feed:1", 1, 3)
	miss(4, 8)
	r.publish(t, "feed:1", 9, 12)
	frames := w.await(t, 1+12)
	for i, f := range frames[1:] {
		assert.Equal(t, i+1, decodeFeed(t, f).N, "in order, the missed ones included")
	}
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, w.await(t, 13), 13, "no duplicate")

	// A new history (the old one was lost) whose first broadcasts did not
	// reach this node: they are fetched too.
	store.Reset("feed:1")
	miss(101, 102)
	r.publish(t, "feed:1", 103, 103)
	frames = w.await(t, 1+15)
	var epochs []string
	for i, f := range frames[13:] {
		m := decodeFeed(t, f)
		assert.Equal(t, 101+i, m.N)
		assert.Equal(t, uint64(i+1), m.Pos.Offset)
		epochs = append(epochs, m.Pos.Epoch)
	}
	assert.NotEqual(t, decodeFeed(t, frames[12]).Pos.Epoch, epochs[0], "a new epoch")

	// A gap longer than the history: the channel ends with phx_error, so
	// that the client rejoins and learns it must reload.
	miss(13, 40)
	r.publish(t, "feed:1", 41, 41)
	last := w.await(t, 17)[16]
	assert.Equal(t, protocol.EventError, last.Event)
	assert.Equal(t, "feed:1", last.Topic)
}
