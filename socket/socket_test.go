package socket_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
)

type user struct {
	ID   int
	Name string
}

// room is a small channel for raw-frame tests.
type room struct{ terminated chan error }

func (r *room) Join(c *channel.Context[user], p channel.Payload) (channel.Result, error) {
	if c.Topic() == "room:refuse" {
		return channel.Error(map[string]string{"reason": "no"}), nil
	}
	if c.Topic() == "room:panic" {
		panic("join exploded")
	}
	return channel.OK(nil), nil
}

func (r *room) HandleIn(c *channel.Context[user], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "echo":
		return channel.OK(p), nil
	case "panic":
		panic("boom")
	case "fail":
		return channel.NoReply(), errors.New("failed")
	case "whoami":
		return channel.OK(map[string]any{"name": c.Assigns().Name}), nil
	case "bcast":
		return channel.NoReply(), c.Broadcast("b", p)
	case "binary_len":
		return channel.OK(map[string]any{"binary": p.IsBinary(), "bytes": string(p.Bytes())}), nil
	case "binary_echo":
		return channel.OK(channel.Binary(p.Bytes())), nil
	case "push_binary":
		if err := c.Push("bin", channel.Binary("xyz")); err != nil {
			return channel.Error(map[string]string{"push": err.Error()}), nil
		}
		return channel.OK(nil), nil
	}
	return channel.NoReply(), nil
}

func (r *room) Terminate(c *channel.Context[user], reason error) {
	if r.terminated != nil {
		r.terminated <- reason
	}
}

type fixture struct {
	srv  *socket.Server[user]
	http *httptest.Server
	url  string
	auth []*socket.ConnectRequest
	mu   sync.Mutex
}

func (f *fixture) lastAuth() *socket.ConnectRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth[len(f.auth)-1]
}

func newFixture(t *testing.T, mod func(*socket.Config[user]), newRoom func() *room) *fixture {
	t.Helper()
	f := &fixture{}
	if newRoom == nil {
		newRoom = func() *room { return &room{} }
	}
	router := channel.NewRouter[user]()
	router.Handle("room:*", func() channel.Handler[user] { return newRoom() })
	cfg := socket.Config[user]{
		Authenticator: socket.AuthenticatorFunc[user](func(ctx context.Context, req *socket.ConnectRequest) (user, error) {
			f.mu.Lock()
			f.auth = append(f.auth, req)
			f.mu.Unlock()
			name := req.Params.Get("token")
			if name == "" || name == "bad" {
				return user{}, socket.ErrRefused
			}
			return user{ID: len(name), Name: name}, nil
		}),
		Router: router,
		ID:     func(u user) string { return "user_socket:" + u.Name },
	}
	if mod != nil {
		mod(&cfg)
	}
	f.srv = socket.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/socket/", f.srv)
	f.http = httptest.NewServer(mux)
	f.url = "ws" + strings.TrimPrefix(f.http.URL, "http") + "/socket/websocket"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, f.srv.Shutdown(ctx))
		f.http.Close()
	})
	return f
}

type rawConn struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan string
	err    error // set before frames is closed
}

func (f *fixture) dial(t *testing.T, query string, opts *websocket.DialOptions) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.url+"?"+query, opts)
	require.NoError(t, err)
	c.SetReadLimit(-1)
	r := &rawConn{t: t, c: c, frames: make(chan string, 100)}
	done := make(chan struct{})
	// One reader per connection: a read with a deadline would close a
	// coder/websocket connection when it expires.
	go func() {
		defer close(done)
		defer close(r.frames)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				r.err = err
				return
			}
			r.frames <- string(data)
		}
	}()
	t.Cleanup(func() { c.CloseNow(); <-done })
	return r
}

func (r *rawConn) send(frame string) {
	r.t.Helper()
	require.NoError(r.t, r.c.Write(context.Background(), websocket.MessageText, []byte(frame)))
}

