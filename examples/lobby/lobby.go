package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/phxgo/phx/examples/internal/serve"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/ephemeral"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/token"
)

// tokenSalt separates the lobby's tokens from anything else signed with
// the same secret, as the salt of Phoenix.Token.sign does.
const tokenSalt = "player socket"

// tokenMaxAge is how long a login lasts.
const tokenMaxAge = 24 * time.Hour

//go:embed index.html
var assets embed.FS

// config is what the lobby needs from the command line.
type config struct {
	db        string          // SQLite file
	secret    string          // secret key base of the token signer, at least 20 bytes
	phoenixJS serve.PhoenixJS // local phoenix.min.js, or the CDN
	node      string          // node name of the PubSub
	logger    *slog.Logger
}

// lobby is the application: the socket server, the presence tracker of the
// lobby topic, the player service and the games being played.
type lobby struct {
	srv     *socket.Server[Player]
	tracker *presence.Tracker
	players *ephemeral.Service[string, Player]
	db      *db
	signer  *token.Signer
	games   *games
	page    *template.Template
	phoenix serve.PhoenixJS
}

func newLobby(cfg config) (*lobby, error) {
	signer, err := token.NewSigner(cfg.secret, tokenSalt)
	if err != nil {
		return nil, err
	}
	d, err := openDB(context.Background(), cfg.db)
	if err != nil {
		return nil, err
	}
	ps := pubsub.NewLocal(cfg.node)
	l := &lobby{
		tracker: presence.New(ps, presence.WithLogger(cfg.logger)),
		// Write-through, the default: a reported result is on disk before
		// anyone is told the new ratings.
		players: ephemeral.New(d.players),
		db:      d,
		signer:  signer,
		games:   newGames(),
		page:    template.Must(template.ParseFS(assets, "index.html")),
		phoenix: cfg.phoenixJS,
	}
	router := channel.NewRouter[Player]()
	router.Handle("lobby", func() channel.Handler[Player] { return &lobbyChannel{l: l} }, channel.Intercept("ratings"))
	router.Handle("game:*", func() channel.Handler[Player] { return &gameChannel{l: l} })
	l.srv = socket.New(socket.Config[Player]{
		Authenticator: socket.AuthenticatorFunc[Player](l.authenticate),
		Router:        router,
		ID:            func(p Player) string { return "player_socket:" + playerKey(p.ID) },
		PubSub:        ps,
		Logger:        cfg.logger,
	})
	return l, nil
}

func (l *lobby) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/socket/", l.srv)
	mux.HandleFunc("GET /{$}", l.index)
	mux.HandleFunc("POST /login", l.login)
	l.phoenix.Mount(mux)
	return mux
}

// shutdown closes the sockets first, so that no channel uses the tracker
// or the service any more, then stops the tracker, waits for the service to
// finish its saves, and closes the database.
func (l *lobby) shutdown(ctx context.Context) error {
	return errors.Join(
		l.srv.Shutdown(ctx),
		l.tracker.Shutdown(ctx),
		l.players.Shutdown(ctx),
		l.db.close(),
	)
}

func (l *lobby) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = l.page.Execute(w, map[string]string{"PhoenixJS": l.phoenix.Src()})
}

var validUsername = regexp.MustCompile(`^[a-z0-9_]{1,20}$`)

// login answers POST /login (form field username) with {"token", "player"}.
// There are no passwords: this is a demo of the socket, not of accounts.
// An unknown username signs up with NewPlayerRating.
func (l *lobby) login(w http.ResponseWriter, r *http.Request) {
	name := strings.ToLower(strings.TrimSpace(r.FormValue("username")))
	if !validUsername.MatchString(name) {
		http.Error(w, "username: 1 to 20 of a-z, 0-9 and _", http.StatusBadRequest)
		return
	}
	id, err := l.db.signUp(r.Context(), name, NewPlayerRating)
	if err != nil {
		http.Error(w, "login failed", http.StatusInternalServerError)
		return
	}
	p, err := l.players.Get(r.Context(), playerKey(id))
	if err != nil {
		http.Error(w, "login failed", http.StatusInternalServerError)
		return
	}
	// The token carries only the id: the rating it would carry could be
	// stale by the time the socket connects.
	tok, err := l.signer.Sign(id, token.WithMaxAge(tokenMaxAge))
	if err != nil {
		http.Error(w, "login failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "player": p})
}

// authenticate verifies the token from the login (the "token" param, or
// phoenix.js 1.8's authToken) and takes the assigns' snapshot of the player
// from the service, so that it is fresh at connect.
func (l *lobby) authenticate(ctx context.Context, req *socket.ConnectRequest) (Player, error) {
	tok := req.AuthToken
	if tok == "" {
		tok = req.Params.Get("token")
	}
	id, err := token.VerifyAs[int](l.signer, tok)
	if err != nil {
		return Player{}, socket.ErrRefused
	}
	p, err := l.players.Get(ctx, playerKey(id))
	if err != nil {
		return Player{}, socket.ErrRefused
	}
	return p, nil
}
