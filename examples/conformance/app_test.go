package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// These tests drive the app in-process with raw V2 frames
// ([join_ref, ref, topic, event, payload]), which pins down the exact wire
// shape that phoenix.js's Presence and the JS suites rely on.

// noLeaks checks, when the test ends, that every goroutine it started has
// ended. Call it first, so that its cleanup runs after all the others.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// startApp serves a new app on an httptest server, shuts both down when the
// test ends, and returns the app's WebSocket URL.
func startApp(t *testing.T, opts options) string {
	t.Helper()
	a, err := newApp(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a.handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The app first: httptest's Close waits for requests, and the
		// hijacked WebSocket connections end only when the app closes them.
		if err := a.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket/websocket"
}

// frame is one decoded V2 message.
type frame struct {
	JoinRef, Ref *string
	Topic, Event string
	Payload      json.RawMessage
}

func (f frame) String() string {
	return fmt.Sprintf("%s %s %s", f.Topic, f.Event, f.Payload)
}

// client is one raw WebSocket connection.
type client struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
	ref  int
	seen []frame // frames read but not yet consumed by next
}

func dial(t *testing.T, url, token string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url+"?vsn=2.0.0&token="+token, nil)
	if err != nil {
		t.Fatalf("dial as %s: %v", token, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &client{t: t, name: token, ws: ws}
}

// send writes a message and returns its ref. joinRef "" means none.
func (c *client) send(joinRef, topic, event string, payload any) string {
	c.t.Helper()
	c.ref++
	ref := strconv.Itoa(c.ref)
	var jr any
	if joinRef != "" {
		jr = joinRef
	}
	b, err := json.Marshal([]any{jr, ref, topic, event, payload})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
	return ref
}

// next returns the first frame (already buffered or read within the
// timeout) that match accepts; the others stay buffered for later calls.
func (c *client) next(what string, match func(frame) bool) frame {
	c.t.Helper()
	for i, f := range c.seen {
		if match(f) {
			c.seen = append(c.seen[:i:i], c.seen[i+1:]...)
			return f
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v; unmatched frames: %v", c.name, what, err, c.seen)
		}
		var raw []json.RawMessage
		var f frame
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 5 {
			c.t.Fatalf("%s: bad frame %s", c.name, b)
		}
		_ = json.Unmarshal(raw[0], &f.JoinRef)
		_ = json.Unmarshal(raw[1], &f.Ref)
		_ = json.Unmarshal(raw[2], &f.Topic)
		_ = json.Unmarshal(raw[3], &f.Event)
		f.Payload = raw[4]
		if match(f) {
			return f
		}
		c.seen = append(c.seen, f)
	}
}

// event waits for a push of event on topic and decodes its payload.
func (c *client) event(topic, event string, into any) {
	c.t.Helper()
	f := c.next(topic+" "+event, func(f frame) bool { return f.Topic == topic && f.Event == event })
	if err := json.Unmarshal(f.Payload, into); err != nil {
		c.t.Fatalf("%s: %s payload %s: %v", c.name, event, f.Payload, err)
	}
}

// reply is a phx_reply payload.
type reply struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

// call sends event and waits for its reply.
func (c *client) call(joinRef, topic, event string, payload any) reply {
	c.t.Helper()
	ref := c.send(joinRef, topic, event, payload)
	f := c.next("reply to "+event, func(f frame) bool {
		return f.Event == "phx_reply" && f.Ref != nil && *f.Ref == ref
	})
	var r reply
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		c.t.Fatal(err)
	}
	return r
}

// join joins topic, fails the test unless the reply is ok, and returns the
// join ref to use for the channel's messages.
func (c *client) join(topic string) string {
	c.t.Helper()
	ref := strconv.Itoa(c.ref + 1)
	if r := c.call(ref, topic, "phx_join", map[string]any{}); r.Status != "ok" {
		c.t.Fatalf("%s: join %s: %s %s", c.name, topic, r.Status, r.Response)
	}
	return ref
}

