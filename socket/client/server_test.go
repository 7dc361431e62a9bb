package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
)

// user is the test server's assigns.
type user struct {
	ID   int
	Name string
}

// testServer is an in-process phx server with a room:* channel reproducing
// the conformance rows the client tests exercise.
type testServer struct {
	srv  *socket.Server[user]
	http *httptest.Server
	URL  string // ws://.../socket

	mu         sync.Mutex
	authTokens []string
	connects   int
}

func (ts *testServer) AuthTokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.authTokens...)
}

func (ts *testServer) Connects() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.connects
}

var errCrash = errors.New("crash requested by the client")

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	ts := &testServer{}
	router := channel.NewRouter[user]()
	router.Handle("room:*", func() channel.Handler[user] { return &room{} })
	ts.srv = socket.New(socket.Config[user]{
		Authenticator: socket.AuthenticatorFunc[user](func(_ context.Context, req *socket.ConnectRequest) (user, error) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.connects++
			ts.authTokens = append(ts.authTokens, req.AuthToken)
			name := req.Params.Get("token")
			if name == "" || name == "nobody" {
				return user{}, socket.ErrRefused
			}
			return user{ID: len(name), Name: name}, nil
		}),
		Router:          router,
		ID:              func(u user) string { return "user_socket:" + strconv.Itoa(u.ID) },
		SkipOriginCheck: true,
	})
	mux := http.NewServeMux()
	mux.Handle("/socket/", ts.srv)
	ts.http = httptest.NewServer(mux)
	ts.URL = "ws" + strings.TrimPrefix(ts.http.URL, "http") + "/socket"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.srv.Shutdown(ctx)
		ts.http.Close()
	})
	return ts
}

// room mirrors examples/conformance's room:* rows.
type room struct{}

func (r *room) Join(c *channel.Context[user], params channel.Payload) (channel.Result, error) {
	if c.Topic() == "room:locked" {
		return channel.Error(map[string]string{"reason": "unauthorized"}), nil
	}
	return channel.OK(map[string]any{"username": c.Assigns().Name}), nil
}

// AfterJoin pushes a presence_state when the topic asks for it, as apps do
// from their after-join message.
func (r *room) AfterJoin(c *channel.Context[user]) (channel.Result, error) {
	if strings.HasPrefix(c.Topic(), "room:presence") {
		name := c.Assigns().Name
		return channel.NoReply(), c.Push("presence_state", map[string]any{
			name: map[string]any{"metas": []any{map[string]any{"phx_ref": "ref-" + c.ID(), "online_at": 1}}},
		})
	}
	return channel.NoReply(), nil
}

func (r *room) HandleIn(c *channel.Context[user], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "echo":
		return channel.OK(p), nil
	case "echo_error":
		return channel.Error(p), nil
	case "shout":
		m := map[string]any{}
		_ = p.Decode(&m)
		m["from"] = c.Assigns().Name
		return channel.NoReply(), c.Broadcast("shout", m)
	case "push_me":
		if err := c.Push("pushed", p); err != nil {
			return channel.NoReply(), err
		}
		return channel.OK(nil), nil
	case "broadcast_as":
		// {"event": E, "payload": P}: broadcast P as E (presence diffs).
		var b struct {
			Event   string         `json:"event"`
			Payload map[string]any `json:"payload"`
		}
		if err := p.Decode(&b); err != nil {
			return channel.Error(map[string]string{"reason": err.Error()}), nil
		}
		return channel.OK(nil), c.Broadcast(b.Event, b.Payload)
	case "push_as":
		var b struct {
			Event   string         `json:"event"`
			Payload map[string]any `json:"payload"`
		}
		if err := p.Decode(&b); err != nil {
			return channel.Error(map[string]string{"reason": err.Error()}), nil
		}
		return channel.OK(nil), c.Push(b.Event, b.Payload)
	case "async_reply":
		ref, err := c.ReplyRef()
		if err != nil {
			return channel.NoReply(), err
		}
		time.AfterFunc(20*time.Millisecond, func() { _ = ref.Reply("ok", p) })
		return channel.NoReply(), nil
	case "crash":
		return channel.NoReply(), errCrash
	case "stop":
		return channel.OK(map[string]bool{"bye": true}).Stop(channel.Normal), nil
	case "binary_echo":
		if !p.IsBinary() {
			return channel.Error(map[string]string{"reason": "binary payload expected"}), nil
		}
		return channel.OK(channel.Binary(p.Bytes())), nil
	}
	return channel.Error(map[string]string{"reason": "unknown event " + event}), nil
}
