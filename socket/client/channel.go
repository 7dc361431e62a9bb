package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/phxgo/phx/socket/protocol"
)

// State is a channel's state, as in phoenix.js.
type State int

// Channel states.
const (
	StateClosed  State = iota // not joined yet, left, or closed by the server
	StateErrored              // join failed or channel crashed; a rejoin is scheduled
	StateJoining              // join sent, no reply yet
	StateJoined               // joined; pushes go out at once
	StateLeaving              // leave sent, no reply yet
)

func (s State) String() string {
	return [...]string{"closed", "errored", "joining", "joined", "leaving"}[s]
}

// EventJoined is a client-side event, never sent by servers: the channel
// delivers it (through Next and On) after every successful join and
// rejoin, with the join reply's response as payload. Its name uses the
// phx_ prefix Phoenix reserves, so it cannot clash with application events.
const EventJoined = "phx_joined"

// Reply is a server's answer to a join or push.
type Reply struct {
	Status   string  // "ok", "error", or any status the server chose
	Response Payload // binary when the server replied with bytes
}

// Message is an event the server sent to a channel: a push, a broadcast,
// phx_error or phx_close (and EventJoined, from the client itself).
type Message struct {
	Topic   string
	Event   string
	Payload Payload
	// JoinRef is the join_ref the message carried: the channel's join for
	// pushes, "" for broadcasts.
	JoinRef string
	// Ref is the message ref ("" for pushes and broadcasts).
	Ref string

	// chanJoinRef is the channel's join ref when the message was
	// dispatched; Presence needs it to tell a rejoin's state from an old one.
	chanJoinRef string
}

// pushOp is a join, push or leave in flight, guarded by Client.mu.
type pushOp struct {
	ch      *Channel
	event   string
	payload Payload
	ref     string
	cn      *conn           // the connection it was sent on
	done    chan pushResult // buffered: resolve never blocks
	join    bool
	noReply bool      // Send: nobody waits
	expires time.Time // Send: drop from the buffer after this
	timer   *time.Timer
}

type pushResult struct {
	reply Reply
	err   error
}

func (op *pushOp) resolve(r Reply, err error) {
	if op.done == nil {
		return
	}
	select {
	case op.done <- pushResult{r, err}:
	default:
	}
}

// Channel is a topic joined over a Client, like phoenix.js's Channel: it
// rejoins by itself after errors and reconnects, buffers pushes made while
// not joined, and buffers the events the server sends it until Next or an
// On handler takes them.
type Channel struct {
	c      *Client
	topic  string
	params Payload
	perr   error // params could not be encoded
	in     *inbox
	rec    *recovery // nil unless Recover

	// Guarded by c.mu.
	state       State
	joinRef     string
	joinedOnce  bool
	joinOp      *pushOp
	joinWaiters []chan pushResult
	buffer      []*pushOp
	rejoinTries int
	rejoinTimer *time.Timer
	rejoinGen   uint64
}

// Channel returns a new channel for topic, sending params (any value that
// encodes to JSON; nil is {}) with every join and rejoin. Like phoenix.js,
// each call makes a new instance; joining it leaves any other instance of
// the same topic first.
func (c *Client) Channel(topic string, params any, opts ...ChannelOption) *Channel {
	p, err := protocol.Marshal(params)
	ch := &Channel{c: c, topic: topic, params: p, perr: err, in: newInbox(c, c.opts.ChannelBuffer)}
	for _, o := range opts {
		o(ch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		ch.in.finish(c.err)
		return ch
	}
	c.channels = append(c.channels, ch)
	return ch
}

// Topic returns the channel's topic.
func (ch *Channel) Topic() string { return ch.topic }

// State returns the channel's current state.
func (ch *Channel) State() State {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return ch.state
}

// JoinRef returns the ref of the current join ("" before the first one).
// Every rejoin gets a new one.
func (ch *Channel) JoinRef() string {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return ch.joinRef
}

// Join joins the topic and waits for the first join reply. A reply with a
// status other than "ok" returns a *ReplyError. Whatever the outcome, the
// channel then keeps itself joined as phoenix.js does: after a join error,
// a join timeout or a phx_error it rejoins with Options.RejoinAfter backoff,
// and after a reconnect at once, until Leave, phx_close or Client.Close.
// The wait is bounded by ctx and Options.Timeout.
func (ch *Channel) Join(ctx context.Context) (Reply, error) {
	if ch.perr != nil {
		return Reply{}, fmt.Errorf("phx client: join %s: %w", ch.topic, ch.perr)
	}
	c := ch.c
	w := make(chan pushResult, 1)
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return Reply{}, c.errClosed()
	case ch.joinedOnce:
		c.mu.Unlock()
		return Reply{}, fmt.Errorf("%w: %s", ErrAlreadyJoined, ch.topic)
	}
	ch.joinedOnce = true
	ch.joinWaiters = append(ch.joinWaiters, w)
	ch.rejoinLocked()
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	select {
	case r := <-w:
		return r.reply, r.err
	case <-ctx.Done():
		c.mu.Lock()
		ch.joinWaiters = slices.DeleteFunc(ch.joinWaiters, func(x chan pushResult) bool { return x == w })
		c.mu.Unlock()
		return Reply{}, timeoutError("join "+ch.topic, ctx.Err())
	}
}

