package socket

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/transport"
)

// closeCause is why the server closes a connection: its close code, its
// reason text, and the reason the channels get.
type closeCause struct {
	code    transport.StatusCode
	text    string
	channel error
}

var (
	closeShutdown     = closeCause{transport.StatusServiceRestart, "server shutting down", channel.Shutdown}
	closeDisconnect   = closeCause{transport.StatusGoingAway, "disconnected", channel.Closed}
	closeIdle         = closeCause{transport.StatusGoingAway, "idle timeout", channel.Closed}
	closeWriteTimeout = closeCause{transport.StatusGoingAway, "write timeout", channel.Closed}
	closeSlow         = closeCause{transport.StatusTryAgainLater, "slow consumer: outbound queue full", channel.Closed}
	closeExpired      = closeCause{transport.StatusTokenExpired, "token expired", channel.Expired}
)

// conn is one client connection: a reader goroutine that owns the protocol
// session, and a writer goroutine that exists only while frames are queued.
type conn[A any] struct {
	srv      *Server[A]
	t        transport.Conn
	sess     *channel.Session[A]
	ser      protocol.Serializer
	socketID string
	tname    string // transport name, for metrics

	// Rate limiting state, touched only by the reader goroutine.
	msgBucket, joinBucket bucket
	msgFlood, joinFlood   floodMeter
	// unsentRefusals counts refusals queued and not yet written: a client
	// waiting for each reply never has more than one.
	unsentRefusals atomic.Int32

	lastRead   atomic.Int64 // coarse unix nanoseconds of the last frame read
	writeStart atomic.Int64 // when the current write batch started; 0 when idle

	// writer is c.writeLoop as a value made once: starting the writer is
	// then `go c.writer()`, which allocates nothing, where `go c.writeLoop()`
	// would allocate a closure on every wake-up, i.e. on every delivery of a
	// fan-out.
	writer func()

	expiry *time.Timer // closes the connection at its token's expiry; nil without one

	mu      sync.Mutex
	queue   []outFrame
	spare   []outFrame // an empty queue kept for the next wake-up
	writing bool
	closing bool
	cause   closeCause
}

// idleSpare is the largest spare queue (in frames) an idle connection keeps:
// enough that a socket receiving one frame at a time never allocates one,
// small enough to cost idle sockets nothing that matters.
const idleSpare = 4

type outFrame struct {
	data    []byte
	binary  bool
	refusal bool // a rate-limit refusal, counted in unsentRefusals
}

func (s *Server[A]) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	release, err := s.admit()
	if err == nil {
		defer release()
		var cd connected[A]
		if cd, err = s.connect(r, "websocket", transport.AuthToken(r.Header)); err == nil {
			s.acceptWebSocket(w, r, cd)
			return
		}
	}
	s.logger.Info("websocket connect refused", "remote", r.RemoteAddr, "error", err)
	s.cfg.Metrics.ConnectRefused("websocket", refusalReason(err))
	if errors.Is(err, ErrBusy) {
		w.Header().Set("Retry-After", "1")
	}
	if unavailable(err) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusForbidden)
}

