package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
	"github.com/phxgo/phx/socket/client"
	"github.com/phxgo/phx/socket/protocol"
)

// TestClient drives every row of the conformance app (docs/conformance.md) with the Go client,
// socket/client, against the real server binary: over WebSocket with both serializers and over
// LongPoll. It is the Go twin of the phoenix.js suite in js/test, and the proof that the client
// behaves like phoenix.js against a server it does not share code with at run time.
//
// Each transport gets its own server process, because /api/disconnect and the presence rows act
// on every socket of a user; within a transport the rows run one after the other.
func TestClient(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the servers are stopped

	bin := testenv.BuildConformance(t)
	for _, tg := range []struct {
		name string
		opts client.Options
	}{
		{"websocket_v2", client.Options{Vsn: "2.0.0"}},
		{"websocket_v1", client.Options{Vsn: "1.0.0"}},
		{"longpoll", client.Options{Transport: client.LongPoll}},
	} {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			e := newClientEnv(t, bin, tg.opts)
			for _, row := range clientRows {
				if !t.Run(row.name, func(t *testing.T) { row.run(t, e) }) && row.fatal {
					break
				}
			}
			if err := e.srv.Stop(); err != nil {
				t.Errorf("conformance server: %v", err)
			}
		})
	}
}

// clientRows are the conformance rows, in the order of docs/conformance.md. A fatal row stops the
// transport's run when it fails (nothing after it can work).
var clientRows = []struct {
	name  string
	run   func(*testing.T, *clientEnv)
	fatal bool
}{
	{"connect", rowConnect, true},
	{"connect_refused", rowConnectRefused, false},
	{"auth_token", rowAuthToken, false},
	{"join", rowJoin, true},
	{"join_refused", rowJoinRefused, false},
	{"echo", rowEcho, false},
	{"echo_error", rowEchoError, false},
	{"push_me", rowPushMe, false},
	{"noreply", rowNoReply, false},
	{"async_reply", rowAsyncReply, false},
	{"whoami", rowWhoami, false},
	{"binary_echo", rowBinaryEcho, false},
	{"pipelined", rowPipelined, false},
	{"crash", rowCrash, false},
	{"stop", rowStop, false},
	{"shout", rowShout, false},
	{"shout_others", rowShoutOthers, false},
	{"intercept", rowIntercept, false},
	{"api_broadcast", rowAPIBroadcast, false},
	{"api_disconnect", rowAPIDisconnect, false},
	{"rate_profile", rowRateProfile, false},
	{"presence", rowPresence, false},
	{"presence_tabs", rowPresenceTabs, false},
	{"presence_crash", rowPresenceCrash, false},
	{"presence_disconnect", rowPresenceDisconnect, false},
	{"channel_limit", rowChannelLimit, false},
	{"heartbeat", rowHeartbeat, false},
	{"bench", rowBench, false},
}

// users are the conformance app's seeded users: token -> whoami reply.
var users = map[string]struct {
	ID       int
	Username string
	Rating   int
}{
	"alice": {1, "alice", 1500},
	"bob":   {2, "bob", 1400},
	"carol": {3, "carol", 1600},
}

// userReply is the join reply of token's user.
func userReply(token string) string {
	u := users[token]
	return fmt.Sprintf(`{"username":%q,"rating":%d}`, u.Username, u.Rating)
}

// clientEnv is one transport's server and the options every client of it starts from.
type clientEnv struct {
	srv    *testenv.Server
	base   client.Options
	hc     *http.Client // its idle connections are closed when the transport's test ends (goleak)
	topics atomic.Int64
}

func newClientEnv(t *testing.T, bin string, base client.Options) *clientEnv {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections) // registered first: runs after every client has closed
	return &clientEnv{srv: testenv.StartConformance(t, bin), base: base, hc: &http.Client{Transport: tr}}
}

