package socket_test

import (
	"context"
	"net/http"
	"strconv"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
)

// Player is the assigns type: an immutable snapshot taken at connect.
type Player struct {
	ID       int
	Username string
	Rating   int
}

type lobby struct{}

func (lobby) Join(c *channel.Context[Player], _ channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]any{"rating": c.Assigns().Rating}), nil
}

func (lobby) HandleIn(c *channel.Context[Player], event string, p channel.Payload) (channel.Result, error) {
	return channel.NoReply(), c.Broadcast(event, p)
}

func ExampleNew() {
	router := channel.NewRouter[Player]()
	router.Handle("lobby", func() channel.Handler[Player] { return lobby{} })

	srv := socket.New(socket.Config[Player]{
		Router: router,
		Authenticator: socket.AuthenticatorFunc[Player](func(ctx context.Context, req *socket.ConnectRequest) (Player, error) {
			// Verify req.Params.Get("token") (or req.AuthToken) here.
			if req.Params.Get("token") != "alice-token" {
				return Player{}, socket.ErrRefused
			}
			return Player{ID: 1, Username: "alice", Rating: 1500}, nil
		}),
		ID: func(p Player) string { return "user_socket:" + strconv.Itoa(p.ID) },
	})
	defer srv.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/socket/", srv) // serves /socket/websocket and /socket/longpoll
	mux.HandleFunc("POST /kick", func(w http.ResponseWriter, r *http.Request) {
		// Like Endpoint.broadcast("user_socket:1", "disconnect", %{}).
		_ = srv.Disconnect(r.Context(), "user_socket:1")
	})
	_ = mux // http.ListenAndServe("localhost:4000", mux)
}
