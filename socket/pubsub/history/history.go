// Package history keeps the recent broadcasts of recoverable topics so that a
// client whose connection dropped gets, when it rejoins, every broadcast it
// missed, in order and exactly once.
//
// Each recoverable topic has a history: its broadcasts numbered by an
// offset that grows with every broadcast (by one in Memory and in Redis; the
// stream sequence in JetStream, shared by the topics of a stream), and an
// epoch naming that history.
// A client remembers the Position (offset and epoch) of the last broadcast
// it saw and sends it when it rejoins; the store answers with what came
// after. The epoch changes when a history is lost (the broker was flushed,
// the history expired, the server restarted with an in-memory store), so
// that a position from a lost history is never mistaken for a position in
// the new one: the answer is then incomplete and the client reloads its
// state instead.
//
// A Store both numbers and delivers: its Publish appends the broadcast to
// the history and hands it to the PubSub, so that on every node the
// subscribers of a topic receive its broadcasts in offset order. Memory is
// the store of one node; package redishistory keeps histories in Redis
// Streams for a cluster on the Redis adapter, package natshistory in NATS
// JetStream for a cluster on the NATS adapter. Package channel wires a Store
// to routes (channel.Recoverable) and runs the recovery on join.
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
	// first, each with Offset and Epoch set. When more than the limit were
	// missed they are the newest ones, so that they join up with the live
	// broadcasts that follow.
	Messages []*pubsub.Message
	// Top is the topic's latest position when the query ran.
	Top Position
	// Complete reports that Messages are every broadcast after the requested
	// position: same epoch, nothing trimmed or expired in between, and no
	// more than the limit asked for.
	Complete bool
}

// Store keeps the recent broadcasts of recoverable topics.
type Store interface {
	// Publish appends m to the history of m.Topic, which sets m.Offset and
	// m.Epoch, and broadcasts it through ps to the topic's subscribers on
	// every node. On every node, subscribers of one topic receive its
	// broadcasts in offset order.
	Publish(ctx context.Context, ps pubsub.PubSub, m *pubsub.Message) error
	// Since returns at most limit broadcasts of topic after since; a limit
	// of 0 asks only for Top.
	Since(ctx context.Context, topic string, since Position, limit int) (Result, error)
}

// ErrUnsupported is returned by a Store asked to publish through a PubSub it
// cannot work with (a Redis history needs its Redis adapter, the in-memory
// one a single node).
var ErrUnsupported = errors.New("history: store does not support this pubsub")

// Dense is implemented by stores whose offsets grow by exactly one with each
// broadcast of a topic (Memory and redishistory, not JetStream's shared
// stream sequence). On such a store a broadcast that skips offsets shows
// that this node missed some, for instance while its link to the broker was
// down, and package channel fetches them from the history before going on.
type Dense interface {
	DenseOffsets() bool
}
