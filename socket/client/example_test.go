package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/client"
)

// echoRoom answers "echo" with its payload and broadcasts "shout".
type echoRoom struct{}

func (echoRoom) Join(*channel.Context[string], channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]string{"welcome": "in"}), nil
}

func (echoRoom) HandleIn(c *channel.Context[string], event string, p channel.Payload) (channel.Result, error) {
	if event == "shout" {
		return channel.NoReply(), c.Broadcast("shout", p)
	}
	return channel.OK(p), nil
}

func Example() {
	// An in-process server; in real use, Dial your Phoenix app's socket URL.
	router := channel.NewRouter[string]()
	router.Handle("room:*", func() channel.Handler[string] { return echoRoom{} })
	srv := socket.New(socket.Config[string]{
		Authenticator: socket.AuthenticatorFunc[string](func(_ context.Context, r *socket.ConnectRequest) (string, error) {
			return r.Params.Get("token"), nil
		}),
		Router: router,
	})
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket"
	c, err := client.Dial(ctx, url, client.Options{Params: map[string]string{"token": "alice"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ch := c.Channel("room:lobby", nil)
	reply, err := ch.Join(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("joined:", reply.Status, reply.Response)

	reply, _ = ch.Push(ctx, "echo", map[string]string{"body": "hello"})
	fmt.Println("echo:", reply.Response)

	_ = ch.Send("shout", map[string]string{"body": "hi all"})
	msg, _ := ch.Next(ctx, "shout")
	fmt.Println("broadcast:", msg.Event, msg.Payload)

	_ = ch.Leave(ctx)
	// Output:
	// joined: ok {"welcome":"in"}
	// echo: {"body":"hello"}
	// broadcast: shout {"body":"hi all"}
}

// A channel of a recoverable topic that names its last position on every
// rejoin, so that nothing broadcast while it was disconnected is lost.
func ExampleRecover() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:4000/socket/websocket", client.Options{})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.Close()
	feed := c.Channel("feed:news", nil, client.Recover("", ""))
	if _, err := feed.Join(ctx); err != nil {
		fmt.Println("join:", err)
		return
	}
	for {
		m, err := feed.Next(ctx)
		if err != nil {
			return
		}
		if m.Event == client.EventJoined {
			// The rejoin reply: "recovered": false means the replay could not
			// cover the gap (history too short, or lost): reload state.
			continue
		}
		fmt.Println(m.Event, m.Payload)
	}
}
