package socket_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/pubsub"
)

// lpFixture is the WebSocket tests' fixture (same users, routes and
// Authenticator) with its LongPoll URL and the channels' exit reasons.
type lpFixture struct {
	*fixture
	url        string // .../socket/longpoll
	terminated chan error
}

func newLPFixture(t *testing.T, mod func(*socket.Config[user])) *lpFixture {
	t.Helper()
	terminated := make(chan error, 16)
	f := newFixture(t, func(c *socket.Config[user]) {
		c.LongPollWindow = time.Second
		// Short, so that the many requests for ended sessions stay quick;
		// TestLongPollEndedSessionAnswers checks the order and timing.
		c.LongPollGoneDelay = 100 * time.Millisecond
		if mod != nil {
			mod(c)
		}
	}, func() *room { return &room{terminated: terminated} })
	return &lpFixture{fixture: f, url: f.http.URL + "/socket/longpoll", terminated: terminated}
}

func (f *lpFixture) terminatedWith(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.terminated:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no channel terminated")
		return nil
	}
}

// lpResp is a decoded LongPoll answer plus the raw keys it had.
type lpResp struct {
	HTTP     int
	Header   http.Header
	Status   int      `json:"status"`
	Token    string   `json:"token"`
	Messages []string `json:"messages"`
	Keys     []string
}

func lpDo(t *testing.T, req *http.Request) lpResp {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := lpResp{HTTP: resp.StatusCode, Header: resp.Header}
	if len(body) > 0 {
		require.NoError(t, json.Unmarshal(body, &out), "body %q", body)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &m))
		for k := range m {
			out.Keys = append(out.Keys, k)
		}
	}
	return out
}

func (f *lpFixture) get(t *testing.T, query string, header http.Header) lpResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.url+"?"+query, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	return lpDo(t, req)
}

func (f *lpFixture) post(t *testing.T, query, contentType, body string) lpResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+"?"+query, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	return lpDo(t, req)
}

const ndjson = "application/x-ndjson"

// open creates a session for user name and returns the query later requests use.
func (f *lpFixture) open(t *testing.T, name string) (query, token string) {
	t.Helper()
	r := f.get(t, "token="+name+"&vsn=2.0.0&", nil)
	require.Equal(t, 410, r.Status)
	require.NotEmpty(t, r.Token)
	return "token=" + name + "&vsn=2.0.0&token=" + url.QueryEscape(r.Token), r.Token
}

// collect polls until n messages arrived.
func (f *lpFixture) collect(t *testing.T, query string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		r := f.get(t, query, nil)
		require.Contains(t, []int{200, 204}, r.Status, "poll answered %+v", r)
		got = append(got, r.Messages...)
	}
	require.Len(t, got, n, "messages: %q", got)
	return got
}

func TestLongPollTranscript(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollWindow = 500 * time.Millisecond })

	r := f.get(t, "token=alice&vsn=2.0.0&", nil)
	assert.Equal(t, http.StatusOK, r.HTTP)
	assert.Equal(t, 410, r.Status)
	assert.Empty(t, r.Messages)
	assert.ElementsMatch(t, []string{"status", "token", "messages"}, r.Keys)
	assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, r.Token, r.Header.Get("X-Phoenix-Longpoll-Token"))
	auth := f.lastAuth()
	assert.Equal(t, "alice", auth.Params.Get("token"))
	assert.Equal(t, "longpoll", auth.Transport)
	t1 := r.Token
	query := "token=alice&vsn=2.0.0&token=" + url.QueryEscape(t1)

	held := make(chan lpResp, 1)
	go func() { held <- f.get(t, query, nil) }()
	time.Sleep(50 * time.Millisecond) // let the poll be held

	p := f.post(t, query, ndjson, `["3","3","room:lobby","phx_join",{}]`)
	assert.Equal(t, http.StatusOK, p.HTTP)
	assert.Equal(t, 200, p.Status)
	assert.Equal(t, []string{"status"}, p.Keys)

	r = <-held
	assert.Equal(t, 200, r.Status)
	assert.Equal(t, t1, r.Token)
	assert.Equal(t, []string{`["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]`}, r.Messages)

	start := time.Now()
	r = f.get(t, query, nil)
	assert.Equal(t, 204, r.Status)
	assert.Equal(t, t1, r.Token)
	assert.NotNil(t, r.Messages)
	assert.Empty(t, r.Messages)
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond, "204 only after the window")
	assert.Len(t, f.auth, 1, "connect runs once per session")
}