// acceptWebSocket upgrades an admitted connect and starts its reader.
func (s *Server[A]) acceptWebSocket(w http.ResponseWriter, r *http.Request, cd connected[A]) {
	t, err := transport.AcceptWebSocket(w, r, transport.WebSocketOptions{MaxFrameSize: s.cfg.MaxFrameSize})
	if err != nil {
		s.logger.Info("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	c := s.newConn(t, cd, "websocket")
	if c == nil {
		t.Close(closeShutdown.code, closeShutdown.text)
		return
	}
	// The reader runs on a fresh goroutine so that the HTTP handler's larger
	// stack and request state are freed: an idle socket then costs little.
	go c.readLoop()
}

// newConn registers a connection and its protocol session; nil after
// Shutdown. The caller must start c.readLoop, which owns one count of s.wg.
func (s *Server[A]) newConn(t transport.Conn, cd connected[A], transportName string) *conn[A] {
	c := &conn[A]{srv: s, t: t, ser: cd.serializer, socketID: cd.socketID, tname: transportName}
	c.writer = c.writeLoop
	c.lastRead.Store(s.now.Load())
	c.sess = channel.NewSession(channel.SessionConfig[A]{
		Router:      s.cfg.Router,
		Assigns:     cd.assigns,
		SocketID:    cd.socketID,
		ID:          s.connID(),
		Transport:   transportName,
		PubSub:      s.ps,
		Serializer:  cd.serializer,
		Out:         c,
		MaxChannels: s.cfg.MaxChannels,
		Logger:      s.logger,
		Context:     s.ctx,
		Observer:    observer{s.cfg.Metrics, transportName},
	})
	if !s.register(c) {
		return nil
	}
	s.cfg.Metrics.ConnectionOpened(transportName)
	if c.socketID != "" {
		s.ps.Subscribe(c.socketID, (*idListener[A])(c))
	}
	if !cd.expiry.IsZero() {
		c.expiry = time.AfterFunc(time.Until(cd.expiry), func() { c.closeWith(closeExpired) })
	}
	return c
}

// readLoop reads and handles the client's frames until the connection
// ends. When the connection is idle it hands over to a fresh goroutine that
// waits for the next frame (awaitFrame): handling a frame grows a
// goroutine's stack to 8 KiB or more, which a parked reader would keep, and
// a fresh one parks in 2 KiB. The server's WaitGroup count goes along.
func (c *conn[A]) readLoop() {
	s := c.srv
	idler, _ := c.t.(transport.IdleConn)
	for first := true; ; first = false {
		if !first && idler != nil && idler.Idle() {
			go c.awaitFrame(idler)
			return
		}
		data, binary, err := c.t.ReadFrame(context.Background())
		if err != nil {
			if transport.IsMessageTooBig(err) {
				c.closeWith(closeCause{transport.StatusMessageTooBig, "frame too large", channel.Closed})
			}
			break
		}
		c.lastRead.Store(s.now.Load())
		if !binary && !utf8.Valid(data) {
			c.closeWith(closeCause{transport.StatusInvalidPayload, "text frame is not valid UTF-8", channel.Closed})
			break
		}
		msg, err := c.ser.Decode(data, binary)
		if err != nil {
			code := transport.StatusInvalidPayload
			if binary {
				code = transport.StatusUnsupportedData
			}
			s.logger.Info("closing connection on a malformed frame", "error", err)
			c.closeWith(closeCause{code, truncate(err.Error(), 120), channel.Closed})
			break
		}
		s.cfg.Metrics.MessageIn(c.tname)
		if ok, abusive := c.admit(msg); !ok {
			if abusive {
				c.closeWith(closeCause{transport.StatusPolicyViolation, "rate limit exceeded", channel.Closed})
				break
			}
			continue
		}
		c.sess.Handle(msg)
	}
	c.finish()
	s.wg.Done()
}

// awaitFrame parks until the connection has a frame for readLoop.
func (c *conn[A]) awaitFrame(t transport.IdleConn) {
	t.Wait()
	c.readLoop()
}

// finish tears the connection down after its reader ended.
func (c *conn[A]) finish() {
	s := c.srv
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.socketID != "" {
		s.ps.Unsubscribe(c.socketID, (*idListener[A])(c))
	}
	c.mu.Lock()
	cause, ours := c.cause, c.closing
	if !ours {
		cause = closeCause{channel: channel.Closed}
		c.closing = true
	}
	c.mu.Unlock()
	c.sess.Close(cause.channel)
	c.sess.Wait()
	if !ours {
		// The client went away; when the server closes, closeWith's
		// goroutine owns the closing handshake.
		c.t.CloseNow()
	}
	s.unregister(c)
	s.cfg.Metrics.ConnectionClosed(c.tname)
}

// admit applies the per-socket rate limits: joins and other messages have
// their own buckets. Heartbeats are always answered, so that a throttled
// client is not also disconnected by its own liveness check. A refused
// message gets an error reply; abusive reports that the client floods (see
// Config.AbuseLimit) and must be closed.
func (c *conn[A]) admit(msg protocol.Message) (ok, abusive bool) {
	cfg := &c.srv.cfg
	if msg.Topic == protocol.TopicPhoenix && msg.Event == protocol.EventHeartbeat {
		return true, false
	}
	now := c.srv.now.Load()
	b, rate, burst, flood, kind := &c.msgBucket, cfg.MessageRate, cfg.MessageBurst, &c.msgFlood, "message"
	if msg.Event == protocol.EventJoin && c.sess.CanJoin(msg.Topic) {
		// A join the session will refuse on its own costs what any message
		// costs: it runs no handler.
		b, rate, burst, flood, kind = &c.joinBucket, cfg.JoinRate, cfg.JoinBurst, &c.joinFlood, "join"
	}
	if b.allow(now, float64(rate), float64(burst)) {
		return true, false
	}
	cfg.Metrics.RateLimited(kind)
	if flood.refuse(now, cfg.AbuseWindow, abuseFactor*rate*int(max(cfg.AbuseWindow/time.Second, 1))) {
		return false, true
	}
	if c.unsentRefusals.Load() >= int32(cfg.AbuseLimit) {
		return false, true
	}
	if data, bin, ok := c.sess.ErrorReply(msg, "rate limited"); ok {
		c.unsentRefusals.Add(1)
		c.send(outFrame{data: data, binary: bin, refusal: true})
	}
	return false, false
}

// Send implements channel.Outbox: it queues a frame and wakes the writer.
// It never blocks; a full queue closes the connection as a slow consumer.
func (c *conn[A]) Send(data []byte, binary bool) { c.send(outFrame{data: data, binary: binary}) }

func (c *conn[A]) send(f outFrame) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.srv.cfg.OutboundQueue {
		c.mu.Unlock()
		c.srv.logger.Warn("closing slow consumer", "socket_id", c.socketID)
		c.srv.cfg.Metrics.SlowConsumerClosed()
		c.closeWith(closeSlow)
		return
	}
	if c.queue == nil {
		c.queue, c.spare = c.spare, nil
	}
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		c.srv.wg.Add(1)
		go c.writer()
	}
	c.mu.Unlock()
}

