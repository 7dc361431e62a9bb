package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
	"github.com/phxgo/phx/socket/client"
)

// The lobby's channels tested in-process with channeltest: no HTTP, no
// login, no socket; each test has its own lobby (database, PubSub, tracker,
// games), so they run in parallel.

// harness is a lobby whose channels the tests join directly.
type harness struct {
	t      *testing.T
	l      *lobby
	router *channel.Router[Player]
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	l, err := newLobby(config{db: filepath.Join(t.TempDir(), "lobby.db"), secret: testSecret, node: "test",
		logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before any socket, so it runs after they have closed.
	t.Cleanup(func() {
		if err := l.shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	// The routes of newLobby; the handlers are the app's own.
	router := channel.NewRouter[Player]()
	router.Handle("lobby", func() channel.Handler[Player] { return &lobbyChannel{l: l} }, channel.Intercept("ratings"))
	router.Handle("game:*", func() channel.Handler[Player] { return &gameChannel{l: l} })
	return &harness{t: t, l: l, router: router}
}

// socket is a connection of the seeded player username, as the
// Authenticator would make it, on the lobby's PubSub (so that its
// broadcasts and presence reach the test's sockets).
func (h *harness) socket(username string) (*channeltest.Socket[Player], Player) {
	h.t.Helper()
	id, err := h.l.db.userID(context.Background(), username)
	if err != nil {
		h.t.Fatalf("user %s: %v", username, err)
	}
	p, err := h.l.players.Get(context.Background(), playerKey(id))
	if err != nil {
		h.t.Fatal(err)
	}
	return channeltest.New(h.t, h.router, p, channeltest.WithPubSub(h.l.srv.PubSub())), p
}

func TestLobbyChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	aliceSock, _ := h.socket("alice")
	bobSock, _ := h.socket("bob")
	alice := aliceSock.Join("lobby", nil).AssertOK()
	bob := bobSock.Join("lobby", nil).AssertOK()
	channeltest.NewPresence(alice).AssertKeys("alice", "bob")

	alice.AssertReply(alice.Push("challenge", map[string]string{"opponent": "alice"}), "error")
	alice.AssertReply(alice.Push("challenge", map[string]string{"opponent": "dave"}), "error") // not online

	var started struct{ Game string }
	if err := alice.AssertReply(alice.Push("challenge", map[string]string{"opponent": "bob"}), "ok").Decode(&started); err != nil {
		t.Fatal(err)
	}
	var announced struct {
		Game    string
		Players []string
	}
	if err := bob.AssertPush("game_started").Decode(&announced); err != nil || announced.Game != started.Game {
		t.Errorf("game_started at bob: %+v (%v), want %s", announced, err, started.Game)
	}
	alice.AssertBroadcast("game_started")
}

func TestGameReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	aliceSock, alicePlayer := h.socket("alice")
	bobSock, bobPlayer := h.socket("bob")
	carolSock, _ := h.socket("carol")
	aliceLobby := aliceSock.Join("lobby", nil).AssertOK()
	bobLobby := bobSock.Join("lobby", nil).AssertOK()
	seen := channeltest.NewPresence(bobLobby)
	seen.AssertKeys("alice", "bob")

	game := h.l.games.start(alicePlayer, bobPlayer)
	carolSock.Join(game, nil).AssertError() // not a player of this game
	aliceGame := aliceSock.Join(game, nil).AssertOK()
	bobSock.Join(game, nil).AssertOK()

	want := `{"game":"` + game + `","winner":"alice","ratings":{"alice":1512,"bob":1388}}`
	reply := aliceGame.AssertReply(aliceGame.Push("report", map[string]string{"winner": "alice"}), "ok")
	if string(reply.Response) != want {
		t.Errorf("report reply %s, want %s", reply.Response, want)
	}
	if got := string(aliceGame.AssertBroadcast("ratings").JSON()); got != want {
		t.Errorf("ratings broadcast on the game %s, want %s", got, want)
	}
	// Intercepted in the lobby: each channel updates its player's presence
	// meta, which every page's list then shows.
	bobLobby.AssertPush("ratings")
	aliceLobby.AssertPush("ratings")
	seen.AwaitList("alice at 1512", func(l []client.PresenceEntry) bool {
		var meta struct{ Rating int }
		return len(l) == 2 && l[0].Metas[len(l[0].Metas)-1].Decode(&meta) == nil && meta.Rating == 1512
	})

	aliceGame.AssertReply(aliceGame.Push("report", map[string]string{"winner": "bob"}), "error") // only once
}
