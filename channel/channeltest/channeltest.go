// Package channeltest tests channel handlers in-process, the way
// Phoenix.ChannelTest does: no network, no Authenticator, the application's
// real Router, and assertions with timeouts on what the client would receive.
//
//	s := channeltest.New(t, router, Player{Name: "alice"})
//	ch := s.Join("room:lobby", nil).AssertOK()
//	ref := ch.Push("shout", map[string]string{"body": "hi"})
//	ch.AssertBroadcast("shout")
//	ch.AssertReply(ref, "ok")
//
// Every Socket owns its PubSub unless told to share one (WithPubSub), so tests
// marked t.Parallel never see each other's broadcasts. Everything a Socket
// starts ends when the test ends.
package channeltest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// DefaultTimeout is how long assertions wait for a frame.
const DefaultTimeout = time.Second

// Option configures a Socket.
type Option func(*options)

type options struct {
	ps       pubsub.PubSub
	timeout  time.Duration
	socketID string
}

// WithPubSub shares a PubSub with other Sockets or with the code under test
// (for example a presence tracker), instead of a private one.
func WithPubSub(ps pubsub.PubSub) Option { return func(o *options) { o.ps = ps } }

// WithTimeout sets how long assertions wait (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithSocketID sets the socket id channels see.
func WithSocketID(id string) Option { return func(o *options) { o.socketID = id } }

// Frame is one message the client received.
type Frame struct {
	JoinRef string // "" for broadcasts and socket-level replies
	Ref     string
	Topic   string
	Event   string
	Payload channel.Payload

	status string // a binary reply's status
}

// Socket is a client connection with the given assigns, without a network.
type Socket[A any] struct {
	t       testing.TB
	sess    *channel.Session[A]
	ps      pubsub.PubSub
	timeout time.Duration
	ref     int

	mu     sync.Mutex
	frames []Frame
	wake   chan struct{}

	bmu        sync.Mutex
	broadcasts map[string]*recorder
}

// New returns a Socket whose channels are routed by router and see assigns.
// It is closed when the test ends.
func New[A any](t testing.TB, router *channel.Router[A], assigns A, opts ...Option) *Socket[A] {
	t.Helper()
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.ps == nil {
		o.ps = pubsub.NewLocal("channeltest")
	}
	s := &Socket[A]{t: t, ps: o.ps, timeout: o.timeout, wake: make(chan struct{}, 1), broadcasts: map[string]*recorder{}}
	s.sess = channel.NewSession(channel.SessionConfig[A]{
		Router:     router,
		Assigns:    assigns,
		SocketID:   o.socketID,
		ID:         fmt.Sprintf("channeltest-%p", s),
		Transport:  "test",
		PubSub:     o.ps,
		Serializer: protocol.V2,
		Out:        outbox[A]{s},
	})
	t.Cleanup(s.Close)
	return s
}

// PubSub is the PubSub the socket's channels use.
func (s *Socket[A]) PubSub() pubsub.PubSub { return s.ps }

// Broadcast sends a server-side broadcast to topic, as Endpoint.broadcast does.
func (s *Socket[A]) Broadcast(topic, event string, payload any) {
	s.t.Helper()
	p, err := protocol.Marshal(payload)
	if err != nil {
		s.t.Fatalf("channeltest: broadcast payload: %v", err)
	}
	if err := s.ps.Broadcast(context.Background(), &pubsub.Message{Topic: topic, Event: event, Payload: p}); err != nil {
		s.t.Fatalf("channeltest: broadcast: %v", err)
	}
}

// Close ends the connection: every channel terminates with channel.Closed,
// and Close waits for them.
func (s *Socket[A]) Close() {
	s.sess.Close(channel.Closed)
	s.sess.Wait()
	s.bmu.Lock()
	for topic, r := range s.broadcasts {
		s.ps.Unsubscribe(topic, r)
	}
	s.broadcasts = map[string]*recorder{}
	s.bmu.Unlock()
}

func (s *Socket[A]) nextRef() string {
	s.ref++
	return strconv.Itoa(s.ref)
}

// Join joins topic with params (nil means {}). Use the returned Join's
// AssertOK or AssertError.
func (s *Socket[A]) Join(topic string, params any) *Join[A] {
	s.t.Helper()
	p, err := protocol.Marshal(params)
	if err != nil {
		s.t.Fatalf("channeltest: join params: %v", err)
	}
	ref := s.nextRef()
	ch := &Channel[A]{s: s, topic: topic, joinRef: ref}
	// Record broadcasts before joining so none are missed.
	s.record(topic)
	s.sess.Handle(protocol.Message{JoinRef: protocol.StringRef(ref), Ref: protocol.StringRef(ref), Topic: topic, Event: protocol.EventJoin, Payload: p})
	return &Join[A]{ch: ch, ref: ref}
}

