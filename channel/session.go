package channel

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// DefaultMaxChannels is Phoenix's default limit of channels per connection.
const DefaultMaxChannels = 100

// Outbox receives the encoded frames of one connection, in order.
type Outbox interface {
	// Send queues one frame for the client. It must not block; a connection
	// that cannot keep up handles that itself (e.g. by closing).
	Send(data []byte, binary bool)
}

// SessionConfig configures a Session.
type SessionConfig[A any] struct {
	Router     *Router[A]
	Assigns    A
	SocketID   string // "" when the socket has no id
	ID         string // the connection's id, unique in the cluster
	Transport  string // "websocket", "longpoll", "test"
	PubSub     pubsub.PubSub
	Serializer protocol.Serializer
	Out        Outbox
	// MaxChannels caps joined channels; 0 means DefaultMaxChannels, a
	// negative value means no limit.
	MaxChannels int
	Logger      *slog.Logger
	// Context is the parent of every channel's Context; nil means Background.
	Context context.Context
	// Observer, if set, is told of joins, replies and dropped frames, for
	// metrics.
	Observer Observer
}

// Observer receives a session's protocol events. Its methods run on the
// connection's and the channels' goroutines and must be cheap.
type Observer interface {
	// Joined reports a join's outcome: "ok", "error" (refused by the
	// handler), "crashed", "unmatched" or "too_many".
	Joined(status string)
	// Replied reports the status of every reply sent, heartbeats excepted.
	Replied(status string)
	// Dropped reports a frame this client could not be sent, such as a
	// binary broadcast to a V1 or LongPoll client.
	Dropped(reason string)
}

type nopObserver struct{}

func (nopObserver) Joined(string)  {}
func (nopObserver) Replied(string) {}
func (nopObserver) Dropped(string) {}

// Session is one connection's set of channels. It applies the protocol's
// rules for joins, leaves, heartbeats and routing of client messages
// (phoenix-protocol.md 3.2). Handle must be called from one goroutine (the
// connection's reader); everything else is safe for concurrent use.
type Session[A any] struct {
	cfg    SessionConfig[A]
	logger *slog.Logger

	mu       sync.Mutex
	channels map[string]*instance[A]
	nextID   uint64
	closed   bool

	wg sync.WaitGroup
}

// NewSession returns a Session for one connection.
func NewSession[A any](cfg SessionConfig[A]) *Session[A] {
	if cfg.MaxChannels == 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Session[A]{cfg: cfg, logger: logger, channels: make(map[string]*instance[A])}
}

// Serializer is the serializer the session encodes with.
func (s *Session[A]) Serializer() protocol.Serializer { return s.cfg.Serializer }

// Channels returns the number of joined channels.
func (s *Session[A]) Channels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.channels)
}

// Handle dispatches one client message.
func (s *Session[A]) Handle(msg protocol.Message) {
	if msg.Topic == protocol.TopicPhoenix && msg.Event == protocol.EventHeartbeat {
		if data, bin, err := s.cfg.Serializer.EncodeReply(nil, nil, msg.Ref, msg.Topic, "ok", Payload{}); err == nil {
			s.cfg.Out.Send(data, bin)
		}
		return
	}
	s.mu.Lock()
	in := s.channels[msg.Topic]
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	switch {
	case msg.Event == protocol.EventJoin:
		s.join(msg, in)
	case msg.Event == protocol.EventLeave:
		switch {
		case in == nil:
			s.sendReplyPayload(msg.JoinRef, msg.Ref, msg.Topic, "ok", Payload{})
		case msg.JoinRef == nil || protocol.SameRef(msg.JoinRef, in.joinRef):
			s.detach(in)
			in.post(mail{kind: mailLeave, msg: msg})
		default:
			// A stale leave gets no reply at all, as in Phoenix.
		}
	case in == nil:
		s.sendReplyPayload(nil, msg.Ref, msg.Topic, "error", unmatchedTopic)
	case msg.JoinRef != nil && !protocol.SameRef(msg.JoinRef, in.joinRef):
		// Phoenix 1.8 drops messages tagged with a stale join_ref.
	default:
		in.post(mail{kind: mailIn, msg: msg})
	}
}

var (
	unmatchedTopic  = protocol.JSONPayload(json.RawMessage(`{"reason":"unmatched topic"}`))
	tooManyChannels = protocol.JSONPayload(json.RawMessage(`{"reason":"too many channels joined"}`))
	joinCrashed     = protocol.JSONPayload(json.RawMessage(`{"reason":"join crashed"}`))
	crashPayload    = protocol.JSONPayload(json.RawMessage(`{"reason":"channel_crash"}`))
)