// rating calls event ("rate", "profile" or "whoami") and returns the
// rating of its ok reply.
func (c *client) rating(joinRef, topic, event string, payload any) int {
	c.t.Helper()
	r := c.call(joinRef, topic, event, payload)
	var body struct{ Rating *int }
	if err := json.Unmarshal(r.Response, &body); r.Status != "ok" || err != nil || body.Rating == nil {
		c.t.Fatalf("%s: %s: %s %s", c.name, event, r.Status, r.Response)
	}
	return *body.Rating
}

// presenceList is the shape of presence_state and of a diff's joins/leaves.
type presenceList map[string]struct {
	Metas []struct {
		Rating int    `json:"rating"`
		PhxRef string `json:"phx_ref"`
	} `json:"metas"`
}

// view is what a client knows of a topic's presences, kept up to date the
// way phoenix.js's Presence does it: key -> phx_ref -> rating.
type view map[string]map[string]int

func (v view) add(l presenceList, sign int) {
	for key, e := range l {
		for _, m := range e.Metas {
			if v[key] == nil {
				v[key] = map[string]int{}
			}
			if sign > 0 {
				v[key][m.PhxRef] = m.Rating
			} else {
				delete(v[key], m.PhxRef)
			}
		}
		if len(v[key]) == 0 {
			delete(v, key)
		}
	}
}

// String lists the view as "key:rating,rating key:rating", sorted, for
// comparing with what a test expects.
func (v view) String() string {
	keys := make([]string, 0, len(v))
	for key, metas := range v {
		var rs []string
		for _, r := range metas {
			rs = append(rs, strconv.Itoa(r))
		}
		slices.Sort(rs)
		keys = append(keys, key+":"+strings.Join(rs, ","))
	}
	slices.Sort(keys)
	return strings.Join(keys, " ")
}

// presenceState reads the client's presence_state for topic into a view
// and checks it.
func (c *client) presenceState(topic, want string) view {
	c.t.Helper()
	var l presenceList
	c.event(topic, "presence_state", &l)
	v := view{}
	v.add(l, 1)
	if v.String() != want {
		c.t.Errorf("%s: presence_state of %s = %q, want %q", c.name, topic, v, want)
	}
	return v
}

// await applies presence_diffs to v until it reads want. Diffs made within
// the tracker's coalescing window arrive as one, so the test waits for a
// state rather than for a given number of diffs.
func (c *client) await(topic string, v view, want string) {
	c.t.Helper()
	for v.String() != want {
		var d struct{ Joins, Leaves presenceList }
		f := c.next(fmt.Sprintf("presence %q (have %q)", want, v), func(f frame) bool {
			return f.Topic == topic && f.Event == "presence_diff"
		})
		if err := json.Unmarshal(f.Payload, &d); err != nil {
			c.t.Fatal(err)
		}
		v.add(d.Joins, 1)
		v.add(d.Leaves, -1)
	}
}

func TestPresenceStateAndDiffs(t *testing.T) {
	noLeaks(t)
	url := startApp(t, options{node: "test"})
	const topic = "room:presence"

	alice := dial(t, url, "alice")
	alice.join(topic)
	va := alice.presenceState(topic, "alice:1500")
	alice.await(topic, va, "alice:1500") // her own join comes as a diff too, as in Phoenix

	bob := dial(t, url, "bob")
	bobRef := bob.join(topic)
	vb := bob.presenceState(topic, "alice:1500 bob:1400")
	alice.await(topic, va, "alice:1500 bob:1400")

	// A second tab of alice's is a second meta under the same key.
	alice2 := dial(t, url, "alice")
	alice2.join(topic)
	alice2.presenceState(topic, "alice:1500,1500 bob:1400")
	alice.await(topic, va, "alice:1500,1500 bob:1400")
	bob.await(topic, vb, "alice:1500,1500 bob:1400")

	// A crash ends bob's channel, and his presence leaves with it.
	bob.send(bobRef, topic, "crash", map[string]any{})
	bob.next("phx_error", func(f frame) bool { return f.Topic == topic && f.Event == "phx_error" })
	alice.await(topic, va, "alice:1500,1500")

	// So does closing a connection.
	alice2.ws.CloseNow()
	alice.await(topic, va, "alice:1500")

	// bench:* has no presence: the first frame after the join reply is the
	// echo's reply, not a presence_state.
	benchRef := bob.join("bench:1")
	bob.send(benchRef, "bench:1", "echo", map[string]any{})
	if f := bob.next("any bench frame", func(f frame) bool { return f.Topic == "bench:1" }); f.Event != "phx_reply" {
		t.Errorf("bench:1 sent %v", f)
	}
}