func TestLongPollNDJSONBatch(t *testing.T) {
	f := newLPFixture(t, nil)
	query, _ := f.open(t, "alice")
	body := "\r\n" + `["3","3","room:a","phx_join",{}]` + "\r\n\n   \n" +
		`["3","4","room:a","echo",{"n":1}]` + "\n" + `["3","5","room:a","echo",{"n":2}]` + "\n"
	p := f.post(t, query, "application/x-ndjson; charset=utf-8", body)
	require.Equal(t, 200, p.Status)
	got := f.collect(t, query, 3)
	assert.Equal(t, []string{
		`["3","3","room:a","phx_reply",{"status":"ok","response":{}}]`,
		`["3","4","room:a","phx_reply",{"status":"ok","response":{"n":1}}]`,
		`["3","5","room:a","phx_reply",{"status":"ok","response":{"n":2}}]`,
	}, got)

	// Any other content type: the whole body is one frame.
	p = f.post(t, query, "application/json", `["3","6","room:a","echo",{"n":3}]`)
	require.Equal(t, 200, p.Status)
	assert.Equal(t, []string{`["3","6","room:a","phx_reply",{"status":"ok","response":{"n":3}}]`}, f.collect(t, query, 1))
}

func TestLongPollHundredLineLimit(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollWindow = 300 * time.Millisecond })
	query, _ := f.open(t, "alice")
	lines := []string{`["3","3","room:a","phx_join",{}]`}
	for i := 4; i < 110; i++ {
		lines = append(lines, `["3","`+strconv.Itoa(i)+`","room:a","echo",{}]`)
	}
	require.Equal(t, 200, f.post(t, query, ndjson, strings.Join(lines, "\n")).Status)
	got := f.collect(t, query, 100)
	assert.Contains(t, got[99], `"102","room:a"`, "the 100th line is the last handled")
	r := f.get(t, query, nil)
	assert.Equal(t, 204, r.Status, "lines after the 100th are ignored: %q", r.Messages)
}

// binaryPush builds a client binary frame (phoenix-protocol.md 2.4).
func binaryPush(joinRef, ref, topic, event string, payload []byte) []byte {
	b := []byte{0, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event))}
	b = append(b, joinRef+ref+topic+event...)
	return append(b, payload...)
}

func TestLongPollBinary(t *testing.T) {
	f := newLPFixture(t, nil)
	query, _ := f.open(t, "alice")
	bin := base64.StdEncoding.EncodeToString(binaryPush("3", "4", "room:a", "binary_len", []byte("hi!\x00")))
	binEcho := base64.StdEncoding.EncodeToString(binaryPush("3", "5", "room:a", "binary_echo", []byte{1, 2}))
	body := strings.Join([]string{
		`["3","3","room:a","phx_join",{}]`, bin, binEcho, `["3","6","room:a","push_binary",{}]`,
	}, "\n")
	require.Equal(t, 200, f.post(t, query, ndjson, body).Status)
	got := f.collect(t, query, 4)
	assert.Equal(t, `["3","4","room:a","phx_reply",{"status":"ok","response":{"binary":true,"bytes":"hi!\u0000"}}]`, got[1])
	// A binary reply cannot travel over LongPoll: it becomes an error reply.
	assert.Equal(t, `["3","5","room:a","phx_reply",{"status":"error","response":{"reason":"protocol: binary payloads are not supported by this serializer"}}]`, got[2])
	// A binary push fails for the handler to see.
	assert.Equal(t, `["3","6","room:a","phx_reply",{"status":"error","response":{"push":"protocol: binary payloads are not supported by this serializer"}}]`, got[3])

	// Binary broadcasts are skipped; JSON ones still arrive.
	ctx := context.Background()
	require.NoError(t, f.srv.Broadcast(ctx, "room:a", "b", channel.Binary("raw")))
	require.NoError(t, f.srv.Broadcast(ctx, "room:a", "j", map[string]int{"x": 1}))
	assert.Equal(t, []string{`[null,null,"room:a","j",{"x":1}]`}, f.collect(t, query, 1))
}

