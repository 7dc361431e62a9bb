package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
)

// Defaults of RecoveryOptions.
const (
	// DefaultPositionKey is the payload key carrying a broadcast's position
	// and the join reply's current position.
	DefaultPositionKey = "phx_pos"
	// DefaultSinceParam is the join param naming the client's last position.
	DefaultSinceParam = "since"
	// DefaultRecoveryTimeout bounds the history query of one join.
	DefaultRecoveryTimeout = 5 * time.Second
)

// RecoveryOptions configures a Recovery. The zero value means the defaults.
type RecoveryOptions struct {
	// Key is the payload key under which each broadcast carries its
	// position, {"offset":12,"epoch":"…"}, and under which the join reply
	// carries the topic's current position (DefaultPositionKey if empty).
	// Application payloads should not use it.
	Key string
	// Param is the join param holding the client's last position
	// (DefaultSinceParam if empty).
	Param string
	// MaxReplay caps the broadcasts replayed to one join (the history's
	// size, history.DefaultSize, if zero). Keep it below the socket's
	// outbound queue, which must hold the whole replay.
	MaxReplay int
	// Timeout bounds the history query of one join (DefaultRecoveryTimeout
	// if zero). A join whose query fails is answered ok with
	// "recovered": false.
	Timeout time.Duration
}

// Recovery makes the broadcasts of the routes it is attached to (see
// Recoverable) recoverable: it publishes them through a history.Store,
// which numbers them, and it answers a join naming a position with the
// broadcasts missed since, before any live broadcast, each exactly once.
//
// The join params name the client's last position:
//
//	{"since": {"offset": 41, "epoch": "9f2c…"}}
//
// and the ok reply adds the topic's current position and whether the replay
// that follows is every broadcast the client missed:
//
//	{"phx_pos": {"offset": 57, "epoch": "9f2c…"}, "recovered": true, …}
//
// "recovered" is false when the join named no position, when the epoch
// changed (the history was lost) or when more was missed than the history
// keeps: the client should then reload its state. Every broadcast carries
// its own position under the same key.
//
// Broadcasts from channel callbacks of a recoverable route go through the
// store by themselves; broadcasts from elsewhere (an HTTP handler, a job)
// must use Recovery.Broadcast, since a plain PubSub broadcast has no
// position and cannot be replayed.
type Recovery struct {
	store history.Store
	opts  RecoveryOptions
	dense bool // the store's offsets grow by one per broadcast

	mu      sync.Mutex
	flights map[flightKey]*flight
}

// NewRecovery returns a Recovery keeping histories in store.
func NewRecovery(store history.Store, opts RecoveryOptions) *Recovery {
	if store == nil {
		panic("channel: NewRecovery with a nil history.Store")
	}
	if opts.Key == "" {
		opts.Key = DefaultPositionKey
	}
	if opts.Param == "" {
		opts.Param = DefaultSinceParam
	}
	if opts.MaxReplay <= 0 {
		opts.MaxReplay = history.DefaultSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultRecoveryTimeout
	}
	d, ok := store.(history.Dense)
	return &Recovery{store: store, opts: opts, dense: ok && d.DenseOffsets(), flights: make(map[flightKey]*flight)}
}

// Recoverable attaches r to a route: its broadcasts are recorded and its
// joins may recover what they missed.
func Recoverable(r *Recovery) RouteOption {
	return func(c *routeConfig) { c.recovery = r }
}

// Broadcast sends event to every subscriber of topic on every node through
// the history, so that it gets a position and can be replayed.
func (r *Recovery) Broadcast(ctx context.Context, ps pubsub.PubSub, topic, event string, payload any) error {
	p, err := pushPayload(payload)
	if err != nil {
		return err
	}
	return r.publish(ctx, ps, &pubsub.Message{Topic: topic, Event: event, Payload: p})
}

func (r *Recovery) publish(ctx context.Context, ps pubsub.PubSub, m *pubsub.Message) error {
	m.PosKey = r.opts.Key
	if err := r.store.Publish(ctx, ps, m); err != nil {
		return fmt.Errorf("channel: recoverable broadcast to %q: %w", m.Topic, err)
	}
	return nil
}

type flightKey struct {
	topic string
	since history.Position
	limit int
}

type flight struct {
	done chan struct{}
	res  history.Result
	err  error
}