// Join is a join in progress.
type Join[A any] struct {
	ch  *Channel[A]
	ref string
}

// AssertOK waits for an ok join reply and returns the joined channel.
func (j *Join[A]) AssertOK() *Channel[A] {
	j.ch.s.t.Helper()
	r := j.ch.s.waitReply(j.ch.topic, j.ref)
	if r.Status != "ok" {
		j.ch.s.t.Fatalf("channeltest: join %s: got %s %s, want ok", j.ch.topic, r.Status, r.Response)
	}
	j.ch.JoinReply = r
	return j.ch
}

// AssertError waits for a refused join and returns the reply.
func (j *Join[A]) AssertError() Reply {
	j.ch.s.t.Helper()
	r := j.ch.s.waitReply(j.ch.topic, j.ref)
	if r.Status == "ok" {
		j.ch.s.t.Fatalf("channeltest: join %s succeeded, want a refusal", j.ch.topic)
	}
	return r
}

// Reply is a phx_reply.
type Reply struct {
	Status   string
	Response json.RawMessage // JSON, or the raw bytes of a binary reply
	Binary   bool
}

// Decode unmarshals a JSON response.
func (r Reply) Decode(v any) error { return json.Unmarshal(r.Response, v) }

// Channel is a joined channel from the client's side.
type Channel[A any] struct {
	s         *Socket[A]
	topic     string
	joinRef   string
	JoinReply Reply // the reply to the join
}

// Topic is the channel's topic.
func (c *Channel[A]) Topic() string { return c.topic }

// Push sends event to the channel's HandleIn and returns the message's ref
// for AssertReply. A channel.Binary payload is sent as a binary frame would be.
func (c *Channel[A]) Push(event string, payload any) string {
	c.s.t.Helper()
	p, err := protocol.Marshal(payload)
	if err != nil {
		c.s.t.Fatalf("channeltest: push payload: %v", err)
	}
	ref := c.s.nextRef()
	c.s.sess.Handle(protocol.Message{JoinRef: protocol.StringRef(c.joinRef), Ref: protocol.StringRef(ref), Topic: c.topic, Event: event, Payload: p})
	return ref
}

// AssertReply waits for the reply to ref with the given status and returns it.
func (c *Channel[A]) AssertReply(ref, status string) Reply {
	c.s.t.Helper()
	r := c.s.waitReply(c.topic, ref)
	if r.Status != status {
		c.s.t.Fatalf("channeltest: reply to %s on %s: status %q (%s), want %q", ref, c.topic, r.Status, r.Response, status)
	}
	return r
}

// RefuteReply asserts that no reply to ref arrives within d.
func (c *Channel[A]) RefuteReply(ref string, d time.Duration) {
	c.s.t.Helper()
	if f, ok := c.s.take(d, func(f Frame) bool { return f.Event == protocol.EventReply && f.Topic == c.topic && f.Ref == ref }); ok {
		c.s.t.Fatalf("channeltest: unexpected reply %s", f.Payload)
	}
}

// AssertPush waits for event pushed to this client on this channel (a Push,
// or an intercepted broadcast pushed by HandleOut) and returns its payload.
func (c *Channel[A]) AssertPush(event string) channel.Payload {
	c.s.t.Helper()
	f, ok := c.s.take(c.s.timeout, func(f Frame) bool {
		return f.Topic == c.topic && f.Event == event && (f.JoinRef == c.joinRef || f.JoinRef == "")
	})
	if !ok {
		c.s.t.Fatalf("channeltest: no %q pushed on %s within %v (received: %v)", event, c.topic, c.s.timeout, c.s.pending())
	}
	return f.Payload
}

// RefutePush asserts that event is not pushed to this client within d.
func (c *Channel[A]) RefutePush(event string, d time.Duration) {
	c.s.t.Helper()
	if f, ok := c.s.take(d, func(f Frame) bool { return f.Topic == c.topic && f.Event == event }); ok {
		c.s.t.Fatalf("channeltest: unexpected push %q: %s", event, f.Payload)
	}
}

// AssertBroadcast waits for event broadcast on the channel's topic (by any
// subscriber, as assert_broadcast does) and returns its payload.
func (c *Channel[A]) AssertBroadcast(event string) channel.Payload {
	c.s.t.Helper()
	m, ok := c.s.recorder(c.topic).take(c.s.timeout, event)
	if !ok {
		c.s.t.Fatalf("channeltest: no %q broadcast on %s within %v", event, c.topic, c.s.timeout)
	}
	return m.Payload
}