// opts returns the transport's options for token ("" sends no token), with short backoffs so
// that the reconnect and rejoin rows take milliseconds rather than phoenix.js's seconds.
func (e *clientEnv) opts(token string) client.Options {
	o := e.base
	if token != "" {
		o.Params = map[string]string{"token": token}
	}
	o.Timeout = 5 * time.Second
	o.ReconnectAfter = func(int) time.Duration { return 20 * time.Millisecond }
	o.RejoinAfter = func(int) time.Duration { return 50 * time.Millisecond }
	o.HTTPClient = e.hc
	return o
}

// dial connects as token, closing the client when the test ends.
func (e *clientEnv) dial(t *testing.T, token string, mods ...func(*client.Options)) *client.Client {
	t.Helper()
	o := e.opts(token)
	for _, mod := range mods {
		mod(&o)
	}
	c, err := client.Dial(testCtx(t), e.srv.SocketURL("/socket"), o)
	require.NoError(t, err, "dial as %q", token)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// topic returns a room topic no other row of this server uses.
func (e *clientEnv) topic() string {
	return "room:go-" + strconv.FormatInt(e.topics.Add(1), 10)
}

// post calls one of the app's HTTP helpers and returns the status code.
func (e *clientEnv) post(t *testing.T, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	res, err := e.hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	return res.StatusCode
}

// testCtx bounds every wait of a row; the rows themselves use much shorter ones.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// join joins topic and takes the join's EventJoined, so that a later Next(EventJoined) waits
// for a rejoin.
func join(t *testing.T, c *client.Client, topic string, params any) *client.Channel {
	t.Helper()
	ch := c.Channel(topic, params)
	_, err := ch.Join(testCtx(t))
	require.NoError(t, err, "join %s", topic)
	next(t, ch, client.EventJoined)
	return ch
}

// next waits up to 5 s for event on ch.
func next(t *testing.T, ch *client.Channel, event string) client.Message {
	t.Helper()
	return nextWithin(t, ch, event, 5*time.Second)
}

// recoveryWait bounds a reconnect after a server-side disconnect. Over LongPoll it takes as long
// as with Phoenix: the held poll runs out its window (10 s) and the next request meets the ended
// session after 2 s.
const recoveryWait = 16 * time.Second

// nextWithin waits up to d for event on ch.
func nextWithin(t *testing.T, ch *client.Channel, event string, d time.Duration) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), d)
	defer cancel()
	m, err := ch.Next(ctx, event)
	require.NoError(t, err, "%s on %s", event, ch.Topic())
	return m
}

// refute asserts that event does not reach ch within d.
func refute(t *testing.T, ch *client.Channel, event string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), d)
	defer cancel()
	if m, err := ch.Next(ctx, event); err == nil {
		t.Errorf("unexpected %s on %s: %s", event, ch.Topic(), m.Payload)
	} else if !errors.Is(err, client.ErrTimeout) {
		t.Errorf("waiting for no %s on %s: %v", event, ch.Topic(), err)
	}
}

// push pushes and requires an ok reply, returning its response as JSON.
func push(t *testing.T, ch *client.Channel, event string, payload any) string {
	t.Helper()
	r, err := ch.Push(testCtx(t), event, payload)
	require.NoError(t, err, "push %s", event)
	return string(r.Response.JSON())
}

// replyError requires err to be a *client.ReplyError and returns its response as JSON.
func replyError(t *testing.T, err error) string {
	t.Helper()
	var re *client.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "error", re.Status)
	return string(re.Response.JSON())
}

func rowConnect(t *testing.T, e *clientEnv) {
	for _, token := range []string{"alice", "bob", "carol"} {
		c := e.dial(t, token)
		r, err := c.Channel(e.topic(), nil).Join(testCtx(t))
		require.NoError(t, err)
		assert.Equal(t, "ok", r.Status)
		assert.JSONEq(t, userReply(token), string(r.Response.JSON()), token)
	}
}