// since asks the store, sharing one query among the joins that ask the same
// question at the same time: after a node restart, the clients of a busy
// topic rejoin together with the same position.
func (r *Recovery) since(ctx context.Context, topic string, pos history.Position, limit int) (history.Result, error) {
	key := flightKey{topic, pos, limit}
	r.mu.Lock()
	if f := r.flights[key]; f != nil {
		r.mu.Unlock()
		select {
		case <-f.done:
			return f.res, f.err
		case <-ctx.Done():
			return history.Result{}, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	r.flights[key] = f
	r.mu.Unlock()

	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Timeout)
	f.res, f.err = r.store.Since(qctx, topic, pos, limit)
	cancel()
	r.mu.Lock()
	delete(r.flights, key)
	r.mu.Unlock()
	close(f.done)
	return f.res, f.err
}

// parseSince reads the client's position from the join params; ok is false
// when there is none (or it is malformed, which is treated the same way:
// the client gets the current position and recovered: false).
func (r *Recovery) parseSince(params Payload) (pos history.Position, ok bool) {
	if !params.IsObject() {
		return pos, false
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params.JSON(), &p) != nil {
		return pos, false
	}
	raw, found := p[r.opts.Param]
	if !found || json.Unmarshal(raw, &pos) != nil || pos.Epoch == "" {
		return history.Position{}, false
	}
	return pos, true
}

// replyWith adds the position and the outcome to a join's ok reply.
func (r *Recovery) replyWith(resp any, top history.Position, recovered bool) (any, error) {
	p, err := protocol.Marshal(resp)
	if err != nil {
		return nil, err
	}
	if !p.IsObject() {
		return nil, fmt.Errorf("channel: a recoverable join must reply with an object, not %s", p.String())
	}
	b := pubsub.WithPosition(nil, p.JSON(), r.opts.Key, top.Offset, top.Epoch)
	b = append(b[:len(b)-1], `,"recovered":`...)
	b = strconv.AppendBool(b, recovered)
	b = append(b, '}')
	return protocol.JSONPayload(b), nil
}

// recoverState gates a recoverable channel's deliveries: while its join
// replays the history, live broadcasts wait in pending; afterwards every
// broadcast at or below the last position delivered is a duplicate and is
// dropped. The gate's lock also keeps deliveries in order while pending
// drains.
//
// On a store with dense offsets (history.Dense) the gate also notices a
// broadcast that skips offsets: this node missed some, typically while its
// link to the broker was down, although the client stayed connected. It
// then holds the live broadcasts again and has the channel fetch the
// missing ones from the history (repairGap).
type recoverState struct {
	mu        sync.Mutex
	dense     bool
	replaying bool
	pending   []*pubsub.Message
	epoch     string
	last      uint64
}

func (g *recoverState) deliver(in deliverer, m *pubsub.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.replaying {
		g.pending = append(g.pending, m)
		return
	}
	g.pass(in, m, true)
}

// pass forwards m unless it was already delivered, or holds it and asks for
// a repair when repair is allowed and m comes after a gap; g.mu is held.
func (g *recoverState) pass(in deliverer, m *pubsub.Message, repair bool) {
	if m.Offset != 0 {
		if m.Epoch == g.epoch && m.Offset <= g.last {
			return
		}
		if repair && g.dense && g.epoch != "" {
			// A gap in this history, or a new history (the old one was
			// lost) whose first broadcasts did not reach this node.
			from, gap := history.Position{Offset: g.last, Epoch: g.epoch}, m.Offset > g.last+1
			if m.Epoch != g.epoch {
				from, gap = history.Position{Epoch: m.Epoch}, m.Offset > 1
			}
			if gap {
				g.replaying = true
				g.pending = append(g.pending, m)
				in.repair(from)
				return
			}
		}
		g.epoch, g.last = m.Epoch, m.Offset
	}
	in.forward(m)
}

// finish ends a replay: from top on, pending and later broadcasts flow,
// unless one of them asks for a repair, which holds the rest again.
func (g *recoverState) finish(in deliverer, top history.Position) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if top.Epoch != g.epoch || top.Offset > g.last {
		g.epoch, g.last = top.Epoch, top.Offset
	}
	pending := g.pending
	g.pending, g.replaying = nil, false
	for i, m := range pending {
		if g.replaying {
			g.pending = append(g.pending, m)
		} else {
			g.pass(in, m, true)
		}
		pending[i] = nil
	}
}

type deliverer interface {
	forward(m *pubsub.Message)
	// repair asks for the broadcasts after from; the gate is held meanwhile.
	repair(from history.Position)
}

// errGap ends a recoverable channel that missed broadcasts its history can
// no longer give back: the client rejoins (phoenix.js does on phx_error)
// and learns from "recovered": false that it must reload.
var errGap = errors.New("channel: broadcasts were lost and the history cannot replay them")

// repair queues a gap repair on the channel's own goroutine, so that the
// history query never holds up the pubsub's delivery to other channels.
func (in *instance[A]) repair(from history.Position) {
	in.post(mail{kind: mailRepair, info: from})
}

// repairGap fetches the broadcasts after from and delivers them, then what
// was held meanwhile. When the history cannot fill the gap it ends the
// channel with errGap rather than leave a silent hole.
func (s *Session[A]) repairGap(in *instance[A], from history.Position) {
	r := in.rt.recovery
	res, err := r.since(in.context(), in.topic, from, r.opts.MaxReplay)
	if err != nil || !res.Complete {
		s.logger.Warn("recoverable channel missed broadcasts the history cannot replay; ending it so that the client rejoins",
			"topic", in.topic, "after", from.Offset, "error", err)
		in.stop(errGap, true)
		return
	}
	g := in.rec
	g.mu.Lock()
	for _, m := range res.Messages {
		g.pass(in, m, false)
	}
	g.mu.Unlock()
	g.finish(in, res.Top)
}

// recoverJoin runs a recoverable join after its handler accepted it and the
// channel subscribed (with its gate closed): it queries the history, replies
// ok with the position, replays, and opens the gate.
func (s *Session[A]) recoverJoin(in *instance[A], msg protocol.Message, resp any) {
	r := in.rt.recovery
	since, asked := r.parseSince(msg.Payload)
	limit := 0
	if asked {
		limit = r.opts.MaxReplay
	}
	res, err := r.since(s.cfg.Context, in.topic, since, limit)
	if err != nil {
		s.logger.Warn("history query failed; joining without recovery", "topic", in.topic, "error", err)
		res = history.Result{}
	}
	recovered := asked && err == nil && res.Complete
	reply, rerr := r.replyWith(resp, res.Top, recovered)
	if rerr != nil {
		s.logger.Error("join reply failed", "topic", in.topic, "error", rerr)
		reply = resp
	}
	if rerr := s.sendReply(msg.JoinRef, msg.Ref, msg.Topic, "ok", reply); rerr != nil {
		s.logger.Error("join reply failed", "topic", msg.Topic, "error", rerr)
	}
	g := in.rec
	g.mu.Lock()
	g.epoch, g.last = since.Epoch, since.Offset
	for _, m := range res.Messages {
		g.pass(in, m, false)
	}
	g.mu.Unlock()
	g.finish(in, res.Top)
}
