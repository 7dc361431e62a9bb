package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/client"
)

func fast(o client.Options) client.Options {
	o.ReconnectAfter = func(int) time.Duration { return 20 * time.Millisecond }
	o.RejoinAfter = func(int) time.Duration { return 20 * time.Millisecond }
	o.Timeout = 5 * time.Second
	return o
}

func dial(t *testing.T, url string, o client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, fast(o))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func decode(t *testing.T, p client.Payload) map[string]any {
	t.Helper()
	m := map[string]any{}
	require.NoError(t, p.Decode(&m))
	return m
}

func TestChannelRows(t *testing.T) {
	for _, vsn := range []string{"2.0.0", "1.0.0"} {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t)
			c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}, Vsn: vsn})
			ctx := testCtx(t)
			ch := c.Channel("room:lobby", map[string]any{"hello": "world"})

			reply, err := ch.Join(ctx)
			require.NoError(t, err)
			assert.Equal(t, "ok", reply.Status)
			assert.Equal(t, "alice", decode(t, reply.Response)["username"])
			assert.Equal(t, client.StateJoined, ch.State())
			_, err = ch.Join(ctx)
			assert.ErrorIs(t, err, client.ErrAlreadyJoined)

			reply, err = ch.Push(ctx, "echo", map[string]int{"x": 1})
			require.NoError(t, err)
			assert.JSONEq(t, `{"x":1}`, reply.Response.String())

			reply, err = ch.Push(ctx, "echo_error", map[string]string{"why": "asked"})
			var re *client.ReplyError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "error", re.Status)
			assert.Equal(t, "echo_error", re.Event)
			assert.JSONEq(t, `{"why":"asked"}`, re.Response.String())
			assert.Equal(t, "error", reply.Status)

			_, err = ch.Push(ctx, "push_me", map[string]int{"n": 7})
			require.NoError(t, err)
			m, err := ch.Next(ctx, "pushed")
			require.NoError(t, err)
			assert.JSONEq(t, `{"n":7}`, m.Payload.String())
			if vsn == "2.0.0" {
				assert.Equal(t, ch.JoinRef(), m.JoinRef, "pushes carry the join ref")
			}

			require.NoError(t, ch.Send("shout", map[string]string{"body": "hi"}))
			m, err = ch.Next(ctx, "shout")
			require.NoError(t, err)
			assert.Equal(t, map[string]any{"body": "hi", "from": "alice"}, decode(t, m.Payload))
			assert.Empty(t, m.JoinRef, "broadcasts carry no join ref")

			reply, err = ch.Push(ctx, "async_reply", map[string]string{"later": "yes"})
			require.NoError(t, err)
			assert.JSONEq(t, `{"later":"yes"}`, reply.Response.String())

			if vsn == "2.0.0" {
				reply, err = ch.Push(ctx, "binary_echo", client.Binary{1, 2, 3, 0xff})
				require.NoError(t, err)
				require.True(t, reply.Response.IsBinary())
				assert.Equal(t, []byte{1, 2, 3, 0xff}, reply.Response.Bytes())
			} else {
				_, err = ch.Push(ctx, "binary_echo", client.Binary{1})
				assert.Error(t, err, "V1 cannot carry binary payloads")
			}

			require.NoError(t, ch.Leave(ctx))
			assert.Equal(t, client.StateClosed, ch.State())
			_, err = ch.Push(ctx, "echo", nil)
			assert.ErrorIs(t, err, client.ErrChannelClosed)
		})
	}
}

func TestJoinErrors(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)

	_, err := c.Channel("nowhere", nil).Join(ctx)
	var re *client.ReplyError
	require.ErrorAs(t, err, &re)
	assert.JSONEq(t, `{"reason":"unmatched topic"}`, re.Response.String())

	ch := c.Channel("room:locked", nil)
	_, err = ch.Join(ctx)
	require.ErrorAs(t, err, &re)
	assert.JSONEq(t, `{"reason":"unauthorized"}`, re.Response.String())
	// Like phoenix.js, a refused join keeps retrying with backoff.
	require.Eventually(t, func() bool { s := ch.State(); return s == client.StateErrored || s == client.StateJoining }, time.Second, 5*time.Millisecond)
	require.NoError(t, ch.Leave(ctx))
	assert.Equal(t, client.StateClosed, ch.State())

	_, err = c.Channel("room:x", nil).Push(ctx, "echo", nil)
	assert.ErrorIs(t, err, client.ErrNotJoined)
}