// rowConnectRefused: Phoenix answers a refused connect with 403, on the WebSocket upgrade and on
// LongPoll's first GET alike; Dial reports it and starts no client.
func rowConnectRefused(t *testing.T, e *clientEnv) {
	for _, token := range []string{"mallory", ""} {
		c, err := client.Dial(testCtx(t), e.srv.SocketURL("/socket"), e.opts(token))
		if err == nil {
			_ = c.Close()
			t.Errorf("token %q: connected", token)
			continue
		}
		var de *client.DialError
		if assert.ErrorAs(t, err, &de, "token %q", token) {
			assert.Equal(t, http.StatusForbidden, de.StatusCode, "token %q: %v", token, err)
		}
	}
}

// rowAuthToken: phoenix.js 1.8's authToken (subprotocol, or X-Phoenix-AuthToken over LongPoll)
// next to the token param; the server must still accept the connection.
func rowAuthToken(t *testing.T, e *clientEnv) {
	c := e.dial(t, "alice", func(o *client.Options) { o.AuthToken = "alice-bearer" })
	r, err := c.Channel(e.topic(), nil).Join(testCtx(t))
	require.NoError(t, err)
	assert.JSONEq(t, userReply("alice"), string(r.Response.JSON()))
}

func rowJoin(t *testing.T, e *clientEnv) {
	c := e.dial(t, "carol")
	ch := c.Channel(e.topic(), map[string]string{"some": "param"})
	r, err := ch.Join(testCtx(t))
	require.NoError(t, err)
	assert.JSONEq(t, userReply("carol"), string(r.Response.JSON()))
	assert.Equal(t, client.StateJoined, ch.State())
	m := next(t, ch, client.EventJoined)
	assert.Equal(t, ch.JoinRef(), m.JoinRef)
	require.NoError(t, ch.Leave(testCtx(t)))
	assert.Equal(t, client.StateClosed, ch.State())
}

func rowJoinRefused(t *testing.T, e *clientEnv) {
	c := e.dial(t, "alice")
	for _, tc := range []struct {
		topic  string
		params any
		want   string
	}{
		{"room:locked", nil, `{"reason":"unauthorized"}`},
		{e.topic(), map[string]bool{"fail_join": true}, `{"reason":"join failed"}`},
		{"foo:bar", nil, `{"reason":"unmatched topic"}`},
	} {
		ch := c.Channel(tc.topic, tc.params)
		_, err := ch.Join(testCtx(t))
		assert.JSONEq(t, tc.want, replyError(t, err), tc.topic)
		// Like phoenix.js the channel keeps retrying the join until it is left.
		assert.Equal(t, client.StateErrored, ch.State())
		require.NoError(t, ch.Leave(testCtx(t)))
	}
}

func rowEcho(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	const payload = `{"a":1,"s":"héllo <&> \u2028","list":[1,"two",null],"nested":{"ok":true}}`
	assert.JSONEq(t, payload, push(t, ch, "echo", json.RawMessage(payload)))
}

func rowEchoError(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	_, err := ch.Push(testCtx(t), "echo_error", map[string]int{"e": 1})
	assert.JSONEq(t, `{"e":1}`, replyError(t, err))
}

// rowPushMe: the push arrives before the reply, so it is already buffered when Push returns.
func rowPushMe(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	assert.JSONEq(t, `{}`, push(t, ch, "push_me", map[string]int{"p": 1}))
	done, cancel := context.WithCancel(context.Background())
	cancel()
	m, err := ch.Next(done, "pushed")
	require.NoError(t, err, "pushed was not buffered before the reply")
	assert.JSONEq(t, `{"p":1}`, string(m.Payload.JSON()))
}

func rowNoReply(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	_, err := ch.Push(ctx, "noreply", nil)
	assert.ErrorIs(t, err, client.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.JSONEq(t, `{"after":1}`, push(t, ch, "echo", map[string]int{"after": 1}), "the channel lives on")
}

func rowAsyncReply(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	start := time.Now()
	assert.JSONEq(t, `{"q":1}`, push(t, ch, "async_reply", map[string]int{"q": 1}))
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "the reply comes 50 ms later")
}

