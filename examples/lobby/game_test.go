package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx/socket/client"
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

// socketURL is the lobby's socket endpoint for the Go client.
func socketURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/socket" }

// testCtx bounds every wait of a test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// player is one logged-in player's socket, driven by the Go client the way
// the page drives phoenix.js.
type player struct {
	t     *testing.T
	name  string
	c     *client.Client
	lobby *client.Channel
	seen  *client.Presence // the lobby's presence list as this player's page shows it
}

// connect logs name in through the form and opens a socket with the token.
func connect(t *testing.T, base, name string) *player {
	t.Helper()
	c, err := client.Dial(testCtx(t), socketURL(base), client.Options{
		Params:  map[string]string{"token": login(t, base, name)},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &player{t: t, name: name, c: c}
}

// joinLobby joins the lobby, with a Presence attached first as the page
// does, and returns the join reply's player.
func (p *player) joinLobby() Player {
	p.t.Helper()
	p.lobby = p.c.Channel("lobby", nil)
	p.seen = client.NewPresence(p.lobby, client.PresenceOptions{})
	var joined struct{ Player Player }
	p.ok(p.lobby, "phx_join", nil, &joined)
	return joined.Player
}

// ok joins (event phx_join) or pushes event, requires an ok reply and
// decodes its response into into (unless nil).
func (p *player) ok(ch *client.Channel, event string, payload, into any) {
	p.t.Helper()
	var r client.Reply
	var err error
	if event == "phx_join" {
		r, err = ch.Join(testCtx(p.t))
	} else {
		r, err = ch.Push(testCtx(p.t), event, payload)
	}
	if err != nil {
		p.t.Fatalf("%s: %s %s: %v", p.name, ch.Topic(), event, err)
	}
	if into != nil {
		if err := r.Response.Decode(into); err != nil {
			p.t.Fatal(err)
		}
	}
}

// refused requires an error reply to event on ch (a join for phx_join).
func (p *player) refused(ch *client.Channel, event string, payload any) {
	p.t.Helper()
	var err error
	if event == "phx_join" {
		_, err = ch.Join(testCtx(p.t))
		defer ch.Leave(testCtx(p.t)) //nolint:errcheck // stops the client's rejoins
	} else {
		_, err = ch.Push(testCtx(p.t), event, payload)
	}
	var re *client.ReplyError
	if !errors.As(err, &re) {
		p.t.Errorf("%s: %s %s: %v, want an error reply", p.name, ch.Topic(), event, err)
	}
}

// next returns the payload of the next event pushed on ch.
func (p *player) next(ch *client.Channel, event string) string {
	p.t.Helper()
	m, err := ch.Next(testCtx(p.t), event)
	if err != nil {
		p.t.Fatalf("%s: %s %s: %v", p.name, ch.Topic(), event, err)
	}
	return string(m.Payload.JSON())
}

// awaitRating waits until the player's lobby page shows username with rating.
func (p *player) awaitRating(username string, rating int) {
	p.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if e, ok := p.seen.Get(username); ok {
			var meta struct{ Rating int }
			if e.Metas[len(e.Metas)-1].Decode(&meta) == nil && meta.Rating == rating {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: the lobby shows %+v, want %s at %d", p.name, p.seen.List(), username, rating)
		}
	}
}

func TestGameFlow(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "lobby.db")
	l, base := startLobby(t, dbPath)

	alice := connect(t, base, "alice")
	bob := connect(t, base, "bob")
	if got := alice.joinLobby(); got.Username != "alice" || got.Rating != 1500 {
		t.Errorf("alice's lobby join reply: %+v", got)
	}
	bob.joinLobby()
	alice.awaitRating("bob", 1400)

	alice.refused(alice.lobby, "challenge", map[string]string{"opponent": "carol"}) // not in the lobby
	var started struct{ Game string }
	alice.ok(alice.lobby, "challenge", map[string]string{"opponent": "bob"}, &started)
	game := started.Game
	if got, want := bob.next(bob.lobby, "game_started"), `{"game":"`+game+`","players":["alice","bob"]}`; got != want {
		t.Errorf("game_started at bob: %s, want %s", got, want)
	}

	// Only the game's players may join it.
	carol := connect(t, base, "carol")
	carol.refused(carol.c.Channel(game, nil), "phx_join", nil)
	bobGame, aliceGame := bob.c.Channel(game, nil), alice.c.Channel(game, nil)
	var players struct{ Players []Player }
	bob.ok(bobGame, "phx_join", nil, &players)
	if len(players.Players) != 2 || players.Players[0].Rating != 1500 || players.Players[1].Rating != 1400 {
		t.Errorf("game join reply: %+v", players)
	}
	alice.ok(aliceGame, "phx_join", nil, nil)

	// The favourite wins: 1500 beats 1400 for 12 points.
	var res result
	alice.ok(aliceGame, "report", map[string]string{"winner": "alice"}, &res)
	want := `{"game":"` + game + `","winner":"alice","ratings":{"alice":1512,"bob":1388}}`
	if b, _ := json.Marshal(res); string(b) != want {
		t.Errorf("report reply %s, want %s", b, want)
	}
	for _, ch := range []*client.Channel{bobGame, bob.lobby} {
		if got := bob.next(ch, "ratings"); got != want {
			t.Errorf("ratings on %s at bob: %s, want %s", ch.Topic(), got, want)
		}
	}
	// The lobby's presence follows, for players who join it later.
	bob.awaitRating("alice", 1512)
	carol.joinLobby()
	carol.awaitRating("bob", 1388)

	bob.refused(bobGame, "report", map[string]string{"winner": "bob"}) // a second report

	// Assigns are the connect-time snapshot; a new connection gets a fresh one.
	if got := connect(t, base, "alice").joinLobby(); got.Rating != 1512 {
		t.Errorf("alice's snapshot on a new connection: %+v", got)
	}

	// Write-through: the ratings are in the database, not only in memory.
	id, err := l.db.userID(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := l.db.players.Load(context.Background(), playerKey(id)); err != nil || got.Rating != 1512 {
		t.Errorf("stored alice: %+v, %v", got, err)
	}
}

func TestLoginAndAuth(t *testing.T) {
	t.Parallel()
	_, base := startLobby(t, filepath.Join(t.TempDir(), "lobby.db"))

	// An unknown name signs up with the starting rating.
	if got := connect(t, base, "zed").joinLobby(); got.Rating != NewPlayerRating {
		t.Errorf("new player: %+v", got)
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
	// refuses a connect that returns :error; so is the right token sent as
	// phoenix.js 1.8's authToken with one byte changed.
	for _, opts := range []client.Options{
		{},
		{Params: map[string]string{"token": "forged"}},
		{Params: map[string]string{"token": login(t, base, "alice") + "x"}},
		{AuthToken: login(t, base, "alice") + "x"},
	} {
		c, err := client.Dial(testCtx(t), socketURL(base), opts)
		var de *client.DialError
		switch {
		case err == nil:
			_ = c.Close()
			t.Errorf("%+v accepted", opts)
		case !errors.As(err, &de) || de.StatusCode != http.StatusForbidden:
			t.Errorf("%+v: %v, want 403", opts, err)
		}
	}
	// The authToken alone is enough.
	c, err := client.Dial(testCtx(t), socketURL(base), client.Options{AuthToken: login(t, base, "alice")})
	if err != nil {
		t.Fatalf("authToken: %v", err)
	}
	defer c.Close()
	if _, err := c.Channel("lobby", nil).Join(testCtx(t)); err != nil {
		t.Errorf("join with authToken: %v", err)
	}
}