func TestCrashRejoins(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:crash", nil)
	_, err := ch.Join(ctx)
	require.NoError(t, err)
	_, err = ch.Next(ctx, client.EventJoined)
	require.NoError(t, err)
	first := ch.JoinRef()

	require.NoError(t, ch.Send("crash", nil))
	m, err := ch.Next(ctx, "phx_error")
	require.NoError(t, err)
	assert.Equal(t, first, m.JoinRef)
	_, err = ch.Next(ctx, client.EventJoined)
	require.NoError(t, err)
	assert.NotEqual(t, first, ch.JoinRef(), "a rejoin uses a fresh join ref")

	reply, err := ch.Push(ctx, "echo", map[string]int{"after": 1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"after":1}`, reply.Response.String())
}

func TestStopClosesChannel(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:stop", nil)
	_, err := ch.Join(ctx)
	require.NoError(t, err)

	reply, err := ch.Push(ctx, "stop", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"bye":true}`, reply.Response.String())
	_, err = ch.Next(ctx, "phx_close")
	require.NoError(t, err)
	assert.Equal(t, client.StateClosed, ch.State())
	_, err = ch.Next(ctx, "anything")
	assert.ErrorIs(t, err, client.ErrChannelClosed)
	_, err = ch.Push(ctx, "echo", nil)
	assert.ErrorIs(t, err, client.ErrChannelClosed)

	// A new instance of the topic can join again.
	_, err = c.Channel("room:stop", nil).Join(ctx)
	require.NoError(t, err)
}

func TestDisconnectReconnectsAndRejoins(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:lobby", nil)
	_, err := ch.Join(ctx)
	require.NoError(t, err)
	_, err = ch.Next(ctx, client.EventJoined)
	require.NoError(t, err)
	first := ch.JoinRef()

	require.NoError(t, ts.srv.Disconnect(ctx, "user_socket:5")) // len("alice")
	_, err = ch.Next(ctx, client.EventJoined)
	require.NoError(t, err)
	assert.NotEqual(t, first, ch.JoinRef())
	assert.Equal(t, 2, ts.Connects())
	reply, err := ch.Push(ctx, "echo", map[string]int{"again": 1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"again":1}`, reply.Response.String())
	assert.NoError(t, c.Err())
}

func TestPushBufferedUntilJoined(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:buffer", nil)
	done := make(chan error, 1)
	go func() { _, err := ch.Join(ctx); done <- err }()
	// Pushes made while joining wait in the channel and go out on join.
	require.Eventually(t, func() bool { return ch.State() != client.StateClosed }, time.Second, time.Millisecond)
	reply, err := ch.Push(ctx, "echo", map[string]int{"early": 1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"early":1}`, reply.Response.String())
	require.NoError(t, <-done)
}

func TestHeartbeat(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}, HeartbeatInterval: 20 * time.Millisecond})
	// Answered heartbeats keep the connection: still the first one later.
	time.Sleep(200 * time.Millisecond)
	assert.True(t, c.Connected())
	assert.Equal(t, 1, ts.Connects())
}

