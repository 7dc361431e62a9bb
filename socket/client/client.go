package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/socket/protocol"
)

// Payload is a message body: JSON, or raw bytes for binary frames (V2 only).
type Payload = protocol.Payload

// Binary marks a byte slice as a binary payload when pushing: a push of
// client.Binary(b) goes out as a binary frame.
type Binary = protocol.Binary

// Client is one Phoenix socket: a connection that is kept up (reconnecting
// with backoff after drops), with any number of channels multiplexed on it.
// All methods are safe for concurrent use.
type Client struct {
	endpoint *url.URL
	opts     Options
	codec    codec
	log      *slog.Logger

	ctx    context.Context // cancelled by Close; parent of every connection
	cancel context.CancelFunc
	wg     sync.WaitGroup // run loop, connection goroutines, channel dispatchers
	done   chan struct{}  // closed when the run loop has ended

	mu       sync.Mutex
	refs     uint64
	conn     *conn // the open connection, nil while (re)connecting
	channels []*Channel
	pending  map[string]*pushOp // sent pushes awaiting their reply, by ref
	closed   bool
	err      error // why the client ended
}

// conn is one established transport connection and its per-connection
// goroutines (writer, heartbeat).
type conn struct {
	t      transportConn
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	qmu   sync.Mutex
	queue []frame
	wake  chan struct{}

	hbRef      string        // guarded by Client.mu: the unanswered heartbeat
	hbReply    chan struct{} // a heartbeat reply arrived
	hbTimedOut atomic.Bool
}

func (cn *conn) enqueue(f frame) {
	cn.qmu.Lock()
	cn.queue = append(cn.queue, f)
	cn.qmu.Unlock()
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// Dial connects to a Phoenix socket endpoint such as
// "ws://localhost:4000/socket" (the transport path is appended; http(s) URLs
// are accepted too). It returns once the first connection is open, or with a
// *DialError if that attempt fails; afterwards the Client reconnects on its
// own until Close. ctx bounds the first attempt only.
func Dial(ctx context.Context, endpoint string, opts Options) (*Client, error) {
	u, err := endpointURL(endpoint)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	cd, err := codecFor(opts.Vsn)
	if err != nil {
		return nil, err
	}
	if opts.Transport == LongPoll {
		if _, ok := cd.(v2Codec); !ok {
			return nil, fmt.Errorf("phx client: LongPoll needs vsn 2.0.x, got %q", opts.Vsn)
		}
	}
	c := &Client{
		endpoint: u,
		opts:     opts,
		codec:    cd,
		log:      opts.Logger,
		done:     make(chan struct{}),
		pending:  map[string]*pushOp{},
	}
	t, err := c.dialTransport(ctx)
	if err != nil {
		return nil, err
	}
	// The client's lifetime is independent of the dial context.
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cn := c.attach(t)
	c.wg.Add(1)
	go c.run(cn)
	return c, nil
}

// Close disconnects with code 1000, stops reconnecting, closes every channel
// (pending calls fail with ErrClosed) and waits for all of the client's
// goroutines, including On handlers, to return.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.conn
	if !c.closed {
		c.shutdownLocked(ErrClosed)
	}
	c.mu.Unlock()
	if cn != nil {
		_ = cn.t.close(1000, "")
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// Done is closed when the client has ended: after Close, or when the server
// closed the connection with code 1000 (see Err).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err reports why the client ended: nil while it runs, ErrClosed after
// Close, or a *CloseError for a server close with code 1000.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Connected reports whether a connection is currently open.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// shutdownLocked ends the client for good: channels close, calls fail.
func (c *Client) shutdownLocked(reason error) {
	c.closed = true
	c.err = reason
	for _, ch := range slices.Clone(c.channels) {
		ch.closeLocked(reason)
	}
	for ref, op := range c.pending {
		delete(c.pending, ref)
		op.resolve(Reply{}, reason)
	}
}

func (c *Client) makeRefLocked() string {
	c.refs++
	return strconv.FormatUint(c.refs, 10)
}

// sendLocked encodes m and queues it on the open connection.
func (c *Client) sendLocked(m outMsg) error {
	if c.conn == nil {
		return errNotConnected
	}
	data, bin, err := c.codec.encode(m)
	if err != nil {
		return fmt.Errorf("phx client: encode %s %s: %w", m.topic, m.event, err)
	}
	c.conn.enqueue(frame{data: data, binary: bin})
	return nil
}

var errNotConnected = errors.New("phx client: not connected")

// attach makes t the open connection: its writer and heartbeat start, and
// every errored channel rejoins (phoenix.js's onOpen).
func (c *Client) attach(t transportConn) *conn {
	cn := &conn{t: t, wake: make(chan struct{}, 1), hbReply: make(chan struct{}, 1)}
	cn.ctx, cn.cancel = context.WithCancel(c.ctx)
	cn.wg.Add(1)
	go c.writer(cn)
	if c.opts.HeartbeatInterval > 0 && c.opts.Transport != LongPoll {
		cn.wg.Add(1)
		go c.heartbeat(cn)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return cn
	}
	c.conn = cn
	for _, ch := range slices.Clone(c.channels) {
		ch.resetRejoinLocked()
		if ch.state == StateErrored {
			ch.rejoinLocked()
		}
	}
	return cn
}

// run owns the connection lifecycle: serve a connection until it ends, then
// reconnect with backoff unless the close means "stop".
func (c *Client) run(cn *conn) {
	defer c.wg.Done()
	defer close(c.done)
	for {
		err := c.serve(cn)
		if c.ctx.Err() != nil {
			return
		}
		code, reason := closeCode(err)
		if code == 1000 && !cn.hbTimedOut.Load() {
			c.log.Info("phx client: server closed with 1000, not reconnecting", "reason", reason)
			c.mu.Lock()
			if !c.closed {
				c.shutdownLocked(&CloseError{Code: code, Reason: reason})
			}
			c.mu.Unlock()
			return
		}
		c.log.Debug("phx client: connection lost", "code", code, "err", err)
		cn = nil
		for tries := 1; cn == nil; tries++ {
			t := time.NewTimer(c.opts.ReconnectAfter(tries))
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			tc, err := c.dialTransport(c.ctx)
			if err != nil {
				c.log.Debug("phx client: reconnect failed", "try", tries, "err", err)
				continue
			}
			cn = c.attach(tc)
		}
	}
}

// serve reads frames until the connection ends, then marks the channels
// errored (phoenix.js's triggerChanError) and returns how it ended.
func (c *Client) serve(cn *conn) error {
	var err error
	for {
		var f frame
		f, err = cn.t.read(cn.ctx)
		if err != nil {
			break
		}
		m, derr := c.codec.decode(f.data, f.binary)
		if derr != nil {
			c.log.Warn("phx client: dropping undecodable frame", "err", derr)
			continue
		}
		c.dispatch(cn, m)
	}
	cn.cancel()
	cn.t.abort()
	cn.wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
	}
	for ref, op := range c.pending {
		if op.cn == cn && !op.join {
			delete(c.pending, ref)
			op.resolve(Reply{}, ErrConnectionLost)
		}
	}
	for _, ch := range slices.Clone(c.channels) {
		ch.resetRejoinLocked()
		if ch.state == StateJoined || ch.state == StateJoining {
			ch.cancelJoinLocked()
			ch.state = StateErrored
		}
	}
	return err
}

// writer sends queued frames in order, in batches.
func (c *Client) writer(cn *conn) {
	defer cn.wg.Done()
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-cn.wake:
		}
		cn.qmu.Lock()
		batch := cn.queue
		cn.queue = nil
		cn.qmu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if err := cn.t.write(cn.ctx, batch); err != nil {
			c.log.Debug("phx client: write failed", "err", err)
			cn.t.abort()
			return
		}
	}
}