func (r *rawConn) recv() string {
	r.t.Helper()
	select {
	case f, ok := <-r.frames:
		if !ok {
			// r.err is written before frames is closed, so reading it is safe only now.
			r.t.Fatalf("connection closed: %v", r.err)
		}
		return f
	case <-time.After(3 * time.Second):
		r.t.Fatal("no frame within 3s")
		return ""
	}
}

// silent asserts nothing arrives for a short while.
func (r *rawConn) silent() {
	r.t.Helper()
	select {
	case f := <-r.frames:
		r.t.Fatalf("unexpected frame %s", f)
	case <-time.After(150 * time.Millisecond):
	}
}

// closeCode waits for the server to close and returns the code.
func (r *rawConn) closeCode() websocket.StatusCode {
	r.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-r.frames:
			if !ok {
				return websocket.CloseStatus(r.err)
			}
		case <-deadline:
			r.t.Fatal("connection not closed within 5s")
		}
	}
}

func TestJoinPushReplyV2(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["3","3","room:lobby","phx_join",{}]`)
	assert.Equal(t, `["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	c.send(`["3","4","room:lobby","echo",{"x":1}]`)
	assert.Equal(t, `["3","4","room:lobby","phx_reply",{"status":"ok","response":{"x":1}}]`, c.recv())
	c.send(`[null,"5","phoenix","heartbeat",{}]`)
	assert.Equal(t, `[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	c.send(`["3",6,"room:lobby","whoami",{}]`)
	assert.Equal(t, `["3",6,"room:lobby","phx_reply",{"status":"ok","response":{"name":"alice"}}]`, c.recv())
}

func TestV1AndDefaultVsn(t *testing.T) {
	f := newFixture(t, nil, nil)
	for _, q := range []string{"token=bob&vsn=1.0.0", "token=bob"} {
		c := f.dial(t, q, nil)
		c.send(`{"topic":"room:a","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`)
		assert.JSONEq(t, `{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}`, c.recv())
		c.send(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}`)
		assert.JSONEq(t, `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}`, c.recv())
	}
}

func TestConnectRefusedIs403(t *testing.T) {
	f := newFixture(t, nil, nil)
	for _, q := range []string{"token=bad&vsn=2.0.0", "vsn=2.0.0", "token=alice&vsn=3.0.0", "token=alice&vsn=2.0", "token=alice&vsn[]=x"} {
		_, resp, err := websocket.Dial(context.Background(), f.url+"?"+q, nil)
		require.Error(t, err, q)
		require.NotNil(t, resp, q)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, q)
	}
	resp, err := http.Post(f.http.URL+"/socket/websocket?token=alice", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "non-GET")
}

func TestLastRepeatedParamWins(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := f.dial(t, "token=bad&token=carol&vsn=1.0.0&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","phx_join",{}]`)
	assert.Equal(t, `["1","1","room:a","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	c.send(`["1","2","room:a","whoami",{}]`)
	assert.Contains(t, c.recv(), `"name":"carol"`)
}

func TestAuthTokenSubprotocol(t *testing.T) {
	f := newFixture(t, nil, nil)
	tok := "secret-token+/="
	b := strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(tok)), "=")
	c := f.dial(t, "token=alice&vsn=2.0.0", &websocket.DialOptions{Subprotocols: []string{"phoenix", "base64url.bearer.phx." + b}})
	assert.Equal(t, "phoenix", c.c.Subprotocol())
	last := f.lastAuth()
	assert.Equal(t, tok, last.AuthToken)
	assert.Equal(t, "websocket", last.Transport)
}

func TestUnmatchedAndNotJoined(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","nowhere","phx_join",{}]`)
	assert.Equal(t, `[null,"1","nowhere","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`, c.recv())
	c.send(`["9","2","room:x","echo",{}]`)
	assert.Equal(t, `[null,"2","room:x","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`, c.recv())
	c.send(`["9","3","room:x","phx_leave",{}]`)
	assert.Equal(t, `["9","3","room:x","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	c.send(`["4","4","room:refuse","phx_join",{}]`)
	assert.Equal(t, `["4","4","room:refuse","phx_reply",{"status":"error","response":{"reason":"no"}}]`, c.recv())
	c.send(`["5","5","room:panic","phx_join",{}]`)
	assert.Equal(t, `["5","5","room:panic","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]`, c.recv())
}

func TestDuplicateJoinAndStaleJoinRef(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","phx_join",{}]`)
	c.recv()
	c.send(`["2","2","room:a","phx_join",{}]`)
	assert.Equal(t, `["2","2","room:a","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	assert.Equal(t, `["1","1","room:a","phx_close",{}]`, c.recv())
	// A message with the old join_ref is dropped (Phoenix 1.8); null is accepted.
	c.send(`["1","3","room:a","echo",{}]`)
	c.silent()
	c.send(`[null,"4","room:a","echo",{}]`)
	assert.Equal(t, `["2","4","room:a","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	// A stale leave gets no reply at all.
	c.send(`["1","5","room:a","phx_leave",{}]`)
	c.silent()
	c.send(`["2","6","room:a","phx_leave",{}]`)
	assert.Equal(t, `["2","6","room:a","phx_reply",{"status":"ok","response":{}}]`, c.recv())
	assert.Equal(t, `["2","2","room:a","phx_close",{}]`, c.recv())
}

func TestCrashEndsOnlyThatChannel(t *testing.T) {
	reasons := make(chan error, 4)
	f := newFixture(t, nil, func() *room { return &room{terminated: reasons} })
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","phx_join",{}]`)
	c.recv()
	c.send(`["2","2","room:b","phx_join",{}]`)
	c.recv()
	c.send(`["1","3","room:a","panic",{}]`)
	assert.Equal(t, `["1","1","room:a","phx_error",{"reason":"channel_crash"}]`, c.recv())
	assert.ErrorIs(t, <-reasons, channel.Crashed)
	c.send(`["2","4","room:b","fail",{}]`)
	assert.Equal(t, `["2","2","room:b","phx_error",{"reason":"channel_crash"}]`, c.recv())
	assert.ErrorIs(t, <-reasons, channel.Crashed)
	c.send(`["1","5","room:a","echo",{}]`)
	assert.Contains(t, c.recv(), `unmatched topic`)
	c.send(`[null,"6","phoenix","heartbeat",{}]`)
	assert.Contains(t, c.recv(), `"6","phoenix","phx_reply"`)
}

func TestMaxChannels(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.MaxChannels = 3 }, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	for i := range 3 {
		r := strconv.Itoa(i + 1)
		c.send(`["` + r + `","` + r + `","room:` + r + `","phx_join",{}]`)
		assert.Contains(t, c.recv(), `"status":"ok"`)
	}
	c.send(`["9","9","room:9","phx_join",{}]`)
	assert.Equal(t, `["9","9","room:9","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]`, c.recv())
	// Re-joining an already joined topic is a duplicate join, not a new channel.
	c.send(`["10","10","room:1","phx_join",{}]`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
}

func TestBroadcastAndDisconnect(t *testing.T) {
	f := newFixture(t, nil, nil)
	a := f.dial(t, "token=alice&vsn=2.0.0", nil)
	b := f.dial(t, "token=bob&vsn=1.0.0", nil)
	a.send(`["1","1","room:a","phx_join",{}]`)
	a.recv()
	b.send(`{"topic":"room:a","event":"phx_join","payload":{},"ref":"1"}`)
	b.recv()
	require.NoError(t, f.srv.Broadcast(context.Background(), "room:a", "news", map[string]int{"n": 1}))
	assert.Equal(t, `[null,null,"room:a","news",{"n":1}]`, a.recv())
	assert.JSONEq(t, `{"topic":"room:a","event":"news","payload":{"n":1},"ref":null}`, b.recv())
	assert.ErrorIs(t, f.srv.Broadcast(context.Background(), "room:a", "news", []int{1}), channel.ErrNotObject)

	require.NoError(t, f.srv.Disconnect(context.Background(), "user_socket:alice"))
	assert.Equal(t, websocket.StatusGoingAway, a.closeCode())
	b.send(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}`)
	assert.Contains(t, b.recv(), `"ref":"2"`)
}

func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	f := newFixture(t, nil, nil)
	ok := f.dial(t, "token=bob&vsn=2.0.0", nil)
	for _, frame := range []string{`garbage`, `[1,2,3]`, `{"topic":"x"}`} {
		c := f.dial(t, "token=alice&vsn=2.0.0", nil)
		c.send(frame)
		assert.Equal(t, websocket.StatusInvalidFramePayloadData, c.closeCode(), frame)
	}
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	require.NoError(t, c.c.Write(context.Background(), websocket.MessageBinary, []byte{1, 0, 0, 0, 0}))
	assert.Equal(t, websocket.StatusUnsupportedData, c.closeCode())
	ok.send(`[null,"1","phoenix","heartbeat",{}]`)
	assert.Contains(t, ok.recv(), "phx_reply")
}

func TestOversizedFrame(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.MaxFrameSize = 1024 }, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","echo",{"x":"` + strings.Repeat("a", 2000) + `"}]`)
	assert.Equal(t, websocket.StatusMessageTooBig, c.closeCode())
}

func TestIdleTimeout(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.IdleTimeout = 200 * time.Millisecond }, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	code := c.closeCode()
	assert.Equal(t, websocket.StatusGoingAway, code, "never 1000: phoenix.js would stop reconnecting")
}

func TestShutdownClosesWith1012AndTerminates(t *testing.T) {
	reasons := make(chan error, 1)
	f := newFixture(t, nil, func() *room { return &room{terminated: reasons} })
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","phx_join",{}]`)
	c.recv()
	go func() { _ = f.srv.Shutdown(context.Background()) }()
	assert.Equal(t, websocket.StatusServiceRestart, c.closeCode())
	assert.ErrorIs(t, <-reasons, channel.Shutdown)
	_, resp, err := websocket.Dial(context.Background(), f.url+"?token=alice", nil)
	require.Error(t, err)
	if resp != nil {
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	}
}

func TestOriginPolicy(t *testing.T) {
	dial := func(f *fixture, origin string) int {
		h := http.Header{}
		h.Set("Origin", origin)
		c, resp, err := websocket.Dial(context.Background(), f.url+"?token=alice", &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			c.CloseNow()
			return http.StatusSwitchingProtocols
		}
		return resp.StatusCode
	}
	f := newFixture(t, nil, nil)
	assert.Equal(t, 101, dial(f, "http://127.0.0.1:9999"), "same host, other port")
	assert.Equal(t, 403, dial(f, "http://evil.example"))
	assert.Equal(t, 403, dial(f, "null"))

	g := newFixture(t, func(c *socket.Config[user]) {
		c.AllowedOrigins = []string{"https://app.example.com", "//*.example.org"}
	}, nil)
	assert.Equal(t, 101, dial(g, "https://app.example.com"))
	assert.Equal(t, 403, dial(g, "https://app.example.com:8443"))
	assert.Equal(t, 403, dial(g, "http://app.example.com"))
	assert.Equal(t, 101, dial(g, "http://a.b.example.org:81"))
	assert.Equal(t, 101, dial(g, "http://example.org"))
	assert.Equal(t, 403, dial(g, "http://127.0.0.1"))

	h := newFixture(t, func(c *socket.Config[user]) { c.SkipOriginCheck = true }, nil)
	assert.Equal(t, 101, dial(h, "http://evil.example"))
}

func TestParseParams(t *testing.T) {
	p := socket.ParseParams("a=1&a=2&user%5Bid%5D=7&user%5Bname%5D=x+y&tags[]=p&tags[]=q&n&e=&arr%5B0%5D=z")
	assert.Equal(t, "2", p.Get("a"))
	assert.Equal(t, map[string]any{"id": "7", "name": "x y"}, p["user"])
	assert.Equal(t, []any{"p", "q"}, p["tags"])
	assert.Contains(t, p, "n")
	assert.Nil(t, p["n"])
	assert.Equal(t, "", p.Get("e"))
	assert.Equal(t, map[string]any{"0": "z"}, p["arr"])
}

func TestMessageRateLimit(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) {
		c.MessageRate, c.MessageBurst, c.AbuseWindow = 1, 3, time.Second
	}, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","phx_join",{}]`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
	for i := range 4 {
		c.send(`["1","` + strconv.Itoa(10+i) + `","room:a","echo",{}]`)
	}
	ok, limited := 0, 0
	for range 4 {
		switch f := c.recv(); {
		case strings.Contains(f, `"rate limited"`):
			limited++
		case strings.Contains(f, `"status":"ok"`):
			ok++
		}
	}
	assert.Equal(t, 3, ok, "the burst passes; joins have their own bucket")
	assert.Equal(t, 1, limited)
	// Heartbeats are never limited.
	c.send(`[null,"20","phoenix","heartbeat",{}]`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
	// A sustained flood (over ten times the rate within one AbuseWindow:
	// here more than 10 refusals in 1 s) closes the socket with 1008. Writes
	// after the close may fail; only the close code matters.
	for i := range 30 {
		_ = c.c.Write(context.Background(), websocket.MessageText, []byte(`["1","`+strconv.Itoa(30+i)+`","room:a","echo",{}]`))
	}
	assert.Equal(t, websocket.StatusPolicyViolation, c.closeCode())
}

// A client that waits for each reply is never closed for being refused:
// 1,000 joins one after another get 100 channels and then Phoenix's "too
// many channels joined", while heartbeats, pushes and broadcasts keep
// working on the same socket.
func TestManySequentialJoinsKeepTheSocket(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	ok, tooMany := 0, 0
	for i := range 1000 {
		r := strconv.Itoa(i + 1)
		c.send(`["` + r + `","` + r + `","room:` + r + `","phx_join",{}]`)
		switch f := c.recv(); {
		case strings.Contains(f, `"status":"ok"`):
			ok++
		case strings.Contains(f, `"too many channels joined"`):
			tooMany++
		default:
			t.Fatalf("join %d: unexpected %s", i+1, f)
		}
		if i%100 == 99 {
			c.send(`[null,"hb` + r + `","phoenix","heartbeat",{}]`)
			assert.Equal(t, `[null,"hb`+r+`","phoenix","phx_reply",{"status":"ok","response":{}}]`, c.recv())
			c.send(`["1","e` + r + `","room:1","echo",{"n":` + r + `}]`)
			assert.Equal(t, `["1","e`+r+`","room:1","phx_reply",{"status":"ok","response":{"n":`+r+`}}]`, c.recv())
			require.NoError(t, f.srv.Broadcast(context.Background(), "room:2", "tick", map[string]int{"n": i}))
			assert.Equal(t, `[null,null,"room:2","tick",{"n":`+strconv.Itoa(i)+`}]`, c.recv())
		}
	}
	assert.Equal(t, 100, ok)
	assert.Equal(t, 900, tooMany)
}

// Joins over the join rate that wait for their replies are refused with
// "rate limited", and the socket stays.
func TestSequentialJoinsOverTheRateKeepTheSocket(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.MaxChannels = -1 }, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	ok, limited := 0, 0
	for i := range 400 {
		r := strconv.Itoa(i + 1)
		c.send(`["` + r + `","` + r + `","room:` + r + `","phx_join",{}]`)
		switch f := c.recv(); {
		case strings.Contains(f, `"status":"ok"`):
			ok++
		case strings.Contains(f, `"rate limited"`):
			limited++
		default:
			t.Fatalf("join %d: unexpected %s", i+1, f)
		}
	}
	assert.GreaterOrEqual(t, ok, socket.DefaultJoinBurst)
	assert.Greater(t, limited, socket.DefaultAbuseLimit, "more refusals than the old in-a-row limit, and still open")
	c.send(`["1","e","room:1","echo",{}]`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
}

// A client that sends without reading its replies is closed once
// AbuseLimit refusals wait unwritten.
func TestUnreadRefusalsClose(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) {
		c.MessageRate, c.MessageBurst, c.AbuseLimit = 1, 36, 5
		c.AbuseWindow, c.WriteTimeout = time.Hour, time.Hour
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, f.url+"?token=alice&vsn=2.0.0", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	// The client never reads: its own broadcasts of 1 MiB fill the TCP
	// buffers until the server's writer blocks, then its refusals pile up.
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`["1","1","room:a","phx_join",{}]`)))
	big := `{"x":"` + strings.Repeat("a", 1<<20) + `"}`
	for i := range 35 {
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`["1","b`+strconv.Itoa(i)+`","room:a","bcast",`+big+`]`)))
	}
	// The burst is spent; however long the writes above took (one token a
	// second comes back), far more than AbuseLimit of these are refused.
	for i := range 300 {
		if c.Write(ctx, websocket.MessageText, []byte(`["1","x`+strconv.Itoa(i)+`","room:a","echo",{}]`)) != nil {
			break
		}
	}
	require.Eventually(t, func() bool { return f.srv.Connections() == 0 }, 15*time.Second, 10*time.Millisecond,
		"the flooding client was not closed")
}

