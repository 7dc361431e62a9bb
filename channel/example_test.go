package channel_test

import (
	"fmt"

	"github.com/phxgo/phx/channel"
)

// Room is a channel handler. The Router makes one Room per join, so its
// fields are that channel's private state.
type Room struct {
	messages int
}

func (r *Room) Join(c *channel.Context[player], params channel.Payload) (channel.Result, error) {
	if c.Topic() == "room:secret" {
		return channel.Error(map[string]string{"reason": "unauthorized"}), nil
	}
	return channel.OK(map[string]string{"welcome": c.Assigns().Name}), nil
}

func (r *Room) HandleIn(c *channel.Context[player], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "new_msg":
		r.messages++
		return channel.NoReply(), c.Broadcast("new_msg", p)
	case "count":
		return channel.OK(map[string]int{"messages": r.messages}), nil
	}
	return channel.Error(map[string]string{"reason": "unknown event"}), nil
}

func ExampleRouter() {
	router := channel.NewRouter[player]()
	router.Handle("room:*", func() channel.Handler[player] { return &Room{} })
	router.Handle("system", func() channel.Handler[player] { return &Room{} })

	for _, topic := range []string{"room:lobby", "system", "unknown:1"} {
		pattern, ok := router.Match(topic)
		fmt.Println(topic, "->", pattern, ok)
	}
	// Output:
	// room:lobby -> room:* true
	// system -> system true
	// unknown:1 ->  false
}

func ExampleHandler() {
	router := channel.NewRouter[player]()
	// Intercepted events go through HandleOut for each subscriber.
	router.Handle("room:*", func() channel.Handler[player] { return &Room{} })
	fmt.Println(router.Match("room:42"))
	// Output: room:* true
}
