// Package redis connects the pubsub of several phx nodes through one Redis
// channel, the way Phoenix.PubSub.Redis does.
//
// Subscriptions never leave the node: each node keeps its subscribers in a
// pubsub.Local and SUBSCRIBEs one Redis channel for the whole namespace. A
// broadcast is delivered to the local subscribers directly and PUBLISHed
// once, as a compact envelope (see internal/envelope) carrying the origin
// node, topic, event, the broadcast_from identity and the payload bytes.
// Every node receives every envelope; a node drops its own and hands the
// others to its Local, so subscribers see each broadcast exactly once and
// broadcast_from exclusion works across nodes.
//
// Redis pub/sub is fire-and-forget: while the broker is unreachable, remote
// delivery is lost (at-most-once) but local delivery continues, Broadcast
// returns the publish error, and the receive loop reconnects and
// resubscribes by itself. Messages from one publisher arrive in the order
// they were published.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/internal/envelope"
)

// DefaultChannel is the Redis channel used when Options.Channel is empty.
const DefaultChannel = "phx:pubsub"

// ErrUnavailable is wrapped by the error Broadcast returns without trying
// to publish, because a recent publish failed and Redis is presumed still
// unreachable (the message was delivered locally only).
var ErrUnavailable = errors.New("redis unavailable")

const (
	defaultHealthCheck = 15 * time.Second
	minBackoff         = 50 * time.Millisecond
	maxBackoff         = 2 * time.Second
	// minPublishBackoff is the first pause of publishing after a failure.
	minPublishBackoff = 100 * time.Millisecond
)

// Options configures New.
type Options struct {
	// Node names this node. It is required and must be unique in the
	// cluster: a node drops the envelopes that carry its own name.
	Node string
	// Channel is the Redis channel shared by the cluster (DefaultChannel if
	// empty). Clusters sharing one Redis are separated by their channel.
	Channel string
	// Logger receives outage and recovery reports (slog.Default if nil).
	Logger *slog.Logger
	// HealthCheck is how long the subscription may stay silent before it is
	// PINGed; a PING left unanswered for as long again means a half-open
	// connection, which is replaced. Defaults to 15s.
	HealthCheck time.Duration
}

// Stats are cumulative counters of a PubSub.
type Stats struct {
	Published     uint64 // envelopes published to Redis
	PublishErrors uint64 // publishes that failed (remote nodes missed them)
	Received      uint64 // envelopes from other nodes delivered locally
	Invalid       uint64 // envelopes that could not be decoded and were dropped
	Outages       uint64 // times the subscription connection was lost
}

// PubSub is a pubsub.PubSub spanning every node subscribed to one Redis
// channel. Create it with New and stop it with Close.
type PubSub struct {
	*pubsub.Local
	client  *goredis.Client
	channel string
	log     *slog.Logger
	health  time.Duration

	ctx    context.Context // canceled by Close; bounds the receive loop
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex // guards sub and closed against Close
	sub    *goredis.PubSub
	closed bool

	healthy       atomic.Bool
	breaker       breaker
	published     atomic.Uint64
	publishErrors atomic.Uint64
	received      atomic.Uint64
	invalid       atomic.Uint64
	outages       atomic.Uint64

	bufs sync.Pool // *[]byte envelopes, reused once Publish returns
}

var _ pubsub.PubSub = (*PubSub)(nil)