func TestLongPollSessionExpiry(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) {
		c.LongPollWindow = 200 * time.Millisecond
		c.IdleTimeout = 50 * time.Millisecond // LongPoll sessions must ignore it
	})
	query, tok := f.open(t, "alice")
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status)

	// Polling keeps the session alive far beyond the idle timeout, with no heartbeat.
	for range 5 {
		r := f.get(t, query, nil)
		require.Contains(t, []int{200, 204}, r.Status)
	}
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","4","room:a","echo",{}]`).Status)

	// Without polls it expires after 1.5 windows; channels end with Inactive.
	err := f.terminatedWith(t)
	assert.ErrorIs(t, err, channel.Inactive)
	assert.Equal(t, 410, f.post(t, query, ndjson, `["3","5","room:a","echo",{}]`).Status)
	r := f.get(t, query, nil)
	assert.Equal(t, 410, r.Status, "a GET for a gone session opens a new one")
	assert.NotEqual(t, tok, r.Token)
	assert.Equal(t, "alice", f.lastAuth().Params.Get("token"), "the gone session's token is not taken for the user's")
}

func TestLongPollTokenHeaderAndLastWins(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollWindow = 100 * time.Millisecond })
	_, tok := f.open(t, "alice")

	// First token value is the user's, the last the session's: the last wins.
	r := f.get(t, "token=alice&vsn=2.0.0&token="+url.QueryEscape(tok), nil)
	assert.Equal(t, 204, r.Status)
	// The header wins over the query (phoenix.js 1.9 sends only the header).
	r = f.get(t, "token=alice&vsn=2.0.0", http.Header{"X-Phoenix-Longpoll-Token": {tok}})
	assert.Equal(t, 204, r.Status)
	assert.Equal(t, tok, r.Token)
	r = f.get(t, "token=alice&vsn=2.0.0&token="+url.QueryEscape(tok), http.Header{"X-Phoenix-Longpoll-Token": {"garbage"}})
	assert.Equal(t, 410, r.Status, "an invalid header token wins, so a new session")
	assert.NotEqual(t, tok, r.Token)

	// POSTs take the header too.
	req, err := http.NewRequest(http.MethodPost, f.url+"?token=alice", strings.NewReader(`["3","3","room:a","phx_join",{}]`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ndjson)
	req.Header.Set("X-Phoenix-Longpoll-Token", tok)
	assert.Equal(t, 200, lpDo(t, req).Status)

	// authToken rides in X-Phoenix-AuthToken on the GET that creates the session.
	f.get(t, "token=bob&vsn=2.0.0", http.Header{"X-Phoenix-Authtoken": {"secret"}})
	assert.Equal(t, "secret", f.lastAuth().AuthToken)
}