func rowWhoami(t *testing.T, e *clientEnv) {
	for token, u := range users {
		ch := join(t, e.dial(t, token), e.topic(), nil)
		want := fmt.Sprintf(`{"id":%d,"username":%q,"rating":%d}`, u.ID, u.Username, u.Rating)
		assert.JSONEq(t, want, push(t, ch, "whoami", nil), token)
	}
}

// rowBinaryEcho: binary frames exist in V2 only. Over WebSocket V2 the reply is a binary frame;
// V1 has no binary frames, so the client refuses to send one; LongPoll carries the client's
// binary frame as a base64 line but cannot carry a binary reply, which the server turns into an
// error reply (phoenix-protocol.md section 6).
func rowBinaryEcho(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	r, err := ch.Push(testCtx(t), "binary_echo", client.Binary{1, 2, 3, 0, 255})
	switch {
	case e.base.Transport == client.LongPoll:
		assert.Contains(t, replyError(t, err), "binary")
	case e.base.Vsn == "1.0.0":
		assert.ErrorIs(t, err, protocol.ErrBinaryUnsupported)
	default:
		require.NoError(t, err)
		assert.True(t, r.Response.IsBinary(), "reply is not binary: %s", r.Response)
		assert.Equal(t, []byte{1, 2, 3, 0, 255}, r.Response.Bytes())
	}
	assert.JSONEq(t, `{"after":true}`, push(t, ch, "echo", map[string]bool{"after": true}), "the channel lives on")
}

// rowPipelined: 150 pushes in flight at once (over LongPoll more than one POST batch of 100),
// each answered by its own reply.
func rowPipelined(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "bob"), e.topic(), nil)
	var wg sync.WaitGroup
	for i := range 150 {
		wg.Go(func() {
			r, err := ch.Push(testCtx(t), "echo", map[string]int{"i": i})
			if assert.NoError(t, err, "push %d", i) {
				assert.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(r.Response.JSON()))
			}
		})
	}
	wg.Wait()
}

// rowCrash: the crashing push gets no reply; the channel sees phx_error, then rejoins by itself
// with a new join ref and works again.
func rowCrash(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	before := ch.JoinRef()
	ctx, cancel := context.WithTimeout(testCtx(t), 500*time.Millisecond)
	defer cancel()
	_, err := ch.Push(ctx, "crash", nil)
	assert.ErrorIs(t, err, client.ErrTimeout, "reply to crash")
	// Phoenix 1.8.10+ says why; earlier versions send {}.
	assert.JSONEq(t, `{"reason":"channel_crash"}`, string(next(t, ch, "phx_error").Payload.JSON()))
	rejoined := next(t, ch, client.EventJoined)
	assert.NotEqual(t, before, rejoined.JoinRef, "a rejoin has a fresh join ref")
	assert.JSONEq(t, `{"again":1}`, push(t, ch, "echo", map[string]int{"again": 1}))
}

// rowStop: the reply, then phx_close; the channel is closed for good.
func rowStop(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "alice"), e.topic(), nil)
	assert.JSONEq(t, `{"bye":true}`, push(t, ch, "stop", nil))
	next(t, ch, "phx_close")
	assert.Equal(t, client.StateClosed, ch.State())
	_, err := ch.Push(testCtx(t), "echo", nil)
	assert.ErrorIs(t, err, client.ErrChannelClosed)
	// No rejoin: once the buffer is drained, Next reports the closed channel.
	_, err = ch.Next(testCtx(t), client.EventJoined)
	assert.ErrorIs(t, err, client.ErrChannelClosed)
}

// room connects each token and joins them all to one fresh topic.
func (e *clientEnv) room(t *testing.T, tokens ...string) (string, []*client.Channel) {
	topic := e.topic()
	chs := make([]*client.Channel, len(tokens))
	for i, token := range tokens {
		chs[i] = join(t, e.dial(t, token), topic, nil)
	}
	return topic, chs
}

