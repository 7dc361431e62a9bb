// Package nats connects the pubsub of several phx nodes through one core
// NATS subject.
//
// Subscriptions never leave the node: each node keeps its subscribers in a
// pubsub.Local and subscribes one subject for the whole namespace. A
// broadcast is delivered to the local subscribers directly and published
// once, as a compact envelope (see internal/envelope) carrying the origin
// node, topic, event, the broadcast_from identity and the payload bytes.
// Every node receives every envelope; a node drops its own and hands the
// others to its Local, so subscribers see each broadcast exactly once and
// broadcast_from exclusion works across nodes.
//
// Core NATS is at-most-once. Reconnection is nats.go's job: connect with
// nats.MaxReconnects(-1) so a node never gives up on the cluster. While
// disconnected, nats.go buffers publishes (nats.ReconnectBufSize, 8MB by
// default) and flushes them on reconnect, so a short outage may lose nothing,
// but whatever reaches the server before a subscriber has resubscribed is
// lost for that subscriber. Local delivery never depends on the server, and
// messages from one publisher arrive in the order they were published.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	natsgo "github.com/nats-io/nats.go"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/internal/envelope"
)

// DefaultSubject is the NATS subject used when Options.Subject is empty.
const DefaultSubject = "phx.pubsub"

// Options configures New.
type Options struct {
	// Node names this node. It is required and must be unique in the
	// cluster: a node drops the envelopes that carry its own name.
	Node string
	// Subject is the NATS subject shared by the cluster (DefaultSubject if
	// empty). Clusters sharing one NATS are separated by their subject.
	Subject string
	// Logger receives disconnect and reconnect reports (slog.Default if nil).
	Logger *slog.Logger
}

// Stats are cumulative counters of a PubSub.
type Stats struct {
	Published     uint64 // envelopes handed to nats.go (sent or buffered)
	PublishErrors uint64 // publishes nats.go refused (remote nodes missed them)
	Received      uint64 // envelopes from other nodes delivered locally
	Invalid       uint64 // envelopes that could not be decoded and were dropped
	Outages       uint64 // disconnections seen since New
	Dropped       uint64 // envelopes dropped by nats.go as a slow consumer
}

// PubSub is a pubsub.PubSub spanning every node subscribed to one NATS
// subject. Create it with New and stop it with Close.
type PubSub struct {
	*pubsub.Local
	nc      *natsgo.Conn
	subject string
	log     *slog.Logger
	sub     *natsgo.Subscription

	// closeMu makes Close wait for an in-flight delivery, so nothing is
	// delivered after Close returns.
	closeMu sync.RWMutex
	closed  bool
	stopped atomic.Bool // mirrors closed for Broadcast

	prevDisconnect natsgo.ConnErrHandler
	prevReconnect  natsgo.ConnHandler

	published     atomic.Uint64
	publishErrors atomic.Uint64
	received      atomic.Uint64
	invalid       atomic.Uint64
	outages       atomic.Uint64

	bufs sync.Pool // *[]byte envelopes, reused once Publish returns
}

var _ pubsub.PubSub = (*PubSub)(nil)

// New subscribes nc to the cluster subject and waits, within ctx, until the
// server has registered the subscription, so a node does not start deaf.
// It chains logging disconnect and reconnect handlers in front of nc's own
// (Close restores them). The caller keeps ownership of nc and closes it
// after Close.
func New(ctx context.Context, nc *natsgo.Conn, opts Options) (*PubSub, error) {
	if nc == nil {
		return nil, errors.New("nats pubsub: nil connection")
	}
	if opts.Node == "" {
		return nil, errors.New("nats pubsub: Options.Node is required")
	}
	if opts.Subject == "" {
		opts.Subject = DefaultSubject
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &PubSub{
		Local:   pubsub.NewLocal(opts.Node),
		nc:      nc,
		subject: opts.Subject,
		log:     opts.Logger.With("pubsub", "nats", "node", opts.Node, "subject", opts.Subject),
	}
	sub, err := nc.Subscribe(opts.Subject, p.deliver)
	if err != nil {
		return nil, fmt.Errorf("nats pubsub: subscribe %q: %w", opts.Subject, err)
	}
	// FlushWithContext insists on a deadline; without one, Flush applies
	// nats.go's own timeout rather than risking waiting forever.
	flush := func() error { return nc.FlushWithContext(ctx) }
	if _, ok := ctx.Deadline(); !ok {
		flush = nc.Flush
	}
	if err := flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("nats pubsub: confirm subscription %q: %w", opts.Subject, err)
	}
	p.sub = sub
	p.prevDisconnect, p.prevReconnect = nc.DisconnectErrHandler(), nc.ReconnectHandler()
	nc.SetDisconnectErrHandler(p.onDisconnect)
	nc.SetReconnectHandler(p.onReconnect)
	return p, nil
}

