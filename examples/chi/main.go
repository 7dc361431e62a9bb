// Command chi mounts a phx socket server inside a github.com/go-chi/chi/v5
// router, with the middleware a chi app usually has, on a path other than
// /socket, and a second time behind http.StripPrefix:
//
//	go run ./examples/chi -addr 127.0.0.1:4000
//
// phoenix.js then connects with the mount path as its endpoint (it appends
// /websocket or /longpoll itself):
//
//	new Socket("/realtime/live", {params: {token: "alice"}})  // chi sub-router
//	new Socket("/strip/socket", {params: {token: "alice"}})   // http.StripPrefix
//
// Channel room:* answers echo and broadcasts shout to the room. POST
// /realtime/api/broadcast?topic=T&event=E (JSON body) broadcasts from the
// server, POST /realtime/api/disconnect?id=NAME closes NAME's sockets.
// See docs/transports.md, "Mounting under a router", for echo and gin.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/examples/internal/serve"
	"github.com/phxgo/phx/socket"
)

// User is what a connection's channels know of its user.
type User struct{ Name string }

type room struct{}

func (room) Join(c *channel.Context[User], _ channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]string{"user": c.Assigns().Name}), nil
}

func (room) HandleIn(c *channel.Context[User], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "echo":
		return channel.OK(p), nil
	case "shout":
		return channel.NoReply(), c.Broadcast("shout", p)
	}
	return channel.Error(map[string]string{"reason": "unknown event"}), nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4000", "listen address")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := newServer(logger)
	if err := serve.Run(*addr, newRouter(srv), srv.Shutdown); err != nil {
		fmt.Fprintln(os.Stderr, "chi:", err)
		os.Exit(1)
	}
}

func newServer(logger *slog.Logger) *socket.Server[User] {
	router := channel.NewRouter[User]()
	router.Handle("room:*", func() channel.Handler[User] { return room{} })
	return socket.New(socket.Config[User]{
		Router: router,
		Authenticator: socket.AuthenticatorFunc[User](func(_ context.Context, req *socket.ConnectRequest) (User, error) {
			if name := req.Params.Get("token"); name != "" {
				return User{Name: name}, nil
			}
			return User{}, socket.ErrRefused
		}),
		ID:              func(u User) string { return "user_socket:" + u.Name },
		SkipOriginCheck: true, // the tests' pages and Node clients send no or foreign origins
		Logger:          logger,
	})
}

// newRouter is an ordinary chi app. Two things matter for the socket:
//   - middleware.Timeout (or http.TimeoutHandler) must not wrap it: a LongPoll
//     GET is held for 10 s and a WebSocket lives for hours; put timeouts on
//     the API routes only.
//   - middleware.Compress should not wrap it: it would gzip LongPoll answers
//     and stands between the upgrade and the connection for nothing, since
//     phoenix.js frames are small and WebSocket compression is off.
//
// Request logging, request ids, RealIP and Recoverer are fine: chi's
// response writer wrapper keeps http.Hijacker and http.Flusher, and
// Recoverer lets http.ErrAbortHandler (a LongPoll poll dropped at shutdown)
// through.
func newRouter(srv *socket.Server[User]) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, middleware.RealIP, middleware.Logger, middleware.Recoverer)
	r.Route("/realtime", func(r chi.Router) {
		// The socket is served at any path ending in /websocket or
		// /longpoll, so a wildcard route is all it needs.
		r.Handle("/live/*", srv)
		r.Route("/api", func(r chi.Router) {
			r.Use(middleware.Timeout(serveTimeout))
			r.Post("/broadcast", broadcast(srv))
			r.Post("/disconnect", disconnect(srv))
		})
	})
	// The same server again, behind a prefix the application strips.
	r.Handle("/strip/*", http.StripPrefix("/strip", srv))
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "phx under chi: connect phoenix.js to /realtime/live or /strip/socket\n")
	})
	return r
}

const serveTimeout = 5 * time.Second // for the API routes

func broadcast(srv *socket.Server[User]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var payload map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&payload); err != nil {
			http.Error(w, "body must be a JSON object", http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		if err := srv.Broadcast(r.Context(), q.Get("topic"), q.Get("event"), payload); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, channel.ErrNotObject) {
				status = http.StatusBadRequest
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func disconnect(srv *socket.Server[User]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := srv.Disconnect(r.Context(), "user_socket:"+r.URL.Query().Get("id")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