func TestLongPollCORSOriginMethods(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.AllowedOrigins = []string{"https://good.example"} })

	req, err := http.NewRequest(http.MethodOptions, f.url, nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://good.example")
	req.Header.Add("Access-Control-Request-Headers", "x-phoenix-longpoll-token")
	req.Header.Add("Access-Control-Request-Headers", "content-type")
	r := lpDo(t, req)
	assert.Equal(t, http.StatusOK, r.HTTP)
	assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "x-phoenix-longpoll-token, content-type", r.Header.Get("Access-Control-Allow-Headers"))
	assert.Equal(t, "get, post, options", r.Header.Get("Access-Control-Allow-Methods"))
	assert.Equal(t, "3600", r.Header.Get("Access-Control-Max-Age"))
	assert.Empty(t, r.Keys)

	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
		req, err := http.NewRequest(method, f.url+"?token=alice&vsn=2.0.0", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", "https://evil.example")
		r := lpDo(t, req)
		assert.Equal(t, http.StatusOK, r.HTTP, method)
		assert.Equal(t, 403, r.Status, method)
		assert.Equal(t, []string{"status"}, r.Keys, method)
		assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"), method)
	}

	// A refused connect and a bad vsn are 403 too; other methods HTTP 400.
	assert.Equal(t, 403, f.get(t, "token=bad&vsn=2.0.0", nil).Status)
	assert.Equal(t, 403, f.get(t, "token=alice&vsn=3.0.0", nil).Status)
	req, err = http.NewRequest(http.MethodPut, f.url, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, lpDo(t, req).HTTP)
}

func TestLongPollForgedAndExpiredTokens(t *testing.T) {
	f := newLPFixture(t, nil)
	query, tok := f.open(t, "alice")
	other := newLPFixture(t, nil) // another key
	_, foreign := other.open(t, "alice")

	forged := tok[:len(tok)-2] + "AA"
	for _, bad := range []string{forged, foreign, "nonsense", "a.b.c.d.e"} {
		h := http.Header{"X-Phoenix-Longpoll-Token": {bad}}
		r := f.get(t, "token=alice&vsn=2.0.0", h)
		assert.Equal(t, 410, r.Status, "GET with %q opens a new session", bad)
		assert.NotEqual(t, tok, r.Token)
		assert.Equal(t, "alice", f.lastAuth().Params.Get("token"))
		// In the query an unverifiable last token is taken for the user's
		// own (Phoenix does the same): the Authenticator decides.
		r = f.get(t, "token=alice&vsn=2.0.0&token="+url.QueryEscape(bad), nil)
		assert.Equal(t, 410, r.Status)
		assert.Equal(t, bad, f.lastAuth().Params.Get("token"))
		q := "token=alice&vsn=2.0.0&token=" + url.QueryEscape(bad)
		assert.Equal(t, 410, f.post(t, q, ndjson, `["3","3","room:a","phx_join",{}]`).Status, "POST with %q", bad)
	}
	assert.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status, "the real session is unaffected")

	expiring := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollTokenMaxAge = time.Nanosecond })
	q2, tok2 := expiring.open(t, "alice")
	assert.Equal(t, 410, expiring.post(t, q2, ndjson, `["3","3","room:a","phx_join",{}]`).Status)
	r := expiring.get(t, q2, nil)
	assert.Equal(t, 410, r.Status)
	assert.NotEqual(t, tok2, r.Token)
}

func TestLongPollBadBodies(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.MaxFrameSize = 1024 })
	query, _ := f.open(t, "alice")
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status)

	big := `["3","4","room:a","echo",{"x":"` + strings.Repeat("a", 2000) + `"}]`
	r := f.post(t, query, ndjson, big)
	assert.Equal(t, http.StatusBadRequest, r.HTTP)
	assert.Equal(t, 400, r.Status)
	assert.Equal(t, 200, f.post(t, query, ndjson, `["3","5","room:a","echo",{}]`).Status, "an oversized body leaves the session alone")

	// An undecodable frame ends the session: 408, then 410.
	assert.Equal(t, 408, f.post(t, query, ndjson, `["3","6","room:a"`).Status)
	assert.ErrorIs(t, f.terminatedWith(t), channel.Closed)
	assert.Equal(t, 410, f.post(t, query, ndjson, `["3","7","room:a","echo",{}]`).Status)

	// So does a line that is not base64; the frames before it are handled.
	query, _ = f.open(t, "alice")
	assert.Equal(t, 408, f.post(t, query, ndjson, `["3","3","room:b","phx_join",{}]`+"\n!!not base64!!").Status)
	assert.ErrorIs(t, f.terminatedWith(t), channel.Closed)
	assert.Equal(t, 410, f.post(t, query, ndjson, `["3","7","room:b","echo",{}]`).Status)
}