func (s *Session[A]) join(msg protocol.Message, old *instance[A]) {
	rt := s.cfg.Router.lookup(msg.Topic)
	if rt == nil {
		s.logger.Debug("ignoring unmatched topic", "topic", msg.Topic)
		s.cfg.Observer.Joined("unmatched")
		s.sendReplyPayload(nil, msg.Ref, msg.Topic, "error", unmatchedTopic)
		return
	}
	if old != nil {
		// Duplicate join: the old channel is killed without Terminate; its
		// phx_close goes out after the new join's reply.
		s.detach(old)
		old.end(errDuplicateJoin, false)
	} else if s.cfg.MaxChannels > 0 && s.Channels() >= s.cfg.MaxChannels {
		s.cfg.Observer.Joined("too_many")
		s.sendReplyPayload(msg.JoinRef, msg.Ref, msg.Topic, "error", tooManyChannels)
		return
	}

	s.mu.Lock()
	s.nextID++
	id := s.cfg.ID + "/" + strconv.FormatUint(s.nextID, 36)
	s.mu.Unlock()
	// The join ref is a slice of the client's frame: a copy lets the frame
	// go, which would otherwise stay in memory as long as the channel.
	in := &instance[A]{s: s, rt: rt, topic: msg.Topic, joinRef: slices.Clone(msg.JoinRef), id: id}
	in.ctx.in = in
	in.handler = rt.newHandler()

	res, err := in.call("Join", func() (Result, error) { return in.handler.Join(&in.ctx, msg.Payload) })
	switch {
	case err != nil:
		s.logger.Error("join crashed", "topic", msg.Topic, "error", err)
		s.cfg.Observer.Joined("crashed")
		s.sendReplyPayload(msg.JoinRef, msg.Ref, msg.Topic, "error", joinCrashed)
		in.dead.Store(true)
		in.runExitHooks()
	case res.reply && res.status != "ok":
		s.cfg.Observer.Joined("error")
		if rerr := s.sendReply(msg.JoinRef, msg.Ref, msg.Topic, res.status, res.resp); rerr != nil {
			s.logger.Error("join reply failed", "topic", msg.Topic, "error", rerr)
		}
		in.end(Shutdown, true)
	default:
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			in.end(Closed, true)
			return
		}
		s.channels[msg.Topic] = in
		s.mu.Unlock()
		s.cfg.Observer.Joined("ok")
		if rt.recovery != nil {
			in.rec = &recoverState{replaying: true, dense: rt.recovery.dense}
		}
		s.cfg.PubSub.Subscribe(msg.Topic, in)
		var resp any
		if res.reply {
			resp = res.resp
		}
		if rt.recovery != nil {
			s.recoverJoin(in, msg, resp)
		} else if rerr := s.sendReply(msg.JoinRef, msg.Ref, msg.Topic, "ok", resp); rerr != nil {
			s.logger.Error("join reply failed", "topic", msg.Topic, "error", rerr)
		}
		if res.stop {
			in.stop(res.reason, true)
		} else {
			in.post(mail{kind: mailAfterJoin})
		}
	}
	if old != nil {
		s.sendPushPayload(old.joinRef, old.joinRef, old.topic, protocol.EventClose, Payload{})
	}
}

// runExitHooks runs hooks registered during a crashed Join.
func (in *instance[A]) runExitHooks() {
	in.mu.Lock()
	in.exited = true
	hooks := in.hooks
	in.hooks = nil
	in.stopExpiryLocked()
	in.mu.Unlock()
	for _, h := range hooks {
		in.safeHook(h)
	}
}

var errDuplicateJoin = &duplicateJoin{}

type duplicateJoin struct{}

func (*duplicateJoin) Error() string { return "channel: replaced by a duplicate join" }
func (*duplicateJoin) Unwrap() error { return Shutdown }

// detach removes a channel from the table and from PubSub so that nothing
// new reaches it; it is idempotent.
func (s *Session[A]) detach(in *instance[A]) {
	s.mu.Lock()
	if s.channels[in.topic] == in {
		delete(s.channels, in.topic)
	}
	s.mu.Unlock()
	s.cfg.PubSub.Unsubscribe(in.topic, in)
}

// Close ends every channel with reason (Closed when the client went away,
// Shutdown for a server shutdown, Inactive for an expired LongPoll session).
// Their Terminate callbacks run in the background; Wait waits for them.
func (s *Session[A]) Close(reason error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	list := make([]*instance[A], 0, len(s.channels))
	for _, in := range s.channels {
		list = append(list, in)
	}
	s.mu.Unlock()
	for _, in := range list {
		s.detach(in)
		in.end(reason, true)
	}
}