func rowShout(t *testing.T, e *clientEnv) {
	_, chs := e.room(t, "alice", "bob")
	require.NoError(t, chs[0].Send("shout", map[string]int{"m": 1}))
	for _, ch := range chs {
		assert.JSONEq(t, `{"m":1,"from":"alice"}`, string(next(t, ch, "shout").Payload.JSON()))
	}
}

func rowShoutOthers(t *testing.T, e *clientEnv) {
	_, chs := e.room(t, "alice", "bob")
	alice, bob := chs[0], chs[1]
	require.NoError(t, alice.Send("shout_others", map[string]int{"m": 2}))
	assert.JSONEq(t, `{"m":2,"from":"alice"}`, string(next(t, bob, "shout").Payload.JSON()))
	// A later reply on the sender's channel, plus a grace period, bounds the wait.
	push(t, alice, "echo", nil)
	refute(t, alice, "shout", 200*time.Millisecond)
}

func rowIntercept(t *testing.T, e *clientEnv) {
	_, chs := e.room(t, "alice", "bob", "carol")
	require.NoError(t, chs[0].Send("shout", map[string]any{"n": 1, "secret": true}))
	require.NoError(t, chs[0].Send("shout", map[string]any{"n": 2}))
	const secret, plain = `{"n":1,"secret":true,"from":"alice"}`, `{"n":2,"from":"alice"}`
	for i, ch := range chs {
		if i != 1 {
			assert.JSONEq(t, secret, string(next(t, ch, "shout").Payload.JSON()), "secret shout at %d", i)
		}
		assert.JSONEq(t, plain, string(next(t, ch, "shout").Payload.JSON()), "plain shout at %d", i)
	}
	refute(t, chs[1], "shout", 100*time.Millisecond)
}

func rowAPIBroadcast(t *testing.T, e *clientEnv) {
	topic, chs := e.room(t, "alice", "bob")
	status := e.post(t, "/api/broadcast?topic="+url.QueryEscape(topic)+"&event=news", `{"n":7,"s":"x"}`)
	require.Equal(t, http.StatusNoContent, status)
	for _, ch := range chs {
		m := next(t, ch, "news")
		assert.JSONEq(t, `{"n":7,"s":"x"}`, string(m.Payload.JSON()))
		assert.Empty(t, m.JoinRef, "a broadcast carries no join ref")
	}
}

// rowAPIDisconnect: both of alice's sockets are closed with a code other than 1000 (1000 would
// stop the client, as it stops phoenix.js), so they reconnect and rejoin; bob is untouched.
func rowAPIDisconnect(t *testing.T, e *clientEnv) {
	topic := e.topic()
	var alices []*client.Client
	var chs []*client.Channel
	for range 2 {
		c := e.dial(t, "alice")
		alices = append(alices, c)
		chs = append(chs, join(t, c, topic, nil))
	}
	bob := join(t, e.dial(t, "bob"), topic, nil)
	bobRef := bob.JoinRef()

	require.Equal(t, http.StatusNoContent, e.post(t, "/api/disconnect?id=1", ""))
	for i, ch := range chs {
		nextWithin(t, ch, client.EventJoined, recoveryWait)
		assert.NoError(t, alices[i].Err(), "the client must keep running")
		assert.JSONEq(t, `{"back":1}`, push(t, ch, "echo", map[string]int{"back": 1}))
	}
	assert.Equal(t, bobRef, bob.JoinRef(), "bob rejoined")
	assert.JSONEq(t, `{"bob":1}`, push(t, bob, "echo", map[string]int{"bob": 1}))
}