// silentServer accepts WebSockets, counts them, reads and never answers.
func silentServer(t *testing.T, onConn func(ctx context.Context, ws *websocket.Conn)) (string, *atomic.Int32) {
	var n atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		n.Add(1)
		if onConn != nil {
			onConn(r.Context(), ws)
			return
		}
		for {
			if _, _, err := ws.Read(r.Context()); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket", &n
}

func TestHeartbeatTimeoutReconnects(t *testing.T) {
	url, conns := silentServer(t, nil)
	c := dial(t, url, client.Options{HeartbeatInterval: 20 * time.Millisecond})
	require.Eventually(t, func() bool { return conns.Load() >= 3 }, 5*time.Second, 5*time.Millisecond)
	assert.NoError(t, c.Err())
}

func TestServerClose1000StopsReconnecting(t *testing.T) {
	url, conns := silentServer(t, func(ctx context.Context, ws *websocket.Conn) {
		_ = ws.Close(websocket.StatusNormalClosure, "bye")
	})
	c := dial(t, url, client.Options{})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not stop")
	}
	var ce *client.CloseError
	require.ErrorAs(t, c.Err(), &ce)
	assert.Equal(t, 1000, ce.Code)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, int32(1), conns.Load())
	_, err := c.Channel("room:x", nil).Join(context.Background())
	assert.ErrorIs(t, err, client.ErrClosed)
}

func TestServerCloseOtherCodeReconnects(t *testing.T) {
	url, conns := silentServer(t, func(ctx context.Context, ws *websocket.Conn) {
		_ = ws.Close(websocket.StatusServiceRestart, "restart")
	})
	c := dial(t, url, client.Options{})
	require.Eventually(t, func() bool { return conns.Load() >= 3 }, 5*time.Second, 5*time.Millisecond)
	assert.NoError(t, c.Err())
}

func TestAuthTokenAndParams(t *testing.T) {
	ts := newTestServer(t)
	dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}, AuthToken: "s3cret/+token"})
	assert.Equal(t, []string{"s3cret/+token"}, ts.AuthTokens())
}

func TestDialRefused(t *testing.T) {
	ts := newTestServer(t)
	_, err := client.Dial(testCtx(t), ts.URL, client.Options{Params: map[string]string{"token": "nobody"}})
	var de *client.DialError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, http.StatusForbidden, de.StatusCode)

	_, err = client.Dial(testCtx(t), ts.URL, client.Options{Vsn: "3.0.0"})
	assert.Error(t, err)
}

func TestCloseFailsWaiters(t *testing.T) {
	ts := newTestServer(t)
	c, err := client.Dial(testCtx(t), ts.URL, fast(client.Options{Params: map[string]string{"token": "alice"}}))
	require.NoError(t, err)
	ctx := testCtx(t)
	ch := c.Channel("room:lobby", nil)
	_, err = ch.Join(ctx)
	require.NoError(t, err)
	var got atomic.Int32
	ch.On("", func(client.Message) { got.Add(1) })
	done := make(chan error, 1)
	go func() { _, err := ch.Next(ctx, "never"); done <- err }()
	require.NoError(t, c.Close())
	assert.ErrorIs(t, <-done, client.ErrClosed)
	_, err = ch.Push(ctx, "echo", nil)
	assert.ErrorIs(t, err, client.ErrClosed)
	<-c.Done()
	require.NoError(t, c.Close(), "Close is idempotent")
}

func TestOnHandlersMayPush(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:on", nil)
	replies := make(chan string, 1)
	off := ch.On("pushed", func(m client.Message) {
		// Pushing from a handler must not deadlock the reader.
		r, err := ch.Push(ctx, "echo", json.RawMessage(m.Payload.JSON()))
		if err != nil {
			replies <- err.Error()
			return
		}
		replies <- r.Response.String()
	})
	defer off()
	_, err := ch.Join(ctx)
	require.NoError(t, err)
	_, err = ch.Push(ctx, "push_me", map[string]int{"k": 1})
	require.NoError(t, err)
	select {
	case r := <-replies:
		assert.JSONEq(t, `{"k":1}`, r)
	case <-ctx.Done():
		t.Fatal("handler did not run")
	}
}

func TestPushTimeout(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:lobby", nil)
	_, err := ch.Join(ctx)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = ch.Push(short, "shout", map[string]string{"body": "no reply"})
	assert.ErrorIs(t, err, client.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, errors.Is(err, client.ErrClosed))
}