// RefuteBroadcast asserts that event is not broadcast on the topic within d.
func (c *Channel[A]) RefuteBroadcast(event string, d time.Duration) {
	c.s.t.Helper()
	if m, ok := c.s.recorder(c.topic).take(d, event); ok {
		c.s.t.Fatalf("channeltest: unexpected broadcast %q: %s", event, m.Payload)
	}
}

// Leave sends phx_leave and waits for its ok reply and the phx_close.
func (c *Channel[A]) Leave() {
	c.s.t.Helper()
	ref := c.s.nextRef()
	c.s.sess.Handle(protocol.Message{JoinRef: protocol.StringRef(c.joinRef), Ref: protocol.StringRef(ref), Topic: c.topic, Event: protocol.EventLeave})
	c.AssertReply(ref, "ok")
	c.AssertClose()
}

// AssertClose waits for phx_close: the channel ended cleanly.
func (c *Channel[A]) AssertClose() { c.s.t.Helper(); c.assertExit(protocol.EventClose) }

// AssertCrash waits for phx_error: the channel crashed.
func (c *Channel[A]) AssertCrash() { c.s.t.Helper(); c.assertExit(protocol.EventError) }

func (c *Channel[A]) assertExit(event string) {
	c.s.t.Helper()
	if _, ok := c.s.take(c.s.timeout, func(f Frame) bool {
		return f.Topic == c.topic && f.Event == event && f.JoinRef == c.joinRef
	}); !ok {
		c.s.t.Fatalf("channeltest: no %s on %s within %v (received: %v)", event, c.topic, c.s.timeout, c.s.pending())
	}
}

func (s *Socket[A]) waitReply(topic, ref string) Reply {
	s.t.Helper()
	f, ok := s.take(s.timeout, func(f Frame) bool {
		return f.Event == protocol.EventReply && f.Topic == topic && f.Ref == ref
	})
	if !ok {
		s.t.Fatalf("channeltest: no reply to %s on %s within %v (received: %v)", ref, topic, s.timeout, s.pending())
	}
	if f.Payload.IsBinary() {
		// Binary replies carry the status in the frame; see decodeFrame.
		return Reply{Status: f.binaryStatus(), Response: f.Payload.Bytes(), Binary: true}
	}
	var body struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	if err := f.Payload.Decode(&body); err != nil {
		s.t.Fatalf("channeltest: malformed reply %s", f.Payload)
	}
	return Reply{Status: body.Status, Response: body.Response}
}

// take removes and returns the first received frame matching match, waiting
// up to d for one.
func (s *Socket[A]) take(d time.Duration, match func(Frame) bool) (Frame, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i, f := range s.frames {
			if match(f) {
				s.frames = append(s.frames[:i:i], s.frames[i+1:]...)
				s.mu.Unlock()
				return f, true
			}
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-deadline.C:
			return Frame{}, false
		}
	}
}

func (s *Socket[A]) pending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.frames))
	for _, f := range s.frames {
		out = append(out, fmt.Sprintf("%s %s %s", f.Topic, f.Event, f.Payload))
	}
	return out
}

// outbox decodes what the session sends back into Frames.
type outbox[A any] struct{ s *Socket[A] }

func (o outbox[A]) Send(data []byte, binary bool) {
	f, err := decodeFrame(data, binary)
	if err != nil {
		o.s.t.Errorf("channeltest: the server sent an undecodable frame: %v", err)
		return
	}
	o.s.mu.Lock()
	o.s.frames = append(o.s.frames, f)
	o.s.mu.Unlock()
	select {
	case o.s.wake <- struct{}{}:
	default:
	}
}

func (s *Socket[A]) recorder(topic string) *recorder {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return s.broadcasts[topic]
}

func (s *Socket[A]) record(topic string) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.broadcasts[topic] == nil {
		r := &recorder{wake: make(chan struct{}, 1)}
		s.broadcasts[topic] = r
		s.ps.Subscribe(topic, r)
	}
}

// recorder is the test's own subscription to a topic.
type recorder struct {
	mu   sync.Mutex
	msgs []*pubsub.Message
	wake chan struct{}
}

func (r *recorder) Deliver(m *pubsub.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *recorder) take(d time.Duration, event string) (*pubsub.Message, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i, m := range r.msgs {
			if m.Event == event {
				r.msgs = append(r.msgs[:i:i], r.msgs[i+1:]...)
				r.mu.Unlock()
				return m, true
			}
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-deadline.C:
			return nil, false
		}
	}
}