// rowRateProfile: rate goes through the ephemeral user service, profile reads the store, and the
// assigns (whoami) keep the connect-time rating, even on a new connection.
func rowRateProfile(t *testing.T, e *clientEnv) {
	ch := join(t, e.dial(t, "carol"), e.topic(), nil)
	rating := func(event string, payload any) int {
		t.Helper()
		var body struct{ Rating *int }
		r, err := ch.Push(testCtx(t), event, payload)
		require.NoError(t, err, event)
		require.NoError(t, r.Response.Decode(&body))
		require.NotNil(t, body.Rating, "%s: %s", event, r.Response)
		return *body.Rating
	}
	start := rating("profile", nil)
	assert.Equal(t, start+25, rating("rate", map[string]int{"delta": 25}))
	assert.Equal(t, start+20, rating("rate", map[string]int{"delta": -5}))
	assert.Equal(t, start+20, rating("profile", nil))
	assert.Equal(t, 1600, rating("whoami", nil))
	for _, bad := range []any{map[string]any{}, map[string]any{"delta": "x"}, map[string]any{"delta": 1.5}} {
		_, err := ch.Push(testCtx(t), "rate", bad)
		replyError(t, err)
	}

	ch2 := join(t, e.dial(t, "carol"), e.topic(), nil)
	assert.JSONEq(t, `{"id":3,"username":"carol","rating":1600}`, push(t, ch2, "whoami", nil))
	assert.JSONEq(t, fmt.Sprintf(`{"rating":%d}`, start+20), push(t, ch2, "profile", nil))
	// Leave the store as the other rows expect it.
	rating("rate", map[string]int{"delta": -20})
}

// tracked is a channel with a client.Presence attached before its join, recording the
// callbacks the way the phoenix.js suite does.
type tracked struct {
	c      *client.Client
	ch     *client.Channel
	p      *client.Presence
	synced chan struct{}

	mu    sync.Mutex
	calls []string
}

func (e *clientEnv) track(t *testing.T, token, topic string) *tracked {
	t.Helper()
	tr := &tracked{c: e.dial(t, token), synced: make(chan struct{}, 1)}
	tr.ch = tr.c.Channel(topic, nil)
	tr.p = client.NewPresence(tr.ch, client.PresenceOptions{
		OnJoin: func(key string, cur *client.PresenceEntry, joined client.PresenceEntry) {
			tr.record(fmt.Sprintf("join %s %s +%d", key, map[bool]string{true: "new", false: "again"}[cur == nil], len(joined.Metas)))
		},
		OnLeave: func(key string, rest, left client.PresenceEntry) {
			tr.record(fmt.Sprintf("leave %s -%d =%d", key, len(left.Metas), len(rest.Metas)))
		},
		OnSync: func() {
			select {
			case tr.synced <- struct{}{}:
			default:
			}
		},
	})
	_, err := tr.ch.Join(testCtx(t))
	require.NoError(t, err)
	return tr
}

func (tr *tracked) record(call string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.calls = append(tr.calls, call)
}

func (tr *tracked) callLog() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.calls)
}

func (tr *tracked) called(call string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Contains(tr.calls, call)
}

// summary is the presence list as "key:rating,rating key:rating": what a UI would render.
func (tr *tracked) summary() string {
	var keys []string
	for _, e := range tr.p.List() {
		var ratings []string
		for _, m := range e.Metas {
			var meta struct{ Rating int }
			_ = m.Decode(&meta)
			ratings = append(ratings, strconv.Itoa(meta.Rating))
		}
		slices.Sort(ratings)
		keys = append(keys, e.Key+":"+strings.Join(ratings, ","))
	}
	return strings.Join(keys, " ")
}

// refs returns the phx_refs of key's metas, sorted.
func (tr *tracked) refs(key string) []string {
	e, _ := tr.p.Get(key)
	var refs []string
	for _, m := range e.Metas {
		refs = append(refs, m.Ref)
	}
	slices.Sort(refs)
	return refs
}

// await waits until the presence list reads want. Diffs within the tracker's coalescing window
// arrive as one, so the test waits for a state, not for a number of syncs.
func (tr *tracked) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for tr.summary() != want {
		select {
		case <-tr.synced:
		case <-deadline.C:
			t.Fatalf("presence %q, want %q (callbacks %q)", tr.summary(), want, tr.callLog())
		}
	}
}