// ReplyError answers msg with {"status":"error","response":{"reason":reason}}
// without handling it, for messages a socket refuses (rate limits). Messages
// without a ref get nothing, since nobody waits for them.
func (s *Session[A]) ReplyError(msg protocol.Message, reason string) {
	if data, bin, ok := s.ErrorReply(msg, reason); ok {
		s.cfg.Out.Send(data, bin)
	}
}

// ErrorReply encodes the reply ReplyError would send, for a connection that
// queues it itself; ok is false when msg has no ref (nothing to send).
func (s *Session[A]) ErrorReply(msg protocol.Message, reason string) (data []byte, binary, ok bool) {
	if msg.Ref == nil {
		return nil, false, false
	}
	data, binary, err := s.cfg.Serializer.EncodeReply(nil, msg.JoinRef, msg.Ref, msg.Topic, "error", reasonPayload(reason))
	if err != nil {
		s.logger.Error("reply failed", "topic", msg.Topic, "error", err)
		return nil, false, false
	}
	s.cfg.Observer.Replied("error")
	return data, binary, true
}

// CanJoin reports whether a join to topic would reach a handler: the topic
// has a route, and it is joined already (a duplicate join replaces the
// channel) or the channel limit leaves room. Joins it refuses are answered
// without running application code, so a connection may charge them less.
func (s *Session[A]) CanJoin(topic string) bool {
	if s.cfg.Router.lookup(topic) == nil {
		return false
	}
	if s.cfg.MaxChannels <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, joined := s.channels[topic]
	return joined || len(s.channels) < s.cfg.MaxChannels
}

// Wait blocks until every channel goroutine of the session has finished.
func (s *Session[A]) Wait() { s.wg.Wait() }

func (s *Session[A]) sendExitFrame(in *instance[A], reason error) {
	if isClean(reason) {
		s.sendPushPayload(in.joinRef, in.joinRef, in.topic, protocol.EventClose, Payload{})
	} else {
		s.sendPushPayload(in.joinRef, in.joinRef, in.topic, protocol.EventError, crashPayload)
	}
}

func (s *Session[A]) sendPush(joinRef, ref json.RawMessage, topic, event string, p Payload) error {
	data, bin, err := s.cfg.Serializer.EncodePush(nil, joinRef, ref, topic, event, p)
	if err != nil {
		return err
	}
	s.cfg.Out.Send(data, bin)
	return nil
}

func (s *Session[A]) sendPushPayload(joinRef, ref json.RawMessage, topic, event string, p Payload) {
	if err := s.sendPush(joinRef, ref, topic, event, p); err != nil {
		s.logger.Error("push failed", "topic", topic, "event", event, "error", err)
	}
}

// sendReply encodes resp and replies; a response the serializer cannot carry
// (binary on V1 or LongPoll) becomes an error reply saying so, so the client
// is never left waiting.
func (s *Session[A]) sendReply(joinRef, ref json.RawMessage, topic, status string, resp any) error {
	p, err := protocol.Marshal(resp)
	if err != nil {
		s.sendReplyPayload(joinRef, ref, topic, "error", reasonPayload("reply could not be encoded"))
		return err
	}
	data, bin, err := s.cfg.Serializer.EncodeReply(nil, joinRef, ref, topic, status, p)
	if err != nil {
		s.sendReplyPayload(joinRef, ref, topic, "error", reasonPayload(err.Error()))
		return err
	}
	s.cfg.Out.Send(data, bin)
	s.cfg.Observer.Replied(status)
	return nil
}

func (s *Session[A]) sendReplyPayload(joinRef, ref json.RawMessage, topic, status string, p Payload) {
	data, bin, err := s.cfg.Serializer.EncodeReply(nil, joinRef, ref, topic, status, p)
	if err != nil {
		s.logger.Error("reply failed", "topic", topic, "error", err)
		return
	}
	s.cfg.Out.Send(data, bin)
	s.cfg.Observer.Replied(status)
}

func (s *Session[A]) sendBroadcast(m *pubsub.Message) {
	data, bin, err := m.Frame(s.cfg.Serializer)
	if err != nil {
		s.logger.Debug("broadcast not sent to this client", "topic", m.Topic, "event", m.Event, "error", err)
		s.cfg.Observer.Dropped("unencodable")
		return
	}
	s.cfg.Out.Send(data, bin)
}

func reasonPayload(reason string) Payload {
	p, _ := protocol.Marshal(map[string]string{"reason": reason})
	return p
}