func (c *Client) errClosed() error {
	if c.err != nil && c.err != ErrClosed {
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	}
	return ErrClosed
}

// Push sends event with payload (any value that encodes to JSON, or Binary)
// and waits for the reply. A reply with a status other than "ok" is
// returned together with a *ReplyError. If the channel is not joined yet
// (joining, or rejoining after an error), the push waits in the channel's
// buffer and goes out on join, as in phoenix.js. The wait is bounded by ctx
// and Options.Timeout; an event the server does not reply to times out, so
// use Send for those.
func (ch *Channel) Push(ctx context.Context, event string, payload any) (Reply, error) {
	op, err := ch.push(event, payload, false)
	if err != nil {
		return Reply{}, err
	}
	c := ch.c
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	select {
	case r := <-op.done:
		return r.reply, r.err
	case <-ctx.Done():
		c.mu.Lock()
		ch.buffer = slices.DeleteFunc(ch.buffer, func(x *pushOp) bool { return x == op })
		if op.ref != "" && c.pending[op.ref] == op {
			delete(c.pending, op.ref)
		}
		c.mu.Unlock()
		return Reply{}, timeoutError("push "+ch.topic+" "+event, ctx.Err())
	}
}

// Send pushes event without waiting for a reply (any reply is ignored), for
// events the server answers with a broadcast or not at all. If the channel
// is not joined, the message is buffered for at most Options.Timeout.
func (ch *Channel) Send(event string, payload any) error {
	_, err := ch.push(event, payload, true)
	return err
}

func (ch *Channel) push(event string, payload any, noReply bool) (*pushOp, error) {
	p, err := protocol.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("phx client: push %s %s: %w", ch.topic, event, err)
	}
	c := ch.c
	op := &pushOp{ch: ch, event: event, payload: p, noReply: noReply}
	if !noReply {
		op.done = make(chan pushResult, 1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, c.errClosed()
	case !ch.joinedOnce:
		return nil, fmt.Errorf("%w: %s %s", ErrNotJoined, ch.topic, event)
	case ch.state == StateClosed || ch.state == StateLeaving:
		return nil, fmt.Errorf("%w: %s", ErrChannelClosed, ch.topic)
	}
	if c.conn != nil && ch.state == StateJoined {
		if err := ch.sendPushLocked(op); err != nil {
			return nil, err
		}
		return op, nil
	}
	op.expires = time.Now().Add(c.opts.Timeout)
	ch.buffer = append(ch.buffer, op)
	return op, nil
}

// sendPushLocked gives op a fresh ref and queues it on the connection.
func (ch *Channel) sendPushLocked(op *pushOp) error {
	c := ch.c
	op.ref = c.makeRefLocked()
	op.cn = c.conn
	if !op.noReply {
		c.pending[op.ref] = op
	}
	err := c.sendLocked(outMsg{joinRef: ch.joinRef, ref: op.ref, topic: ch.topic, event: op.event, payload: op.payload})
	if err != nil {
		delete(c.pending, op.ref)
	}
	return err
}

