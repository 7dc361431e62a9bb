package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

const testSecret = "a test secret key base, not for production"

// startLobby serves a lobby on an httptest server until the test ends and
// returns its base URL.
func startLobby(t *testing.T, dbPath string) (*lobby, string) {
	t.Helper()
	l, err := newLobby(config{db: dbPath, secret: testSecret, node: "test", logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(l.handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The lobby first: httptest's Close waits for requests, and the
		// hijacked WebSocket connections end only when the lobby closes them.
		if err := l.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.Close()
	})
	return l, ts.URL
}

// login posts the login form and returns the token.
func login(t *testing.T, base, username string) string {
	t.Helper()
	res, err := http.PostForm(base+"/login", url.Values{"username": {username}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Token  string
		Player Player
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("login %s: %s, %v", username, res.Status, err)
	}
	if body.Player.Username != username || body.Token == "" {
		t.Fatalf("login %s: %+v", username, body)
	}
	return body.Token
}

// conn is a raw V2 WebSocket connection; frames are
// [join_ref, ref, topic, event, payload].
type conn struct {
	t     *testing.T
	name  string
	ws    *websocket.Conn
	ref   int
	joins map[string]string    // topic -> join ref
	seen  [][5]json.RawMessage // frames read but not consumed yet
}

func connect(t *testing.T, base, name, tok string) *conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket/websocket?vsn=2.0.0&token=" + url.QueryEscape(tok)
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &conn{t: t, name: name, ws: ws, joins: map[string]string{}}
}

func (c *conn) send(topic, event string, payload any) string {
	c.t.Helper()
	c.ref++
	ref := strconv.Itoa(c.ref)
	// A channel's join ref is the ref of its join; this client joins each
	// topic once, so it is found by topic.
	if event == "phx_join" {
		c.joins[topic] = ref
	}
	b, _ := json.Marshal([]any{c.joins[topic], ref, topic, event, payload})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return ref
}

// next returns the payload of the first frame on topic with event (and,
// for replies, ref), waiting up to 5 s. Other frames are kept for later.
func (c *conn) next(topic, event, ref string) json.RawMessage {
	c.t.Helper()
	match := func(f [5]json.RawMessage) bool {
		return string(f[2]) == strconv.Quote(topic) && string(f[3]) == strconv.Quote(event) &&
			(ref == "" || string(f[1]) == strconv.Quote(ref))
	}
	for i, f := range c.seen {
		if match(f) {
			c.seen = append(c.seen[:i:i], c.seen[i+1:]...)
			return f[4]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("%s: waiting for %s %s: %v", c.name, topic, event, err)
		}
		var f [5]json.RawMessage
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Fatalf("%s: bad frame %s", c.name, b)
		}
		if match(f) {
			return f[4]
		}
		c.seen = append(c.seen, f)
	}
}

// call pushes and returns the reply's status and response.
func (c *conn) call(topic, event string, payload any) (string, json.RawMessage) {
	c.t.Helper()
	ref := c.send(topic, event, payload)
	var r struct {
		Status   string
		Response json.RawMessage
	}
	if err := json.Unmarshal(c.next(topic, "phx_reply", ref), &r); err != nil {
		c.t.Fatal(err)
	}
	return r.Status, r.Response
}

func (c *conn) ok(topic, event string, payload, into any) {
	c.t.Helper()
	status, resp := c.call(topic, event, payload)
	if status != "ok" {
		c.t.Fatalf("%s: %s %s: %s %s", c.name, topic, event, status, resp)
	}
	if into != nil {
		if err := json.Unmarshal(resp, into); err != nil {
			c.t.Fatal(err)
		}
	}
}

// awaitRating reads the lobby's presence from presence_state and
// presence_diff pushes until username shows rating.
func (c *conn) awaitRating(username string, rating int) {
	c.t.Helper()
	type list map[string]struct{ Metas []struct{ Rating int } }
	for {
		var l list
		var d struct{ Joins list }
		if c.hasFrame("lobby", "presence_state") {
			_ = json.Unmarshal(c.next("lobby", "presence_state", ""), &l)
		} else {
			_ = json.Unmarshal(c.next("lobby", "presence_diff", ""), &d)
			l = d.Joins
		}
		if e, ok := l[username]; ok && e.Metas[len(e.Metas)-1].Rating == rating {
			return
		}
	}
}

func (c *conn) hasFrame(topic, event string) bool {
	for _, f := range c.seen {
		if string(f[2]) == strconv.Quote(topic) && string(f[3]) == strconv.Quote(event) {
			return true
		}
	}
	return false
}

