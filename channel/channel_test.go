package channel_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
)

type player struct{ Name string }

// game is a channel exercising every callback.
type game struct {
	moves  int // per-channel state: no locks, callbacks run one at a time
	reason chan error
}

func (g *game) Join(c *channel.Context[player], p channel.Payload) (channel.Result, error) {
	var params struct {
		Refuse bool `json:"refuse"`
	}
	_ = p.Decode(&params)
	if params.Refuse {
		return channel.Error(map[string]string{"reason": "refused"}), nil
	}
	return channel.OK(map[string]string{"hello": c.Assigns().Name}), nil
}

func (g *game) AfterJoin(c *channel.Context[player]) (channel.Result, error) {
	return channel.NoReply(), c.Push("welcome", map[string]int{"moves": g.moves})
}

func (g *game) HandleIn(c *channel.Context[player], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "move":
		g.moves++
		return channel.OK(map[string]int{"moves": g.moves}), nil
	case "announce":
		return channel.NoReply(), c.Broadcast("announce", p)
	case "announce_others":
		return channel.NoReply(), c.BroadcastFrom("announce", p)
	case "later":
		ref, err := c.ReplyRef()
		if err != nil {
			return channel.NoReply(), err
		}
		go func() { _ = ref.Reply("ok", map[string]string{"late": "yes"}) }()
		return channel.NoReply(), nil
	case "tick":
		c.Send("tick")
		return channel.NoReply(), nil
	case "quit":
		return channel.Reply("bye", nil).Stop(channel.Normal), nil
	case "abort":
		return channel.Stop(errors.New("abort")), nil
	case "panic":
		panic("boom")
	case "bytes":
		return channel.OK(channel.Binary(p.Bytes())), nil
	}
	return channel.Error(map[string]string{"reason": "unknown"}), nil
}

func (g *game) HandleInfo(c *channel.Context[player], msg any) (channel.Result, error) {
	return channel.NoReply(), c.Push("info", map[string]any{"msg": msg})
}

func (g *game) HandleOut(c *channel.Context[player], event string, p channel.Payload) (channel.Result, error) {
	if c.Assigns().Name == "muted" {
		return channel.NoReply(), nil
	}
	return channel.NoReply(), c.Push(event, p)
}

func (g *game) Terminate(c *channel.Context[player], reason error) {
	if g.reason != nil {
		g.reason <- reason
	}
}

func newRouter(reasons chan error) *channel.Router[player] {
	r := channel.NewRouter[player]()
	r.Handle("game:*", func() channel.Handler[player] { return &game{reason: reasons} }, channel.Intercept("announce"))
	r.Handle("lobby", func() channel.Handler[player] { return &game{reason: reasons} })
	return r
}

func TestRouterMatch(t *testing.T) {
	t.Parallel()
	r := newRouter(nil)
	p, ok := r.Match("game:1")
	assert.True(t, ok)
	assert.Equal(t, "game:*", p)
	_, ok = r.Match("lobby:x")
	assert.False(t, ok)
	_, ok = r.Match("lobby")
	assert.True(t, ok)
	assert.Panics(t, func() { r.Handle("a*b", func() channel.Handler[player] { return &game{} }) })
	assert.Panics(t, func() {
		r.Handle("x:*", func() channel.Handler[player] { return struct{ channel.Handler[player] }{} }, channel.Intercept("e"))
	})
}

func TestJoinReplyAfterJoinAndState(t *testing.T) {
	t.Parallel()
	s := channeltest.New(t, newRouter(nil), player{Name: "alice"})
	ch := s.Join("game:1", nil).AssertOK()
	assert.JSONEq(t, `{"hello":"alice"}`, string(ch.JoinReply.Response))
	assert.JSONEq(t, `{"moves":0}`, string(ch.AssertPush("welcome").JSON()))
	ch.AssertReply(ch.Push("move", nil), "ok")
	r := ch.AssertReply(ch.Push("move", nil), "ok")
	assert.JSONEq(t, `{"moves":2}`, string(r.Response))

	refused := s.Join("game:2", map[string]bool{"refuse": true}).AssertError()
	assert.JSONEq(t, `{"reason":"refused"}`, string(refused.Response))
}

