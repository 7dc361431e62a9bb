package client_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/client"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
)

// feed records the params of every join.
type feed struct{ joins chan string }

func (f feed) Join(_ *channel.Context[user], p channel.Payload) (channel.Result, error) {
	f.joins <- p.String()
	return channel.OK(map[string]string{"hello": "feed"}), nil
}

func (feed) HandleIn(*channel.Context[user], string, channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}

// TestRecover: a channel with Recover gets, after its socket was closed by
// the server and reconnected, every broadcast sent while it was away, in
// order, once; its join params name its last position.
func TestRecover(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	rec := channel.NewRecovery(history.NewMemory(history.Options{}), channel.RecoveryOptions{})
	router := channel.NewRouter[user]()
	joins := make(chan string, 10)
	router.Handle("feed:*", func() channel.Handler[user] { return feed{joins} }, channel.Recoverable(rec))
	srv := socket.New(socket.Config[user]{
		Authenticator: socket.AuthenticatorFunc[user](func(context.Context, *socket.ConnectRequest) (user, error) {
			return user{ID: 1, Name: "alice"}, nil
		}),
		Router:          router,
		PubSub:          ps,
		ID:              func(user) string { return "user_socket:1" },
		SkipOriginCheck: true,
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	ctx := testCtx(t)
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/websocket", client.Options{
		// Slow to come back, so that broadcasts are surely sent while away.
		ReconnectAfter: func(int) time.Duration { return 300 * time.Millisecond },
		RejoinAfter:    func(int) time.Duration { return 20 * time.Millisecond },
		Timeout:        5 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	ch := c.Channel("feed:1", map[string]string{"keep": "me"}, client.Recover("", ""))
	reply, err := ch.Join(ctx)
	require.NoError(t, err)
	first := decode(t, reply.Response)
	assert.Equal(t, false, first["recovered"])
	assert.Equal(t, "feed", first["hello"])
	pos, ok := ch.Position()
	require.True(t, ok, "the first join's reply gives the topic's position")
	assert.Equal(t, uint64(0), pos.Offset)

	send := func(from, to int) {
		for n := from; n <= to; n++ {
			require.NoError(t, rec.Broadcast(ctx, ps, "feed:1", "post", map[string]int{"n": n}))
		}
	}
	var got []int
	var rejoins []map[string]any
	collect := func(n int) {
		for len(got) < n {
			m, err := ch.Next(ctx)
			require.NoError(t, err, "after %d posts", len(got))
			switch m.Event {
			case "post":
				got = append(got, int(decode(t, m.Payload)["n"].(float64)))
			case client.EventJoined:
				rejoins = append(rejoins, decode(t, m.Payload))
			}
		}
	}
	send(1, 100)
	collect(100)
	require.NoError(t, srv.Disconnect(ctx, "user_socket:1"))
	send(101, 200) // while away
	collect(150)   // some arrive replayed after the rejoin
	send(201, 300)
	collect(300)

	want := make([]int, 300)
	for i := range want {
		want[i] = i + 1
	}
	assert.Equal(t, want, got)
	require.Len(t, rejoins, 2, "the first join and one rejoin")
	assert.Equal(t, true, rejoins[1]["recovered"])
	pos, _ = ch.Position()
	assert.Equal(t, uint64(300), pos.Offset)
	require.Len(t, joins, 2)
	assert.JSONEq(t, `{"keep":"me"}`, <-joins)
	assert.JSONEq(t, `{"keep":"me","since":{"offset":100,"epoch":"`+pos.Epoch+`"}}`, <-joins)
}
