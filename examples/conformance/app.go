package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
)

// User is the assigns of a connection: an immutable snapshot taken at
// connect. Handlers read it; nothing can change it.
type User struct {
	ID       int
	Username string
	Rating   int
}

type options struct {
	pubsub, node, db string
}

// app wires the socket server, its routes and the HTTP helpers.
type app struct {
	srv *socket.Server[User]
}

var seedUsers = map[string]User{
	"alice": {ID: 1, Username: "alice", Rating: 1500},
	"bob":   {ID: 2, Username: "bob", Rating: 1400},
	"carol": {ID: 3, Username: "carol", Rating: 1600},
}

func newApp(opts options, logger *slog.Logger) (*app, error) {
	if opts.pubsub != "" {
		return nil, fmt.Errorf("-pubsub %q: cluster adapters are not available in this build", opts.pubsub)
	}
	if opts.db != "" {
		return nil, fmt.Errorf("-db %q: the SQLite store is not available in this build", opts.db)
	}
	router := channel.NewRouter[User]()
	router.Handle("room:*", func() channel.Handler[User] { return &room{} }, channel.Intercept("shout"))
	router.Handle("bench:*", func() channel.Handler[User] { return bench{} })

	srv := socket.New(socket.Config[User]{
		Authenticator:   socket.AuthenticatorFunc[User](authenticate),
		Router:          router,
		ID:              func(u User) string { return "user_socket:" + strconv.Itoa(u.ID) },
		SkipOriginCheck: true, // the spec accepts any Origin
		Logger:          logger,
	})
	return &app{srv: srv}, nil
}

// authenticate accepts the three seeded users by their token param.
func authenticate(_ context.Context, req *socket.ConnectRequest) (User, error) {
	u, ok := seedUsers[req.Params.Get("token")]
	if !ok {
		return User{}, socket.ErrRefused
	}
	return u, nil
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/socket/", a.srv)
	mux.HandleFunc("POST /api/broadcast", a.broadcast)
	mux.HandleFunc("POST /api/disconnect", a.disconnect)
	return mux
}

func (a *app) shutdown(ctx context.Context) error { return a.srv.Shutdown(ctx) }

// broadcast: POST /api/broadcast?topic=T&event=E with a JSON object body.
func (a *app) broadcast(w http.ResponseWriter, r *http.Request) {
	topic, event := r.URL.Query().Get("topic"), r.URL.Query().Get("event")
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil || topic == "" || event == "" || !json.Valid(body) {
		http.Error(w, "need topic, event and a JSON body", http.StatusBadRequest)
		return
	}
	if err := a.srv.Broadcast(r.Context(), topic, event, json.RawMessage(body)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// disconnect: POST /api/disconnect?id=N closes every socket of user N.
func (a *app) disconnect(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if _, err := strconv.Atoi(id); err != nil {
		http.Error(w, "need a numeric id", http.StatusBadRequest)
		return
	}
	if err := a.srv.Disconnect(r.Context(), "user_socket:"+id); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errCrash = errors.New("crash requested by the client")