func TestBroadcastInterceptAndBroadcastFrom(t *testing.T) {
	t.Parallel()
	s1 := channeltest.New(t, newRouter(nil), player{Name: "alice"})
	s2 := channeltest.New(t, newRouter(nil), player{Name: "muted"}, channeltest.WithPubSub(s1.PubSub()))
	a := s1.Join("game:1", nil).AssertOK()
	m := s2.Join("game:1", nil).AssertOK()

	a.Push("announce", map[string]string{"x": "1"})
	a.AssertBroadcast("announce")
	a.AssertPush("announce")
	m.RefutePush("announce", 50*time.Millisecond) // filtered by HandleOut

	a.Push("announce_others", map[string]string{"x": "2"})
	a.RefutePush("announce", 50*time.Millisecond) // the sender is excluded

	l1 := s1.Join("lobby", nil).AssertOK()
	l2 := s2.Join("lobby", nil).AssertOK()
	s1.Broadcast("lobby", "news", map[string]int{"n": 1})
	assert.JSONEq(t, `{"n":1}`, string(l1.AssertPush("news").JSON()))
	assert.JSONEq(t, `{"n":1}`, string(l2.AssertPush("news").JSON()))
}

func TestParallelSocketsDoNotShareBroadcasts(t *testing.T) {
	t.Parallel()
	s1 := channeltest.New(t, newRouter(nil), player{Name: "a"})
	s2 := channeltest.New(t, newRouter(nil), player{Name: "b"})
	c1 := s1.Join("lobby", nil).AssertOK()
	c2 := s2.Join("lobby", nil).AssertOK()
	c1.Push("announce", map[string]int{"n": 1})
	c1.AssertPush("announce")
	c2.RefuteBroadcast("announce", 50*time.Millisecond)
}

func TestAsyncReplyAndInfo(t *testing.T) {
	t.Parallel()
	s := channeltest.New(t, newRouter(nil), player{Name: "alice"})
	ch := s.Join("lobby", nil).AssertOK()
	r := ch.AssertReply(ch.Push("later", nil), "ok")
	assert.JSONEq(t, `{"late":"yes"}`, string(r.Response))
	ch.Push("tick", nil)
	assert.JSONEq(t, `{"msg":"tick"}`, string(ch.AssertPush("info").JSON()))
}

func TestStopCrashLeaveAndTerminateReasons(t *testing.T) {
	t.Parallel()
	reasons := make(chan error, 8)
	s := channeltest.New(t, newRouter(reasons), player{Name: "alice"})

	ch := s.Join("game:quit", nil).AssertOK()
	ch.AssertReply(ch.Push("quit", nil), "bye")
	ch.AssertClose()
	assert.ErrorIs(t, <-reasons, channel.Normal)

	ch = s.Join("game:abort", nil).AssertOK()
	ch.Push("abort", nil)
	ch.AssertCrash()
	assert.EqualError(t, <-reasons, "abort")

	ch = s.Join("game:panic", nil).AssertOK()
	ch.Push("panic", nil)
	ch.AssertCrash()
	var crash *channel.CrashError
	require.ErrorAs(t, <-reasons, &crash)
	assert.Equal(t, "boom", crash.Panic)

	ch = s.Join("game:leave", nil).AssertOK()
	ch.Leave()
	assert.ErrorIs(t, <-reasons, channel.Left)

	s.Join("game:closed", nil).AssertOK()
	s.Close()
	assert.ErrorIs(t, <-reasons, channel.Closed)
}

func TestBinaryReply(t *testing.T) {
	t.Parallel()
	s := channeltest.New(t, newRouter(nil), player{Name: "alice"})
	ch := s.Join("lobby", nil).AssertOK()
	r := ch.AssertReply(ch.Push("bytes", channel.Binary{1, 2, 3}), "ok")
	assert.True(t, r.Binary)
	assert.Equal(t, []byte{1, 2, 3}, []byte(r.Response))
}

func TestPushRejectsNonObjects(t *testing.T) {
	t.Parallel()
	r := channel.NewRouter[player]()
	errs := make(chan error, 1)
	r.Handle("x", func() channel.Handler[player] { return pusher{errs} })
	s := channeltest.New(t, r, player{})
	s.Join("x", nil).AssertOK()
	assert.ErrorIs(t, <-errs, channel.ErrNotObject)
}

type pusher struct{ errs chan error }

func (p pusher) Join(*channel.Context[player], channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}
func (p pusher) AfterJoin(c *channel.Context[player]) (channel.Result, error) {
	p.errs <- c.Push("list", []int{1})
	return channel.NoReply(), nil
}
func (p pusher) HandleIn(*channel.Context[player], string, channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}