func TestRateProfileWhoami(t *testing.T) {
	noLeaks(t)
	url := startApp(t, options{node: "test"})
	const topic = "room:rate"
	carol := dial(t, url, "carol")
	ref := carol.join(topic)

	if got := carol.rating(ref, topic, "rate", map[string]int{"delta": 25}); got != 1625 {
		t.Errorf("rate +25 = %d, want 1625", got)
	}
	if got := carol.rating(ref, topic, "rate", map[string]int{"delta": -5}); got != 1620 {
		t.Errorf("rate -5 = %d, want 1620", got)
	}
	if got := carol.rating(ref, topic, "profile", nil); got != 1620 {
		t.Errorf("profile = %d, want 1620", got)
	}
	// The assigns are the connect-time snapshot: they never change, not
	// even for a connection made after the rating changed.
	if got := carol.rating(ref, topic, "whoami", nil); got != 1600 {
		t.Errorf("whoami = %d, want 1600", got)
	}
	carol2 := dial(t, url, "carol")
	ref2 := carol2.join(topic)
	if got := carol2.rating(ref2, topic, "whoami", nil); got != 1600 {
		t.Errorf("whoami on a new connection = %d, want 1600", got)
	}
	if got := carol2.rating(ref2, topic, "profile", nil); got != 1620 {
		t.Errorf("profile on a new connection = %d, want 1620", got)
	}

	for _, bad := range []any{map[string]any{}, map[string]any{"delta": "x"}, map[string]any{"delta": 1.5}} {
		if r := carol.call(ref, topic, "rate", bad); r.Status != "error" {
			t.Errorf("rate %v: %s %s, want an error", bad, r.Status, r.Response)
		}
	}
}

// TestSharedDB runs two apps on one SQLite file, as two nodes on one
// machine would, and hammers one user's rating from both at once: the
// versioned saves must make every delta count exactly once.
func TestSharedDB(t *testing.T) {
	noLeaks(t)
	db := filepath.Join(t.TempDir(), "users.db")
	const topic, perApp = "room:db", 100

	var wg sync.WaitGroup
	clients := make([]*client, 2)
	refs := make([]string, 2)
	for i := range clients {
		url := startApp(t, options{node: "node" + strconv.Itoa(i), db: db})
		clients[i] = dial(t, url, "alice")
		refs[i] = clients[i].join(topic)
	}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Pipelined: every push is on the wire before the first reply,
			// so the two apps' saves overlap.
			sent := make([]string, perApp)
			for n := range sent {
				sent[n] = c.send(refs[i], topic, "rate", map[string]int{"delta": i + 1})
			}
			for _, ref := range sent {
				f := c.next("rate reply", func(f frame) bool { return f.Ref != nil && *f.Ref == ref })
				if !strings.Contains(string(f.Payload), `"status":"ok"`) {
					t.Errorf("app %d: rate: %s", i, f.Payload)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := 1500 + perApp*1 + perApp*2
	for i, c := range clients {
		if got := c.rating(refs[i], topic, "profile", nil); got != want {
			t.Errorf("profile on app %d = %d, want %d", i, got, want)
		}
	}

	// A later start on the same file keeps the ratings: seeding only
	// inserts users that are missing.
	url := startApp(t, options{node: "node2", db: db})
	alice := dial(t, url, "alice")
	ref := alice.join(topic)
	if got := alice.rating(ref, topic, "profile", nil); got != want {
		t.Errorf("profile after a restart = %d, want %d", got, want)
	}
}