func TestLongPollConcurrentPolls(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollWindow = 5 * time.Second })
	query, _ := f.open(t, "alice")

	const n = 20
	results := make(chan lpResp, n)
	for range n {
		go func() { results <- f.get(t, query, nil) }()
		time.Sleep(5 * time.Millisecond)
	}
	// Each poll ends the one before it with 204, well before the window.
	start := time.Now()
	for range n - 1 {
		select {
		case r := <-results:
			assert.Equal(t, 204, r.Status)
		case <-time.After(3 * time.Second):
			t.Fatal("a superseded poll is still held")
		}
	}
	assert.Less(t, time.Since(start), 3*time.Second)
	// The newest poll gets the frames.
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status)
	r := <-results
	assert.Equal(t, 200, r.Status)
	assert.Len(t, r.Messages, 1)
}

// After a session ends (here by Disconnect), every request answers as
// Phoenix's does once the session's process is gone: the held poll runs out
// its window and gets 204; a POST with the old token gets 410 and a GET a new
// session (410 with a new token), each after the gone delay. phoenix.js 1.7
// rejoins its channels only with this order. Shutdown instead drops held
// polls at once.
func TestLongPollEndedSessionAnswers(t *testing.T) {
	const window, gone = 1500 * time.Millisecond, 500 * time.Millisecond
	f := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollWindow, c.LongPollGoneDelay = window, gone })
	query, tok := f.open(t, "alice")
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status)
	f.collect(t, query, 1)
	bobQuery, _ := f.open(t, "bob")
	require.Equal(t, 200, f.post(t, bobQuery, ndjson, `["3","3","room:b","phx_join",{}]`).Status)
	f.collect(t, bobQuery, 1)

	type timed struct {
		r     lpResp
		after time.Duration
	}
	held := make(chan timed, 1)
	start := time.Now()
	go func() { r := f.get(t, query, nil); held <- timed{r, time.Since(start)} }()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, f.srv.Disconnect(context.Background(), "user_socket:alice"))
	assert.ErrorIs(t, f.terminatedWith(t), channel.Closed)

	// While the poll is held, a POST meets the ended session: 410 after the delay.
	t0 := time.Now()
	assert.Equal(t, 410, f.post(t, query, ndjson, `["3","4","room:a","echo",{}]`).Status)
	assert.GreaterOrEqual(t, time.Since(t0), gone-50*time.Millisecond, "POST for an ended session answered before the gone delay")

	select {
	case h := <-held:
		assert.Equal(t, 204, h.r.Status, "the held poll runs out its window")
		assert.Equal(t, tok, h.r.Token)
		assert.GreaterOrEqual(t, h.after, window-100*time.Millisecond, "held poll answered before its window ended")
	case <-time.After(window + 2*time.Second):
		t.Fatal("held poll not answered at the end of its window")
	}
	t0 = time.Now()
	r := f.get(t, query, nil)
	assert.GreaterOrEqual(t, time.Since(t0), gone-50*time.Millisecond, "GET for an ended session answered before the gone delay")
	assert.Equal(t, 410, r.Status)
	assert.NotEqual(t, tok, r.Token, "a new session")

	// Shutdown drops bob's held poll at once (no answer: the connection
	// closes, as when a node goes down) and ends his channel with Shutdown.
	held2 := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, f.url+"?"+bobQuery, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		held2 <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 = time.Now()
	require.NoError(t, f.srv.Shutdown(ctx))
	err := <-held2
	assert.ErrorIs(t, err, io.EOF, "the held poll's connection is dropped")
	assert.Less(t, time.Since(t0), window/2, "Shutdown waited for the held poll")
	assert.ErrorIs(t, f.terminatedWith(t), channel.Shutdown)
	assert.Equal(t, 403, f.get(t, "token=bob&vsn=2.0.0", nil).Status, "no new sessions after Shutdown")
}

