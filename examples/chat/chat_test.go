package main

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket/pubsub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newRoom builds the chat's real router on a private PubSub and tracker, so
// parallel tests never see each other.
func newRoom(t *testing.T) (*channel.Router[Visitor], pubsub.PubSub) {
	ps := pubsub.NewLocal(t.Name())
	tr := presence.New(ps, presence.WithLogger(slog.New(slog.DiscardHandler)), presence.WithCoalesce(0))
	t.Cleanup(func() { _ = tr.Close() })
	h := newHistory(50)
	router := channel.NewRouter[Visitor]()
	router.Handle("room:*", func() channel.Handler[Visitor] { return &room{history: h, presence: tr} })
	return router, ps
}

func TestChatMessagesAndHistory(t *testing.T) {
	t.Parallel()
	router, ps := newRoom(t)
	alice := channeltest.New(t, router, Visitor{Name: "alice"}, channeltest.WithPubSub(ps))
	bob := channeltest.New(t, router, Visitor{Name: "bob"}, channeltest.WithPubSub(ps))

	a := alice.Join("room:lobby", nil).AssertOK()
	ref := a.Push("new_msg", map[string]string{"body": "hello"})
	a.AssertReply(ref, "ok")
	var msg Message
	require.NoError(t, a.AssertBroadcast("new_msg").Decode(&msg))
	assert.Equal(t, "alice", msg.User)
	assert.Equal(t, "hello", msg.Body)

	b := bob.Join("room:lobby", nil).AssertOK()
	var reply struct{ Messages []Message }
	require.NoError(t, json.Unmarshal(b.JoinReply.Response, &reply))
	require.Len(t, reply.Messages, 1, "history is sent on join")

	a.AssertReply(a.Push("new_msg", map[string]string{"body": "  "}), "error")
	a.AssertReply(a.Push("other", nil), "error")
}

func TestChatPresence(t *testing.T) {
	t.Parallel()
	router, ps := newRoom(t)
	alice := channeltest.New(t, router, Visitor{Name: "alice"}, channeltest.WithPubSub(ps))
	bob := channeltest.New(t, router, Visitor{Name: "bob"}, channeltest.WithPubSub(ps))
	a := alice.Join("room:lobby", nil).AssertOK()
	a.AssertPush("presence_state")
	b := bob.Join("room:lobby", nil).AssertOK()
	var state map[string]json.RawMessage
	require.NoError(t, b.AssertPush("presence_state").Decode(&state))
	assert.Contains(t, state, "alice")
	assert.Contains(t, state, "bob")
	b.Leave()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		var diff struct{ Leaves map[string]json.RawMessage }
		require.NoError(t, a.AssertPush("presence_diff").Decode(&diff))
		if _, ok := diff.Leaves["bob"]; ok {
			return
		}
	}
	t.Fatal("no presence_diff with bob leaving")
}