func rowPresence(t *testing.T, e *clientEnv) {
	topic := e.topic()
	alice := e.track(t, "alice", topic)
	alice.await(t, "alice:1500")
	bob := e.track(t, "bob", topic)
	bob.await(t, "alice:1500 bob:1400")
	alice.await(t, "alice:1500 bob:1400")
	for _, tr := range []*tracked{alice, bob} {
		for _, key := range []string{"alice", "bob"} {
			if refs := tr.refs(key); assert.Len(t, refs, 1, key) {
				assert.NotEmpty(t, refs[0], "phx_ref")
			}
		}
	}
	assert.Equal(t, bob.refs("bob"), alice.refs("bob"), "the refs are the server's")
	assert.True(t, alice.called("join bob new +1"), "alice's callbacks: %q", alice.callLog())

	require.NoError(t, bob.ch.Leave(testCtx(t)))
	alice.await(t, "alice:1500")
	assert.True(t, alice.called("leave bob -1 =0"), "alice's callbacks: %q", alice.callLog())
}

// rowPresenceTabs: one user on two sockets is one key with two metas; closing one socket keeps
// the user present. A LongPoll client that stops polling is noticed only when its session expires
// (1.5 windows, 15 s by default, as in Phoenix), so over LongPoll the closing tab leaves its
// channel first, as a page's unload handler would.
func rowPresenceTabs(t *testing.T, e *clientEnv) {
	topic := e.topic()
	bob := e.track(t, "bob", topic)
	tab1 := e.track(t, "alice", topic)
	bob.await(t, "alice:1500 bob:1400")
	tab2 := e.track(t, "alice", topic)
	for _, tr := range []*tracked{bob, tab1, tab2} {
		tr.await(t, "alice:1500,1500 bob:1400")
	}
	assert.True(t, bob.called("join alice again +1"), "bob's callbacks: %q", bob.callLog())
	assert.Equal(t, tab1.refs("alice"), tab2.refs("alice"), "both tabs see both metas")

	if e.base.Transport == client.LongPoll {
		require.NoError(t, tab2.ch.Leave(testCtx(t)))
	}
	require.NoError(t, tab2.c.Close())
	for _, tr := range []*tracked{bob, tab1} {
		tr.await(t, "alice:1500 bob:1400")
	}
	assert.True(t, bob.called("leave alice -1 =1"), "bob's callbacks: %q", bob.callLog())
}

// rowPresenceCrash: a crashed channel's presence leaves; the client rejoins, is tracked again
// with a new phx_ref, and its own Presence takes the rejoin's presence_state.
func rowPresenceCrash(t *testing.T, e *clientEnv) {
	topic := e.topic()
	alice := e.track(t, "alice", topic)
	bob := e.track(t, "bob", topic)
	alice.await(t, "alice:1500 bob:1400")
	before := alice.refs("bob")

	require.NoError(t, bob.ch.Send("crash", nil))
	alice.await(t, "alice:1500")
	alice.await(t, "alice:1500 bob:1400")
	bob.await(t, "alice:1500 bob:1400")
	assert.NotEqual(t, before, alice.refs("bob"), "the rejoin is a new presence")
	awaitEqual(t, alice.refs, bob.refs, "bob")
}

// awaitEqual waits until a(key) equals b(key): two clients see a rejoin's presence at slightly
// different times.
func awaitEqual(t *testing.T, a, b func(string) []string, key string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !slices.Equal(a(key), b(key)); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("refs of %s: %q and %q", key, a(key), b(key))
		}
	}
}

