package presence_test

import (
	"fmt"

	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket/pubsub"
)

// lobbyChannel stands in for a joined channel.
type lobbyChannel struct {
	exit   []func()
	events []string
}

func (c *lobbyChannel) Topic() string { return "room:lobby" }
func (c *lobbyChannel) ID() string    { return "conn1/3" }
func (c *lobbyChannel) Push(event string, _ any) error {
	c.events = append(c.events, event)
	return nil
}
func (c *lobbyChannel) OnExit(fn func()) { c.exit = append(c.exit, fn) }

func Example() {
	ps := pubsub.NewLocal("node1")
	tracker := presence.New(ps)
	defer tracker.Close()

	// After the join: track, then push the state to this client.
	ch := &lobbyChannel{}
	ref, err := tracker.Track(ch, "alice", map[string]any{"status": "online"})
	if err != nil {
		panic(err)
	}
	if err := tracker.PushState(ch); err != nil {
		panic(err)
	}
	alice := tracker.List("room:lobby")["alice"]
	fmt.Println(ch.events, len(ref), alice.Metas[0]["status"], alice.Metas[0]["phx_ref"] == ref)

	// When the channel ends, the presence leaves.
	for _, fn := range ch.exit {
		fn()
	}
	fmt.Println(len(tracker.List("room:lobby")))
	// Output:
	// [presence_state] 16 online true
	// 0
}
