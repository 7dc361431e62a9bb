// Package history is the contract of message recovery (issue 13): a Store
// keeps, per recoverable topic, the recent broadcasts with contiguous offsets
// and an epoch, so that a client rejoining with the position it last saw gets
// what it missed. Only the interface exists so far; the in-memory store, the
// Redis and NATS stores and the channel integration are not built yet.
package history

import (
	"context"
	"errors"

	"github.com/phxgo/phx/socket/pubsub"
)

// Position is a point in one topic's history: the offset of the last
// broadcast seen and the epoch of the history that offset belongs to. The
// zero Position means "nothing seen".
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Result is the answer to a recovery query.
type Result struct {
	// Messages are the broadcasts after the requested position, oldest
	// first, each with Offset and Epoch set.
	Messages []*pubsub.Message
	// Top is the topic's latest position when the query ran.
	Top Position
	// Complete reports that Messages are every broadcast the client missed:
	// same epoch, nothing trimmed between the requested offset and Top, and
	// no more than the limit asked for.
	Complete bool
}

// Store keeps the recent broadcasts of recoverable topics. Implementations:
// Memory (this package, one node), and the Redis and NATS adapters'
// histories, which every node of a cluster shares.
type Store interface {
	// Publish appends m to the history of m.Topic, which sets m.Offset and
	// m.Epoch, and broadcasts it through ps to the topic's subscribers on
	// every node. On every node, subscribers of one topic receive its
	// broadcasts in offset order.
	Publish(ctx context.Context, ps pubsub.PubSub, m *pubsub.Message) error
	// Since returns at most limit broadcasts of topic after since.
	Since(ctx context.Context, topic string, since Position, limit int) (Result, error)
}

// ErrUnsupported is returned by a Store asked to publish through a PubSub it
// cannot work with (a Redis history needs its Redis adapter).
var ErrUnsupported = errors.New("history: store does not support this pubsub")
