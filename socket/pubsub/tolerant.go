package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
)

// Tolerant wraps a cluster adapter so that Broadcast succeeds once this
// node's subscribers have the message, even when the broker did not take it.
//
// The adapters deliver locally before publishing and report a failed publish
// as an error. A channel callback that returns that error crashes its
// channel, so during a broker outage every channel that broadcasts would
// crash and rejoin. With Tolerant the other nodes simply miss what is
// broadcast during the outage (at-most-once across nodes, as Phoenix's Redis
// adapter gives), and the outage and the recovery are logged once each.
// Server-side code that must know whether a broadcast left the node can
// still use the wrapped PubSub directly.
func Tolerant(ps PubSub, logger *slog.Logger) PubSub {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &tolerant{PubSub: ps, log: logger.With("pubsub_node", ps.Node())}
}

type tolerant struct {
	PubSub
	log     *slog.Logger
	failing atomic.Bool
}

// Broadcast implements PubSub.
func (t *tolerant) Broadcast(ctx context.Context, m *Message) error {
	err := t.PubSub.Broadcast(ctx, m)
	switch {
	case err == nil:
		if t.failing.Swap(false) {
			t.log.Info("broadcasts reach the other nodes again")
		}
		return nil
	case errors.Is(err, ErrClosed):
		return err // not delivered at all
	}
	if !t.failing.Swap(true) {
		t.log.Warn("broadcasts no longer reach the other nodes; delivering locally only", "err", err)
	}
	return nil
}

// Unwrap returns the adapter Tolerant wraps.
func (t *tolerant) Unwrap() PubSub { return t.PubSub }

// Underlying returns the innermost PubSub of ps, following the Unwrap
// methods of wrappers such as Tolerant. History stores use it to find the
// adapter they work with.
func Underlying(ps PubSub) PubSub {
	for range 16 { // wrappers do not nest deeper than this in practice
		u, ok := ps.(interface{ Unwrap() PubSub })
		if !ok {
			return ps
		}
		ps = u.Unwrap()
	}
	return ps
}