// Broadcast implements pubsub.PubSub. It delivers m to this node's
// subscribers first, so a server outage never affects local delivery, then
// publishes it once for the other nodes; the error reports a publish nats.go
// refused (connection closed, or reconnect buffer full). ctx is unused:
// publishing only writes to nats.go's buffer.
func (p *PubSub) Broadcast(_ context.Context, m *pubsub.Message) error {
	// An atomic, not closeMu: a subscriber may broadcast from Deliver, and
	// re-entering closeMu's read lock there could deadlock against Close.
	if p.stopped.Load() {
		return pubsub.ErrClosed
	}
	m.Node = p.Node()
	p.LocalBroadcast(m)

	bp, _ := p.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = envelope.Append((*bp)[:0], m.Node, m)
	err := p.nc.Publish(p.subject, *bp)
	p.bufs.Put(bp) // Publish copies the bytes into nats.go's buffer
	if err != nil {
		p.publishErrors.Add(1)
		return fmt.Errorf("nats pubsub: publish %q to %q: %w", m.Topic, p.subject, err)
	}
	p.published.Add(1)
	return nil
}

// Conn returns the connection the PubSub was created with, for packages
// that share it (package natshistory publishes to JetStream through it).
func (p *PubSub) Conn() *natsgo.Conn { return p.nc }

// Healthy reports whether the connection is up and subscribed, that is
// whether this node currently receives the other nodes' broadcasts.
func (p *PubSub) Healthy() bool { return p.nc.IsConnected() && p.sub.IsValid() }

// Stats returns the counters accumulated since New.
func (p *PubSub) Stats() Stats {
	dropped, _ := p.sub.Dropped()
	return Stats{
		Published:     p.published.Load(),
		PublishErrors: p.publishErrors.Load(),
		Received:      p.received.Load(),
		Invalid:       p.invalid.Load(),
		Outages:       p.outages.Load(),
		Dropped:       uint64(max(dropped, 0)),
	}
}

// Close unsubscribes and restores the connection's handlers. Once it
// returns, nothing more is delivered from other nodes and Broadcast returns
// pubsub.ErrClosed. The connection is left open.
func (p *PubSub) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.stopped.Store(true)
	p.nc.SetDisconnectErrHandler(p.prevDisconnect)
	p.nc.SetReconnectHandler(p.prevReconnect)
	err := p.sub.Unsubscribe()
	if err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) && !errors.Is(err, natsgo.ErrBadSubscription) {
		return fmt.Errorf("nats pubsub: unsubscribe: %w", err)
	}
	return nil
}

// deliver runs on the subscription's goroutine, one envelope at a time,
// which is what preserves each publisher's order.
func (p *PubSub) deliver(msg *natsgo.Msg) {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return
	}
	m, err := envelope.Decode(msg.Data)
	if err != nil {
		p.invalid.Add(1)
		p.log.Warn("dropping undecodable envelope", "err", err)
		return
	}
	if m.Node == p.Node() {
		return // already delivered locally by Broadcast
	}
	p.received.Add(1)
	p.LocalBroadcast(m)
}

func (p *PubSub) onDisconnect(nc *natsgo.Conn, err error) {
	// A callback queued before Close may run after it: pass it on to the
	// application's handler without logging for a closed adapter.
	if !p.stopped.Load() {
		p.outages.Add(1)
		p.log.Error("nats disconnected; remote broadcasts are not received until it reconnects", "err", err)
	}
	if p.prevDisconnect != nil {
		p.prevDisconnect(nc, err)
	}
}

func (p *PubSub) onReconnect(nc *natsgo.Conn) {
	if !p.stopped.Load() {
		p.log.Info("nats reconnected; subscription restored", "server", nc.ConnectedUrlRedacted())
	}
	if p.prevReconnect != nil {
		p.prevReconnect(nc)
	}
}