func TestJoinRateLimit(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.JoinRate, c.JoinBurst = 1, 2 }, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", nil)
	c.send(`["1","1","room:a","phx_join",{}]`)
	c.send(`["2","2","room:b","phx_join",{}]`)
	c.send(`["3","3","room:c","phx_join",{}]`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
	assert.Equal(t, `["3","3","room:c","phx_reply",{"status":"error","response":{"reason":"rate limited"}}]`, c.recv())
}

func TestMaxConnections(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.MaxConnections = 1 }, nil)
	f.dial(t, "token=alice&vsn=2.0.0", nil)
	// The connection is registered just after the handshake completes.
	require.Eventually(t, func() bool { return f.srv.Connections() == 1 }, 2*time.Second, time.Millisecond)
	_, resp, err := websocket.Dial(context.Background(), f.url+"?token=bob", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// A client that stops reading is closed as a slow consumer with 1013 while
// everyone else keeps receiving every broadcast.
func TestSlowConsumerDoesNotHoldOthers(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.OutboundQueue = 256 }, nil)
	fast := f.dial(t, "token=alice&vsn=2.0.0", nil)
	fast.send(`["1","1","room:a","phx_join",{}]`)
	fast.recv()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, f.url+"?token=bob&vsn=2.0.0", nil)
	require.NoError(t, err)
	defer slow.CloseNow()
	require.NoError(t, slow.Write(ctx, websocket.MessageText, []byte(`["1","1","room:a","phx_join",{}]`)))
	// Wait until the server has subscribed the slow client, then never read again.
	require.Eventually(t, func() bool { return f.srv.PubSub().(interface{ Subscribers(string) int }).Subscribers("room:a") == 2 }, 2*time.Second, 5*time.Millisecond)

	const n = 10000
	body := map[string]string{"pad": strings.Repeat("x", 1024)}
	received := make(chan int, 1)
	go func() {
		got := 0
		for range fast.frames {
			got++
			if got == n {
				break
			}
		}
		received <- got
	}()
	// 5,000 broadcasts a second: a steady stream the reading client keeps up
	// with, while the other one's queue fills.
	for i := range n {
		require.NoError(t, f.srv.Broadcast(context.Background(), "room:a", "tick", body))
		if i%50 == 49 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	select {
	case got := <-received:
		assert.Equal(t, n, got)
	case <-time.After(20 * time.Second):
		t.Fatal("the reading client did not get every broadcast")
	}
	// The slow client was closed with 1013 (its reads now fail).
	_, _, err = slow.Read(context.Background())
	for err == nil {
		_, _, err = slow.Read(context.Background())
	}
	assert.Equal(t, websocket.StatusTryAgainLater, websocket.CloseStatus(err))
}