// Leave leaves the topic: it sends phx_leave and closes the channel on the
// reply or after the timeout (at once when disconnected). Automatic rejoins
// stop; pushes still waiting fail with ErrChannelClosed.
func (ch *Channel) Leave(ctx context.Context) error {
	c := ch.c
	c.mu.Lock()
	if !slices.Contains(c.channels, ch) {
		c.mu.Unlock()
		return nil // already closed
	}
	ch.resetRejoinLocked()
	ch.cancelJoinLocked()
	connected := c.conn != nil && (ch.state == StateJoined || ch.state == StateJoining)
	ch.state = StateLeaving
	if !connected {
		ch.closeLocked(ErrChannelClosed)
		c.mu.Unlock()
		return nil
	}
	op := &pushOp{ch: ch, event: protocol.EventLeave, done: make(chan pushResult, 1)}
	err := ch.sendPushLocked(op)
	c.mu.Unlock()
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
		select {
		case <-op.done:
		case <-ctx.Done():
			err = timeoutError("leave "+ch.topic, ctx.Err())
		}
	}
	c.mu.Lock()
	delete(c.pending, op.ref)
	if ch.state == StateLeaving {
		ch.closeLocked(ErrChannelClosed)
	}
	c.mu.Unlock()
	return err
}

// isMemberLocked is phoenix.js's filter: a non-empty join_ref must be the
// channel's current one.
func (ch *Channel) isMemberLocked(joinRef string) bool {
	return joinRef == "" || joinRef == ch.joinRef
}

// rejoinLocked sends a join with a fresh join ref, or waits for the
// connection (state errored, rejoined on open).
func (ch *Channel) rejoinLocked() {
	c := ch.c
	if ch.state == StateLeaving || !slices.Contains(c.channels, ch) {
		return
	}
	c.leaveOpenTopicLocked(ch)
	ch.cancelJoinLocked()
	if c.conn == nil {
		ch.state = StateErrored
		return
	}
	ref := c.makeRefLocked()
	ch.joinRef = ref
	ch.state = StateJoining
	params := ch.joinParamsLocked()
	op := &pushOp{ch: ch, event: protocol.EventJoin, payload: params, ref: ref, cn: c.conn, join: true}
	c.pending[ref] = op
	ch.joinOp = op
	if err := c.sendLocked(outMsg{joinRef: ref, ref: ref, topic: ch.topic, event: protocol.EventJoin, payload: params}); err != nil {
		delete(c.pending, ref)
		ch.joinOp = nil
		ch.state = StateErrored
		ch.resolveJoinLocked(Reply{}, err)
		return
	}
	op.timer = time.AfterFunc(c.opts.Timeout, func() { ch.joinTimedOut(op) })
}

// joinTimedOut is phoenix.js's join "timeout" hook: leave the attempt
// (tagged with its join ref) and retry with backoff.
func (ch *Channel) joinTimedOut(op *pushOp) {
	c := ch.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.joinOp != op || c.closed {
		return
	}
	ch.cancelJoinLocked()
	if c.conn != nil {
		_ = c.sendLocked(outMsg{joinRef: op.ref, ref: c.makeRefLocked(), topic: ch.topic, event: protocol.EventLeave})
	}
	ch.state = StateErrored
	ch.resolveJoinLocked(Reply{}, timeoutError("join "+ch.topic, context.DeadlineExceeded))
	ch.scheduleRejoinLocked()
}

// cancelJoinLocked forgets the join in flight, if any.
func (ch *Channel) cancelJoinLocked() {
	if op := ch.joinOp; op != nil {
		if op.timer != nil {
			op.timer.Stop()
		}
		delete(ch.c.pending, op.ref)
		ch.joinOp = nil
	}
}

func (ch *Channel) resolveJoinLocked(r Reply, err error) {
	for _, w := range ch.joinWaiters {
		w <- pushResult{r, err}
	}
	ch.joinWaiters = nil
}

// scheduleRejoinLocked arms the rejoin timer with the next backoff step, if
// connected (otherwise the next open rejoins).
func (ch *Channel) scheduleRejoinLocked() {
	c := ch.c
	if c.conn == nil {
		return
	}
	if ch.rejoinTimer != nil {
		ch.rejoinTimer.Stop()
	}
	ch.rejoinTries++
	ch.rejoinGen++
	gen := ch.rejoinGen
	ch.rejoinTimer = time.AfterFunc(c.opts.RejoinAfter(ch.rejoinTries), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if gen != ch.rejoinGen || c.closed || c.conn == nil || ch.state != StateErrored {
			return
		}
		ch.rejoinLocked()
	})
}

func (ch *Channel) resetRejoinLocked() {
	if ch.rejoinTimer != nil {
		ch.rejoinTimer.Stop()
		ch.rejoinTimer = nil
	}
	ch.rejoinTries = 0
	ch.rejoinGen++
}