// heartbeat sends a heartbeat every interval after the previous one was
// answered; one still unanswered when the next is due drops the connection
// (phoenix.js closes with 1000 "heartbeat timeout" and reconnects).
func (c *Client) heartbeat(cn *conn) {
	defer cn.wg.Done()
	interval := c.opts.HeartbeatInterval
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-cn.hbReply:
			t.Reset(interval)
		case <-t.C:
			c.mu.Lock()
			if cn.hbRef != "" {
				c.mu.Unlock()
				c.log.Info("phx client: heartbeat timeout, reconnecting")
				cn.hbTimedOut.Store(true)
				// No close handshake: the peer is presumed gone.
				cn.t.abort()
				return
			}
			cn.hbRef = c.makeRefLocked()
			if c.conn == cn {
				_ = c.sendLocked(outMsg{ref: cn.hbRef, topic: protocol.TopicPhoenix, event: protocol.EventHeartbeat})
			}
			c.mu.Unlock()
			t.Reset(interval)
		}
	}
}

// dispatch routes one server message, like phoenix.js's onConnMessage and
// Channel.isMember: to every channel of the topic, unless the message is
// tagged with a join_ref that is not the channel's current one.
func (c *Client) dispatch(cn *conn, m inMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cn {
		return
	}
	if m.event == protocol.EventReply && m.topic == protocol.TopicPhoenix && m.ref != "" && m.ref == cn.hbRef {
		cn.hbRef = ""
		select {
		case cn.hbReply <- struct{}{}:
		default:
		}
		return
	}
	if m.event == protocol.EventReply {
		op := c.pending[m.ref]
		if op == nil || op.ch.topic != m.topic || !op.ch.isMemberLocked(m.joinRef) {
			return // unknown ref, or a reply for a stale join: dropped as phoenix.js does
		}
		delete(c.pending, m.ref)
		op.ch.replyLocked(op, m)
		return
	}
	for _, ch := range slices.Clone(c.channels) {
		if ch.topic == m.topic && ch.isMemberLocked(m.joinRef) {
			ch.handleLocked(m)
		}
	}
}

// removeLocked forgets a closed channel.
func (c *Client) removeLocked(ch *Channel) {
	c.channels = slices.DeleteFunc(c.channels, func(x *Channel) bool { return x == ch })
}
