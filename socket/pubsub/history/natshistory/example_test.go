package natshistory_test

import (
	"context"
	"log"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/history/natshistory"
	"github.com/phxgo/phx/socket/pubsub/nats"
)

// Each node shares one NATS connection between its adapter and its
// history; the histories live in a JetStream stream that all nodes share.
func Example() {
	nc, err := natsgo.Connect(natsgo.DefaultURL, natsgo.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := nats.New(ctx, nc, nats.Options{Node: "node-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer ps.Close()
	store, err := natshistory.New(ctx, ps, natshistory.Options{
		Options: history.Options{Size: 500, TTL: 5 * time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // before the adapter and the connection

	// Routes given this option record their broadcasts and replay them to
	// rejoining clients.
	_ = channel.Recoverable(channel.NewRecovery(store, channel.RecoveryOptions{}))
}