func TestGameFlow(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the lobby's shutdown
	dbPath := filepath.Join(t.TempDir(), "lobby.db")
	l, base := startLobby(t, dbPath)

	alice := connect(t, base, "alice", login(t, base, "alice"))
	bob := connect(t, base, "bob", login(t, base, "bob"))
	var joined struct{ Player Player }
	alice.ok("lobby", "phx_join", nil, &joined)
	if joined.Player.Username != "alice" || joined.Player.Rating != 1500 {
		t.Errorf("alice's lobby join reply: %+v", joined)
	}
	bob.ok("lobby", "phx_join", nil, nil)
	alice.awaitRating("bob", 1400)

	if status, resp := alice.call("lobby", "challenge", map[string]string{"opponent": "carol"}); status != "error" {
		t.Errorf("challenging carol, who is not in the lobby: %s %s", status, resp)
	}
	var started struct{ Game string }
	alice.ok("lobby", "challenge", map[string]string{"opponent": "bob"}, &started)
	var announced struct {
		Game    string
		Players []string
	}
	_ = json.Unmarshal(bob.next("lobby", "game_started", ""), &announced)
	if announced.Game != started.Game || strings.Join(announced.Players, ",") != "alice,bob" {
		t.Errorf("game_started at bob: %+v, want %s alice,bob", announced, started.Game)
	}
	game := started.Game

	// Only the game's players may join it.
	carol := connect(t, base, "carol", login(t, base, "carol"))
	if status, _ := carol.call(game, "phx_join", nil); status != "error" {
		t.Errorf("carol joined %s, a game she does not play in", game)
	}
	var players struct{ Players []Player }
	bob.ok(game, "phx_join", nil, &players)
	if len(players.Players) != 2 || players.Players[0].Rating != 1500 || players.Players[1].Rating != 1400 {
		t.Errorf("game join reply: %+v", players)
	}
	alice.ok(game, "phx_join", nil, nil)

	// The favourite wins: 1500 beats 1400 for 12 points.
	var res result
	alice.ok(game, "report", map[string]string{"winner": "alice"}, &res)
	want := `{"game":"` + game + `","winner":"alice","ratings":{"alice":1512,"bob":1388}}`
	if b, _ := json.Marshal(res); string(b) != want {
		t.Errorf("report reply %s, want %s", b, want)
	}
	for _, topic := range []string{game, "lobby"} {
		if got := string(bob.next(topic, "ratings", "")); got != want {
			t.Errorf("ratings on %s at bob: %s, want %s", topic, got, want)
		}
	}
	// The lobby's presence follows, for players who join it later.
	bob.awaitRating("alice", 1512)
	carol.ok("lobby", "phx_join", nil, nil)
	carol.awaitRating("bob", 1388)

	if status, resp := bob.call(game, "report", map[string]string{"winner": "bob"}); status != "error" {
		t.Errorf("a second report: %s %s", status, resp)
	}

	// Assigns are the connect-time snapshot; a new connection gets a fresh one.
	alice2 := connect(t, base, "alice", login(t, base, "alice"))
	alice2.ok("lobby", "phx_join", nil, &joined)
	if joined.Player.Rating != 1512 {
		t.Errorf("alice's snapshot on a new connection: %+v", joined.Player)
	}

	// Write-through: the ratings are in the database, not only in memory.
	got, _, err := l.db.players.Load(context.Background(), playerKey(joined.Player.ID))
	if err != nil || got.Rating != 1512 {
		t.Errorf("stored alice: %+v, %v", got, err)
	}
}

func TestLoginAndAuth(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	_, base := startLobby(t, filepath.Join(t.TempDir(), "lobby.db"))

	// An unknown name signs up with the starting rating.
	zed := connect(t, base, "zed", login(t, base, "zed"))
	var joined struct{ Player Player }
	zed.ok("lobby", "phx_join", nil, &joined)
	if joined.Player.Rating != NewPlayerRating {
		t.Errorf("new player: %+v", joined.Player)
	}

	for _, name := range []string{"", "Has Space", strings.Repeat("x", 21)} {
		res, err := http.PostForm(base+"/login", url.Values{"username": {name}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("login %q: %s, want 400", name, res.Status)
		}
	}

	// A token signed with another secret is refused with 403, as Phoenix
	// refuses a connect that returns :error.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tok := range []string{"", "forged", login(t, base, "alice") + "x"} {
		u := "ws" + strings.TrimPrefix(base, "http") + "/socket/websocket?vsn=2.0.0&token=" + url.QueryEscape(tok)
		ws, res, err := websocket.Dial(ctx, u, nil)
		if err == nil {
			ws.CloseNow()
			t.Errorf("token %q accepted", tok)
		} else if res == nil || res.StatusCode != http.StatusForbidden {
			t.Errorf("token %q: %v, want 403", tok, err)
		}
	}
}