// New subscribes client to the cluster channel and starts receiving. It
// fails if the subscription cannot be confirmed before ctx ends, so a node
// does not start deaf; once running it survives any later outage. The caller
// keeps ownership of client and closes it after Close.
func New(ctx context.Context, client *goredis.Client, opts Options) (*PubSub, error) {
	if client == nil {
		return nil, errors.New("redis pubsub: nil client")
	}
	if opts.Node == "" {
		return nil, errors.New("redis pubsub: Options.Node is required")
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HealthCheck <= 0 {
		opts.HealthCheck = defaultHealthCheck
	}
	sub := client.Subscribe(ctx, opts.Channel)
	if _, err := sub.Receive(ctx); err != nil { // the SUBSCRIBE confirmation
		_ = sub.Close()
		return nil, fmt.Errorf("redis pubsub: subscribe %q: %w", opts.Channel, err)
	}
	p := &PubSub{
		Local:   pubsub.NewLocal(opts.Node),
		client:  client,
		channel: opts.Channel,
		log:     opts.Logger.With("pubsub", "redis", "node", opts.Node, "channel", opts.Channel),
		health:  opts.HealthCheck,
		done:    make(chan struct{}),
		sub:     sub,
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.healthy.Store(true)
	go p.run(sub)
	return p, nil
}

// Broadcast implements pubsub.PubSub. It delivers m to this node's
// subscribers first, so a broker outage never affects local delivery, then
// publishes it once for the other nodes; the error reports a failed publish.
func (p *PubSub) Broadcast(ctx context.Context, m *pubsub.Message) error {
	if p.ctx.Err() != nil {
		return pubsub.ErrClosed
	}
	m.Node = p.Node()
	p.LocalBroadcast(m)

	if !p.breaker.allow() {
		p.publishErrors.Add(1)
		return fmt.Errorf("redis pubsub: publish %q to %q: %w", m.Topic, p.channel, ErrUnavailable)
	}
	bp, _ := p.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = envelope.Append((*bp)[:0], m.Node, m)
	err := p.client.Publish(ctx, p.channel, *bp).Err()
	p.bufs.Put(bp) // Publish has written the bytes by the time it returns
	if err != nil && ctx.Err() != nil {
		p.breaker.abort() // the caller giving up says nothing about Redis
	} else {
		p.breaker.done(err)
	}
	if err != nil {
		p.publishErrors.Add(1)
		return fmt.Errorf("redis pubsub: publish %q to %q: %w", m.Topic, p.channel, err)
	}
	p.published.Add(1)
	return nil
}

// Client is the Redis client the PubSub publishes with.
func (p *PubSub) Client() *goredis.Client { return p.client }

// Channel is the Redis channel the cluster shares. A history store (package
// redishistory) publishes recoverable broadcasts to it from a script.
func (p *PubSub) Channel() string { return p.channel }

// Healthy reports whether the subscription connection is up, that is whether
// this node currently receives the other nodes' broadcasts.
func (p *PubSub) Healthy() bool { return p.healthy.Load() }

// Stats returns the counters accumulated since New.
func (p *PubSub) Stats() Stats {
	return Stats{
		Published:     p.published.Load(),
		PublishErrors: p.publishErrors.Load(),
		Received:      p.received.Load(),
		Invalid:       p.invalid.Load(),
		Outages:       p.outages.Load(),
	}
}

// Close unsubscribes, stops the receive goroutine and waits for it. Local
// subscribers receive nothing from other nodes afterwards and Broadcast
// returns pubsub.ErrClosed. The client is left open.
func (p *PubSub) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	p.cancel()
	// Closing the connection is what interrupts a blocked read.
	err := p.sub.Close()
	p.mu.Unlock()
	<-p.done
	p.healthy.Store(false)
	if err != nil {
		return fmt.Errorf("redis pubsub: close: %w", err)
	}
	return nil
}

// run receives envelopes until Close. go-redis reconnects and resubscribes
// a *goredis.PubSub on the next read after a broken connection; this loop
// only paces those attempts, notices silent half-open connections, and
// reports the transitions.
func (p *PubSub) run(sub *goredis.PubSub) {
	defer close(p.done)
	backoff := minBackoff
	pinged := false
	for {
		msg, err := sub.ReceiveTimeout(p.ctx, p.health)
		if p.ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) {
				if !pinged {
					pinged = true
					if err := sub.Ping(p.ctx); err != nil {
						p.down(err)
					}
					continue
				}
				p.down(errors.New("health check PING unanswered"))
				if sub = p.resubscribe(sub); sub == nil {
					return
				}
				pinged = false
				continue
			}
			p.down(err)
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff, pinged = minBackoff, false
		p.up()
		if m, ok := msg.(*goredis.Message); ok {
			p.deliver(m.Payload)
		}
	}
}

// resubscribe replaces a connection that stopped answering; go-redis would
// otherwise wait on it until the kernel gives up, which can take minutes.
func (p *PubSub) resubscribe(old *goredis.PubSub) *goredis.PubSub {
	_ = old.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	// Subscribe records the channel even if it cannot reach Redis now, and
	// the next read retries the connection.
	p.sub = p.client.Subscribe(p.ctx, p.channel)
	return p.sub
}

func (p *PubSub) deliver(s string) {
	m, err := envelope.Decode([]byte(s))
	if err != nil {
		p.invalid.Add(1)
		p.log.Warn("dropping undecodable envelope", "err", err)
		return
	}
	if m.Node == p.Node() && m.Offset == 0 {
		// Broadcast delivered it locally already. A recoverable broadcast
		// (with an offset) is delivered only from here, on every node, so
		// that each node sees a topic's broadcasts in offset order.
		return
	}
	p.received.Add(1)
	p.LocalBroadcast(m)
}

func (p *PubSub) down(err error) {
	if p.healthy.Swap(false) {
		p.outages.Add(1)
		p.log.Error("redis subscription lost; remote broadcasts are not received until it recovers", "err", err)
	}
}

func (p *PubSub) up() {
	// Publishing may well work again: let the next Broadcast try at once.
	p.breaker.reset()
	if !p.healthy.Swap(true) {
		p.log.Info("redis subscription recovered")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// breaker makes Broadcast fail fast while Redis is down. Without it every
// Broadcast of an outage waits for go-redis's dial attempts and retries
// (about a second by default), and a channel handler that broadcasts
// stalls for that long each time. After a failed publish, publishes fail
// at once until a backoff has passed; then a single one tries for real,
// and its outcome closes the breaker or doubles the backoff. The
// subscription recovering resets it.
type breaker struct {
	open    atomic.Bool // fast path: false while publishes succeed
	mu      sync.Mutex
	until   time.Time     // no attempt before
	backoff time.Duration // after the next failure
	probing bool          // one attempt is in flight
}

func (b *breaker) allow() bool {
	if !b.open.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open.Load() {
		return true
	}
	if b.probing || time.Now().Before(b.until) {
		return false
	}
	b.probing = true
	return true
}

func (b *breaker) done(err error) {
	if err == nil && !b.open.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if err == nil {
		b.open.Store(false)
		b.backoff = 0
		return
	}
	b.backoff = min(max(2*b.backoff, minPublishBackoff), maxBackoff)
	b.until = time.Now().Add(b.backoff)
	b.open.Store(true)
}

// abort ends an attempt that proved nothing either way.
func (b *breaker) abort() {
	if !b.open.Load() {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

func (b *breaker) reset() {
	if !b.open.Load() {
		return
	}
	b.mu.Lock()
	b.until = time.Time{}
	b.mu.Unlock()
}