// leaveOpenTopicLocked leaves other instances of the same topic that are
// joined or joining, as phoenix.js does before a join, so the server does not
// see a duplicate join.
func (c *Client) leaveOpenTopicLocked(keep *Channel) {
	for _, other := range slices.Clone(c.channels) {
		if other == keep || other.topic != keep.topic || (other.state != StateJoined && other.state != StateJoining) {
			continue
		}
		other.cancelJoinLocked()
		if c.conn != nil {
			_ = c.sendLocked(outMsg{joinRef: other.joinRef, ref: c.makeRefLocked(), topic: other.topic, event: protocol.EventLeave})
		}
		other.closeLocked(ErrChannelClosed)
	}
}

// replyLocked handles the reply to one of the channel's ops.
func (ch *Channel) replyLocked(op *pushOp, m inMsg) {
	r := Reply{Status: m.status, Response: m.payload}
	var err error
	if r.Status != "ok" {
		err = &ReplyError{Topic: ch.topic, Event: op.event, Status: r.Status, Response: r.Response}
	}
	if !op.join {
		op.resolve(r, err)
		return
	}
	if ch.joinOp != op {
		return // reply to a join we already gave up on
	}
	ch.cancelJoinLocked()
	ch.resolveJoinLocked(r, err)
	if err != nil {
		ch.state = StateErrored
		ch.scheduleRejoinLocked()
		return
	}
	ch.state = StateJoined
	ch.resetRejoinLocked()
	if ch.rec != nil {
		ch.rec.noteReplyLocked(r.Response)
	}
	ch.deliverLocked(Message{Topic: ch.topic, Event: EventJoined, Payload: r.Response, JoinRef: ch.joinRef})
	buf := ch.buffer
	ch.buffer = nil
	now := time.Now()
	for _, p := range buf {
		if p.noReply && now.After(p.expires) {
			continue
		}
		if err := ch.sendPushLocked(p); err != nil {
			p.resolve(Reply{}, err)
		}
	}
}

// handleLocked handles a push, broadcast, phx_error or phx_close.
func (ch *Channel) handleLocked(m inMsg) {
	if ch.rec != nil && m.joinRef == "" {
		ch.rec.noteBroadcastLocked(m.payload)
	}
	ch.deliverLocked(Message{Topic: m.topic, Event: m.event, Payload: m.payload, JoinRef: m.joinRef, Ref: m.ref})
	switch m.event {
	case protocol.EventClose:
		ch.closeLocked(ErrChannelClosed)
	case protocol.EventError:
		if ch.state == StateLeaving || ch.state == StateClosed {
			return
		}
		ch.cancelJoinLocked()
		ch.state = StateErrored
		ch.scheduleRejoinLocked()
	}
}

func (ch *Channel) deliverLocked(m Message) {
	m.chanJoinRef = ch.joinRef
	ch.in.deliver(m)
}

// closeLocked ends the channel for good.
func (ch *Channel) closeLocked(reason error) {
	c := ch.c
	ch.resetRejoinLocked()
	ch.cancelJoinLocked()
	ch.state = StateClosed
	c.removeLocked(ch)
	ch.resolveJoinLocked(Reply{}, reason)
	for _, p := range ch.buffer {
		p.resolve(Reply{}, reason)
	}
	ch.buffer = nil
	for ref, op := range c.pending {
		if op.ch == ch {
			delete(c.pending, ref)
			op.resolve(Reply{}, reason)
		}
	}
	ch.in.finish(reason)
}

// Next waits for the next buffered message whose event is one of events
// (any event when none are given) and removes it from the buffer; other
// messages stay buffered. Once the channel is closed and no buffered message
// matches, it returns the reason (ErrChannelClosed, ErrClosed). Meant for
// tests and simple request/response flows; On suits long-lived consumers.
func (ch *Channel) Next(ctx context.Context, events ...string) (Message, error) {
	return ch.in.next(ctx, events)
}

// On calls fn for every message with the given event ("" for all events),
// in order, on a goroutine of the channel (so fn may call Push). It returns
// a function that removes the handler. Messages that arrived before On are
// not replayed. Client.Close waits for running handlers to return.
func (ch *Channel) On(event string, fn func(Message)) (off func()) {
	return ch.in.on(event, fn)
}
