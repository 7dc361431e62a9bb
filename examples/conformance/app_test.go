package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/socket/client"
)

// These tests drive the app in-process, on an httptest server, with the Go
// client (socket/client): every protocol detail is the client's business,
// so a test reads as the behaviour it checks. The byte-level shape of the
// frames is pinned down by the socket package's tests and by the phoenix.js
// suites (interop_test.go), which run against the built binary.

// TestMain checks that no goroutine outlives the tests. The tests of this
// file run in parallel, so a per-test check would see the others'.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startApp serves a new app on an httptest server, shuts both down when the
// test ends, and returns the app's socket URL (ws://HOST/socket).
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
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket"
}

// testCtx bounds every wait of a test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to url as token; the client is closed when the test ends.
func dial(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.Dial(testCtx(t), url, client.Options{Params: map[string]string{"token": token}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("dial as %s: %v", token, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// join joins topic and fails the test unless the reply is ok.
func join(t *testing.T, c *client.Client, topic string) *client.Channel {
	t.Helper()
	ch := c.Channel(topic, nil)
	if _, err := ch.Join(testCtx(t)); err != nil {
		t.Fatalf("join %s: %v", topic, err)
	}
	return ch
}

// rating pushes event ("rate", "profile" or "whoami") and returns the rating
// of its ok reply.
func rating(t *testing.T, ch *client.Channel, event string, payload any) int {
	t.Helper()
	r, err := ch.Push(testCtx(t), event, payload)
	var body struct{ Rating *int }
	if err != nil || r.Response.Decode(&body) != nil || body.Rating == nil {
		t.Fatalf("%s: %v %s", event, err, r.Response)
	}
	return *body.Rating
}

// watched is a channel with a client.Presence, attached before the join as
// an app does so that the first presence_state is not missed.
type watched struct {
	ch     *client.Channel
	p      *client.Presence
	synced chan struct{}
}

func watch(t *testing.T, c *client.Client, topic string) *watched {
	t.Helper()
	w := &watched{ch: c.Channel(topic, nil), synced: make(chan struct{}, 1)}
	w.p = client.NewPresence(w.ch, client.PresenceOptions{OnSync: func() {
		select {
		case w.synced <- struct{}{}:
		default:
		}
	}})
	if _, err := w.ch.Join(testCtx(t)); err != nil {
		t.Fatalf("join %s: %v", topic, err)
	}
	return w
}

// String lists the presences as "key:rating,rating key:rating", sorted:
// what a page would render.
func (w *watched) String() string {
	var keys []string
	for _, e := range w.p.List() {
		var rs []string
		for _, m := range e.Metas {
			var meta struct{ Rating int }
			_ = m.Decode(&meta)
			rs = append(rs, strconv.Itoa(meta.Rating))
		}
		slices.Sort(rs)
		keys = append(keys, e.Key+":"+strings.Join(rs, ","))
	}
	return strings.Join(keys, " ")
}

// await waits until the list reads want. Changes within the tracker's
// coalescing window arrive as one diff, so the test waits for a state
// rather than for a number of diffs.
func (w *watched) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for w.String() != want {
		select {
		case <-w.synced:
		case <-deadline.C:
			t.Fatalf("presence on %s: %q, want %q", w.ch.Topic(), w, want)
		}
	}
}

func TestPresenceStateAndDiffs(t *testing.T) {
	t.Parallel()
	url := startApp(t, options{node: "test"})
	const topic = "room:presence"

	alice := watch(t, dial(t, url, "alice"), topic)
	alice.await(t, "alice:1500")

	bobClient := dial(t, url, "bob")
	bob := watch(t, bobClient, topic)
	bob.await(t, "alice:1500 bob:1400")
	alice.await(t, "alice:1500 bob:1400")

	// A second tab of alice's is a second meta under the same key.
	alice2Client := dial(t, url, "alice")
	alice2 := watch(t, alice2Client, topic)
	for _, w := range []*watched{alice, bob, alice2} {
		w.await(t, "alice:1500,1500 bob:1400")
	}
	if e, _ := alice.p.Get("alice"); len(e.Metas) != 2 || e.Metas[0].Ref == "" || e.Metas[0].Ref == e.Metas[1].Ref {
		t.Errorf("alice's metas need distinct phx_refs: %+v", e.Metas)
	}

	// A crash ends bob's channel, and his presence leaves with it; the
	// client rejoins (after 1 s, as phoenix.js) and is tracked again.
	if err := bob.ch.Send("crash", nil); err != nil {
		t.Fatal(err)
	}
	alice.await(t, "alice:1500,1500")
	alice.await(t, "alice:1500,1500 bob:1400")

	// Closing a connection leaves too.
	if err := alice2Client.Close(); err != nil {
		t.Fatal(err)
	}
	alice.await(t, "alice:1500 bob:1400")

	// bench:* has no presence: nothing but the echo's reply comes back.
	bench := join(t, bobClient, "bench:1")
	if _, err := bench.Push(testCtx(t), "echo", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	none, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if m, err := bench.Next(none, "presence_state", "presence_diff"); err == nil {
		t.Errorf("bench:1 sent %s %s", m.Event, m.Payload)
	}
}

func TestRateProfileWhoami(t *testing.T) {
	t.Parallel()
	url := startApp(t, options{node: "test"})
	const topic = "room:rate"
	carol := join(t, dial(t, url, "carol"), topic)

	if got := rating(t, carol, "rate", map[string]int{"delta": 25}); got != 1625 {
		t.Errorf("rate +25 = %d, want 1625", got)
	}
	if got := rating(t, carol, "rate", map[string]int{"delta": -5}); got != 1620 {
		t.Errorf("rate -5 = %d, want 1620", got)
	}
	if got := rating(t, carol, "profile", nil); got != 1620 {
		t.Errorf("profile = %d, want 1620", got)
	}
	// The assigns are the connect-time snapshot: they never change, not
	// even for a connection made after the rating changed.
	if got := rating(t, carol, "whoami", nil); got != 1600 {
		t.Errorf("whoami = %d, want 1600", got)
	}
	carol2 := join(t, dial(t, url, "carol"), topic)
	if got := rating(t, carol2, "whoami", nil); got != 1600 {
		t.Errorf("whoami on a new connection = %d, want 1600", got)
	}
	if got := rating(t, carol2, "profile", nil); got != 1620 {
		t.Errorf("profile on a new connection = %d, want 1620", got)
	}

	for _, bad := range []any{map[string]any{}, map[string]any{"delta": "x"}, map[string]any{"delta": 1.5}} {
		var re *client.ReplyError
		if _, err := carol.Push(testCtx(t), "rate", bad); !errors.As(err, &re) || re.Status != "error" {
			t.Errorf("rate %v: %v, want an error reply", bad, err)
		}
	}
}

// TestSharedDB runs two apps on one SQLite file, as two nodes on one
// machine would, and hammers one user's rating from both at once: the
// versioned saves must make every delta count exactly once.
func TestSharedDB(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "users.db")
	const topic, perApp = "room:db", 100

	chs := make([]*client.Channel, 2)
	for i := range chs {
		url := startApp(t, options{node: "node" + strconv.Itoa(i), db: db})
		chs[i] = join(t, dial(t, url, "alice"), topic)
	}
	// Every push is in flight at once, so the two apps' saves overlap.
	var wg sync.WaitGroup
	for i, ch := range chs {
		for range perApp {
			wg.Go(func() {
				if _, err := ch.Push(testCtx(t), "rate", map[string]int{"delta": i + 1}); err != nil {
					t.Errorf("app %d: rate: %v", i, err)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := 1500 + perApp*1 + perApp*2
	for i, ch := range chs {
		if got := rating(t, ch, "profile", nil); got != want {
			t.Errorf("profile on app %d = %d, want %d", i, got, want)
		}
	}

	// A later start on the same file keeps the ratings: seeding only
	// inserts users that are missing.
	url := startApp(t, options{node: "node2", db: db})
	alice := join(t, dial(t, url, "alice"), topic)
	if got := rating(t, alice, "profile", nil); got != want {
		t.Errorf("profile after a restart = %d, want %d", got, want)
	}
}