func TestLongPollBufferOverflowEndsSession(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.OutboundQueue = 5 })
	query, _ := f.open(t, "alice")
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status)
	for i := range 20 {
		require.NoError(t, f.srv.Broadcast(context.Background(), "room:a", "e", map[string]int{"i": i}))
	}
	assert.ErrorIs(t, f.terminatedWith(t), channel.Closed)
	assert.Equal(t, 410, f.post(t, query, ndjson, `["3","4","room:a","echo",{}]`).Status)
}

func TestLongPollRelayBetweenNodes(t *testing.T) {
	ps := pubsub.NewLocal("shared")
	key := []byte("the same key on every node")
	mod := func(c *socket.Config[user]) {
		c.PubSub = ps
		c.LongPollKey = key
		c.LongPollWindow = time.Second
	}
	a := newLPFixture(t, mod)
	b := newLPFixture(t, mod)

	// The session lives on a; b relays every request to it.
	r := a.get(t, "token=alice&vsn=2.0.0&", nil)
	require.Equal(t, 410, r.Status)
	tok := r.Token
	query := "token=alice&vsn=2.0.0&token=" + url.QueryEscape(tok)
	body := `["3","3","room:a","phx_join",{}]` + "\n" +
		base64.StdEncoding.EncodeToString(binaryPush("3", "4", "room:a", "binary_len", []byte("bin")))
	require.Equal(t, 200, b.post(t, query, ndjson, body).Status)
	got := b.collect(t, query, 2)
	assert.Equal(t, `["3","3","room:a","phx_reply",{"status":"ok","response":{}}]`, got[0])
	assert.Equal(t, `["3","4","room:a","phx_reply",{"status":"ok","response":{"binary":true,"bytes":"bin"}}]`, got[1])
	assert.Len(t, b.auth, 0, "b never ran connect")
	assert.Equal(t, 1, a.srv.Connections())
	assert.Equal(t, 0, b.srv.Connections())

	// A held relayed poll gets a broadcast; an idle one answers 204.
	held := make(chan lpResp, 1)
	go func() { held <- b.get(t, query, nil) }()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, a.srv.Broadcast(context.Background(), "room:a", "hello", map[string]int{}))
	r = <-held
	assert.Equal(t, 200, r.Status)
	assert.Equal(t, tok, r.Token)
	assert.Equal(t, []string{`[null,null,"room:a","hello",{}]`}, r.Messages)
	assert.Equal(t, 204, b.get(t, query, nil).Status)

	// Once the session is gone, b learns it when nobody acknowledges: POST
	// 410, GET a new session of b's own.
	require.NoError(t, a.srv.Disconnect(context.Background(), "user_socket:alice"))
	assert.ErrorIs(t, a.terminatedWith(t), channel.Closed)
	assert.Equal(t, 410, b.post(t, query, ndjson, `["3","5","room:a","echo",{}]`).Status)
	r = b.get(t, query, nil)
	assert.Equal(t, 410, r.Status)
	assert.NotEqual(t, tok, r.Token)
	assert.Equal(t, "alice", b.lastAuth().Params.Get("token"))
	assert.Equal(t, 1, b.srv.Connections())
}

func TestLongPollWaitsForFramesToBeHandled(t *testing.T) {
	f := newLPFixture(t, func(c *socket.Config[user]) { c.LongPollWindow = 5 * time.Second })
	query, _ := f.open(t, "alice")
	// When the POST answers, its frames have been handled (a join replies
	// from the reader itself), so an immediate poll returns the reply at once.
	require.Equal(t, 200, f.post(t, query, ndjson, `["3","3","room:a","phx_join",{}]`).Status)
	start := time.Now()
	r := f.get(t, query, nil)
	require.Equal(t, 200, r.Status)
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, []string{`["3","3","room:a","phx_reply",{"status":"ok","response":{}}]`}, r.Messages)
}
