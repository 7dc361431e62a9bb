package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// Context is a joined channel as its callbacks see it. It is valid for the
// life of the channel and may be kept and used from other goroutines (for
// example to Push from a background task).
type Context[A any] struct {
	in *instance[A]
}

// Topic is the channel's topic.
func (c *Context[A]) Topic() string { return c.in.topic }

// ID identifies this channel instance uniquely in the cluster.
func (c *Context[A]) ID() string { return c.in.id }

// Assigns returns the connection's assigns, as the Authenticator produced them
// at connect. They never change; keep fresh, mutable state elsewhere (see
// package channel/ephemeral).
func (c *Context[A]) Assigns() A { return c.in.s.cfg.Assigns }

// SocketID is the connection's socket id ("" if it has none).
func (c *Context[A]) SocketID() string { return c.in.s.cfg.SocketID }

// Transport names the client's transport: "websocket" or "longpoll".
func (c *Context[A]) Transport() string { return c.in.s.cfg.Transport }

// Logger is the socket's logger, with the topic attached.
func (c *Context[A]) Logger() *slog.Logger {
	return c.in.s.logger.With("topic", c.in.topic)
}

// PubSub is the PubSub the channel broadcasts through.
func (c *Context[A]) PubSub() pubsub.PubSub { return c.in.s.cfg.PubSub }

// Context returns a context that is cancelled when the channel ends.
func (c *Context[A]) Context() context.Context { return c.in.context() }

// ErrNotObject is returned when a push or broadcast payload is not a JSON
// object or binary; Phoenix requires one of those.
var ErrNotObject = errors.New("channel: push and broadcast payloads must be JSON objects or binary")

// ErrChannelClosed is returned by Push after the channel has ended.
var ErrChannelClosed = errors.New("channel: channel closed")

func pushPayload(v any) (Payload, error) {
	p, err := protocol.Marshal(v)
	if err != nil {
		return p, err
	}
	if !p.IsBinary() && !p.IsObject() {
		return p, ErrNotObject
	}
	return p, nil
}

// Push sends event with payload to this channel's client only.
func (c *Context[A]) Push(event string, payload any) error {
	p, err := pushPayload(payload)
	if err != nil {
		return err
	}
	if c.in.isDead() {
		return ErrChannelClosed
	}
	return c.in.s.sendPush(c.in.joinRef, nil, c.in.topic, event, p)
}

// Broadcast sends event to every subscriber of the topic on every node,
// this channel's client included.
func (c *Context[A]) Broadcast(event string, payload any) error {
	return c.broadcast(event, payload, "")
}

// BroadcastFrom sends event to every subscriber of the topic on every node
// except this channel. The user's other connections still receive it.
func (c *Context[A]) BroadcastFrom(event string, payload any) error {
	return c.broadcast(event, payload, c.in.id)
}

func (c *Context[A]) broadcast(event string, payload any, from string) error {
	p, err := pushPayload(payload)
	if err != nil {
		return err
	}
	m := &pubsub.Message{Topic: c.in.topic, Event: event, Payload: p, From: from}
	if r := c.in.rt.recovery; r != nil {
		return r.publish(c.in.context(), c.in.s.cfg.PubSub, m)
	}
	return c.in.s.cfg.PubSub.Broadcast(c.in.context(), m)
}

// Send delivers msg to the handler's HandleInfo, after the messages already
// queued for this channel. It is ignored once the channel has ended.
func (c *Context[A]) Send(msg any) { c.in.post(mail{kind: mailInfo, info: msg}) }

// OnExit registers fn to run once when the channel ends, for any reason
// (leave, stop, crash, duplicate join, connection close, shutdown). If the
// channel has already ended, fn runs at once.
func (c *Context[A]) OnExit(fn func()) { c.in.onExit(fn) }

// ReplyRef captures the client message being handled so that it can be
// answered later, from any goroutine (Phoenix's socket_ref). It is only valid
// inside HandleIn; elsewhere it returns an error.
func (c *Context[A]) ReplyRef() (ReplyRef, error) {
	ref := c.in.curRef
	if !c.in.inHandleIn {
		return ReplyRef{}, errors.New("channel: ReplyRef outside HandleIn")
	}
	return ReplyRef{s: c.in.s, joinRef: c.in.joinRef, ref: ref, topic: c.in.topic}, nil
}

// ReplyRef answers a client message after its HandleIn has returned.
type ReplyRef struct {
	s       replier
	joinRef json.RawMessage
	ref     json.RawMessage
	topic   string
}

type replier interface {
	sendReply(joinRef, ref json.RawMessage, topic, status string, resp any) error
}

// Reply sends {"status":status,"response":resp} for the captured message.
// Replying more than once is allowed (phoenix.js uses the first). If the
// connection is gone the reply is dropped.
func (r ReplyRef) Reply(status string, resp any) error {
	if r.s == nil {
		return fmt.Errorf("channel: zero ReplyRef")
	}
	return r.s.sendReply(r.joinRef, r.ref, r.topic, status, resp)
}
