// Package pubsub delivers broadcasts to the subscribers of a topic, on this
// node and, through an adapter, on every node of a cluster.
//
// A topic is a string ("room:lobby", "user_socket:42"). Subscribers are the
// joined channels and the connections listening on their socket id. A
// broadcast is a Message: its payload is encoded to JSON once by the sender,
// and each serializer's frame is encoded at most once per node, lazily, and
// shared by every subscriber that uses that serializer (Phoenix's fastlane).
//
// PubSub is the interface a cluster adapter implements. Local is the
// in-process implementation and the building block of adapters: an adapter
// publishes a broadcast to its broker once per node and hands the messages it
// receives from other nodes to its Local's Deliver. Node identity lets an
// adapter drop its own messages coming back from the broker.
package pubsub

import (
	"context"
	"errors"
)

// PubSub routes broadcasts to subscribers.
type PubSub interface {
	// Node names this node; it is unique in the cluster.
	Node() string
	// Subscribe adds s to topic's subscribers on this node. Subscribing the
	// same subscriber twice to one topic has no further effect.
	Subscribe(topic string, s Subscriber)
	// Unsubscribe removes s from topic's subscribers on this node.
	Unsubscribe(topic string, s Subscriber)
	// Broadcast delivers m to the subscribers of m.Topic on every node.
	Broadcast(ctx context.Context, m *Message) error
	// LocalBroadcast delivers m to the subscribers of m.Topic on this node only.
	LocalBroadcast(m *Message)
}

// Subscriber receives the messages of the topics it subscribed to.
type Subscriber interface {
	// Deliver is called once per message, on the broadcaster's goroutine.
	// It must not block: queue the message and return.
	Deliver(m *Message)
}

// ErrClosed is returned by Broadcast after the PubSub was closed.
var ErrClosed = errors.New("pubsub: closed")
