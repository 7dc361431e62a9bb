package channeltest_test

import (
	"log/slog"
	"testing"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket/client"
	"github.com/phxgo/phx/socket/pubsub"
)

// The code of docs/testing.md: a room with presence, and its tests.

// Room is room:*: it tracks who is in the room and relays shouts.
type Room struct{ presence *presence.Tracker }

func (r *Room) Join(c *channel.Context[string], _ channel.Payload) (channel.Result, error) {
	if c.Topic() == "room:secret" {
		return channel.Error(map[string]string{"reason": "unauthorized"}), nil
	}
	return channel.OK(map[string]string{"hello": c.Assigns()}), nil
}

func (r *Room) AfterJoin(c *channel.Context[string]) (channel.Result, error) {
	if _, err := r.presence.Track(c, c.Assigns(), map[string]any{"online": true}); err != nil {
		return channel.NoReply(), err
	}
	return channel.NoReply(), r.presence.PushState(c)
}

func (r *Room) HandleIn(c *channel.Context[string], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "shout":
		return channel.NoReply(), c.Broadcast("shout", p)
	case "ping":
		return channel.OK(map[string]string{"pong": c.Assigns()}), nil
	}
	return channel.Error(map[string]string{"reason": "unknown event"}), nil
}

// newRouter builds the app's router on a PubSub and a tracker of the test's
// own: nothing is global, so parallel tests cannot see each other.
func newRouter(t *testing.T) (*channel.Router[string], pubsub.PubSub) {
	ps := pubsub.NewLocal(t.Name())
	tracker := presence.New(ps, presence.WithLogger(slog.New(slog.DiscardHandler)), presence.WithCoalesce(0))
	t.Cleanup(func() { _ = tracker.Close() }) // after the sockets, which close first
	router := channel.NewRouter[string]()
	router.Handle("room:*", func() channel.Handler[string] { return &Room{presence: tracker} })
	return router, ps
}

func TestRoom(t *testing.T) {
	t.Parallel()
	router, ps := newRouter(t)
	s := channeltest.New(t, router, "alice", channeltest.WithPubSub(ps))

	ch := s.Join("room:lobby", nil).AssertOK()
	ch.AssertReply(ch.Push("ping", nil), "ok")

	ch.Push("shout", map[string]string{"body": "hi"})
	var shout struct{ Body string }
	if err := ch.AssertBroadcast("shout").Decode(&shout); err != nil || shout.Body != "hi" {
		t.Errorf("shout %+v, %v", shout, err)
	}

	reply := s.Join("room:secret", nil).AssertError()
	if string(reply.Response) != `{"reason":"unauthorized"}` {
		t.Errorf("secret room: %s", reply.Response)
	}
	ch.Leave()
}

func TestRoomPresence(t *testing.T) {
	t.Parallel()
	router, ps := newRouter(t)
	alice := channeltest.New(t, router, "alice", channeltest.WithPubSub(ps))
	bob := channeltest.New(t, router, "bob", channeltest.WithPubSub(ps))

	a := alice.Join("room:lobby", nil).AssertOK()
	seenByAlice := channeltest.NewPresence(a)
	seenByAlice.AssertKeys("alice")

	b := bob.Join("room:lobby", nil).AssertOK()
	channeltest.NewPresence(b).AssertKeys("alice", "bob") // bob's presence_state
	seenByAlice.AssertKeys("alice", "bob")                // alice's presence_diff

	// A second tab of bob's is a second meta under the same key.
	bob2 := channeltest.New(t, router, "bob", channeltest.WithPubSub(ps))
	bob2.Join("room:lobby", nil).AssertOK()
	seenByAlice.AwaitList("bob in two tabs", func(l []client.PresenceEntry) bool {
		return len(l) == 2 && len(l[1].Metas) == 2
	})

	b.Leave()
	bob2.Close()
	seenByAlice.AssertKeys("alice")
}