// rowPresenceDisconnect: a socket killed by POST /api/disconnect leaves; the client reconnects,
// rejoins and is tracked again.
func rowPresenceDisconnect(t *testing.T, e *clientEnv) {
	topic := e.topic()
	alice := e.track(t, "alice", topic)
	bob := e.track(t, "bob", topic)
	alice.await(t, "alice:1500 bob:1400")
	before := alice.refs("bob")

	require.Equal(t, http.StatusNoContent, e.post(t, "/api/disconnect?id=2", ""))
	for deadline := time.Now().Add(recoveryWait); ; time.Sleep(10 * time.Millisecond) {
		if now := alice.refs("bob"); len(now) == 1 && now[0] != before[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new presence of bob at alice: %q (before %q, callbacks %q)", alice.refs("bob"), before, alice.callLog())
		}
	}
	alice.await(t, "alice:1500 bob:1400")
	bob.await(t, "alice:1500 bob:1400")
	awaitEqual(t, alice.refs, bob.refs, "bob")
}

// rowChannelLimit: Phoenix's 100 channels per connection; the 101st join is refused and the
// others keep working.
func rowChannelLimit(t *testing.T, e *clientEnv) {
	c := e.dial(t, "bob")
	prefix := e.topic()
	chs := make([]*client.Channel, 100)
	var wg sync.WaitGroup
	for i := range chs {
		chs[i] = c.Channel(fmt.Sprintf("%s-%d", prefix, i+1), nil)
		wg.Go(func() {
			_, err := chs[i].Join(testCtx(t))
			assert.NoError(t, err, "join %d", i+1)
		})
	}
	wg.Wait()
	extra := c.Channel(prefix+"-101", nil)
	_, err := extra.Join(testCtx(t))
	assert.JSONEq(t, `{"reason":"too many channels joined"}`, replyError(t, err))
	require.NoError(t, extra.Leave(testCtx(t)))
	assert.JSONEq(t, `{"n":100}`, push(t, chs[99], "echo", map[string]int{"n": 100}))
}

// rowHeartbeat: with a 100 ms interval, a heartbeat still unanswered when the next is due would
// drop the connection, so a second without a drop (same join ref, nothing logged) means about ten
// heartbeats were answered in time. Over LongPoll the client sends none, as phoenix.js, and the
// session stays up on its held polls.
func rowHeartbeat(t *testing.T, e *clientEnv) {
	logs := &logRecorder{}
	c := e.dial(t, "alice", func(o *client.Options) {
		o.HeartbeatInterval = 100 * time.Millisecond
		o.Logger = slog.New(logs)
	})
	ch := join(t, c, e.topic(), nil)
	ref := ch.JoinRef()
	time.Sleep(time.Second)
	assert.True(t, c.Connected())
	assert.Equal(t, ref, ch.JoinRef(), "the channel rejoined: the connection dropped")
	assert.Empty(t, logs.String(), "client logs")
	assert.JSONEq(t, `{}`, push(t, ch, "echo", map[string]any{}))
}

// rowBench: bench:* is for load tests: join ok {}, echo, shout relayed unchanged, and neither
// presence nor intercept.
func rowBench(t *testing.T, e *clientEnv) {
	topic := "bench:" + strings.TrimPrefix(e.topic(), "room:")
	bob := e.dial(t, "bob").Channel(topic, nil)
	r, err := bob.Join(testCtx(t))
	require.NoError(t, err)
	assert.JSONEq(t, `{}`, string(r.Response.JSON()))
	alice := join(t, e.dial(t, "alice"), topic, nil)
	assert.JSONEq(t, `{"x":[1]}`, push(t, alice, "echo", map[string][]int{"x": {1}}))
	require.NoError(t, alice.Send("shout", map[string]any{"n": 1, "secret": true}))
	assert.JSONEq(t, `{"n":1,"secret":true}`, string(next(t, alice, "shout").Payload.JSON()))
	assert.JSONEq(t, `{"n":1,"secret":true}`, string(next(t, bob, "shout").Payload.JSON()), "no intercept for bob")
	push(t, alice, "echo", nil)
	refute(t, alice, "presence_state", 50*time.Millisecond)
}

// logRecorder is a slog.Handler keeping every record at Debug and above.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&l.buf, " %s", a); return true })
	l.buf.WriteByte('\n')
	return nil
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