// writeLoop drains the queue in batches, so one wake-up writes every frame
// queued meanwhile, and exits when the queue is empty.
func (c *conn[A]) writeLoop() {
	defer c.srv.wg.Done()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closing {
			c.writing = false
			if c.closing {
				c.queue, c.spare = nil, nil
			} else {
				// Keep one small empty queue, whichever of the two it is.
				if cap(c.spare) > idleSpare {
					c.spare = nil
				}
				if c.spare == nil && cap(c.queue) <= idleSpare {
					c.spare = c.queue[:0]
				}
				c.queue = nil
			}
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.mu.Unlock()

		c.writeStart.Store(c.srv.now.Load())
		var err error
		for _, f := range batch {
			err = c.t.WriteFrame(context.Background(), f.data, f.binary)
			if f.refusal {
				c.unsentRefusals.Add(-1)
			}
			if err != nil {
				break
			}
			c.srv.cfg.Metrics.MessageOut(c.tname)
		}
		c.writeStart.Store(0)
		clear(batch)
		c.mu.Lock()
		if cap(batch) <= 64 {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
		if err != nil {
			c.t.CloseNow()
			c.mu.Lock()
			c.writing = false
			c.queue, c.spare = nil, nil
			c.mu.Unlock()
			return
		}
	}
}

// closeWith closes the connection once, without blocking the caller: the
// closing handshake runs on its own goroutine.
func (c *conn[A]) closeWith(cause closeCause) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.cause = cause
	c.mu.Unlock()
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		if err := c.t.Close(cause.code, cause.text); err != nil && !errors.Is(err, transport.ErrClosed) {
			c.t.CloseNow()
		}
	}()
}

// closedBy returns why the server closed the connection; the zero cause if
// it did not (yet).
func (c *conn[A]) closedBy() closeCause {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// idListener is the connection's subscription to its socket id topic.
type idListener[A any] conn[A]

// Deliver implements pubsub.Subscriber.
func (l *idListener[A]) Deliver(m *pubsub.Message) {
	if m.Event == "disconnect" {
		(*conn[A])(l).closeWith(closeDisconnect)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// observer forwards a session's events to the server's Metrics.
type observer struct {
	m         Metrics
	transport string
}

func (o observer) Joined(status string)  { o.m.Joined(o.transport, status) }
func (o observer) Replied(status string) { o.m.Replied(o.transport, status) }
func (o observer) Dropped(reason string) { o.m.Dropped(o.transport, reason) }
