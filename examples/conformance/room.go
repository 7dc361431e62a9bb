package main

import (
	"encoding/json"
	"time"

	"github.com/phxgo/phx/channel"
)

// room implements room:*, the tour of the channel API.
type room struct{}

func (r *room) Join(c *channel.Context[User], params channel.Payload) (channel.Result, error) {
	if c.Topic() == "room:locked" {
		return channel.Error(map[string]string{"reason": "unauthorized"}), nil
	}
	var p struct {
		FailJoin bool `json:"fail_join"`
	}
	_ = params.Decode(&p) // params may be any JSON value
	if p.FailJoin {
		return channel.Error(map[string]string{"reason": "join failed"}), nil
	}
	u := c.Assigns()
	return channel.OK(map[string]any{"username": u.Username, "rating": u.Rating}), nil
}

func (r *room) HandleIn(c *channel.Context[User], event string, p channel.Payload) (channel.Result, error) {
	u := c.Assigns()
	switch event {
	case "echo":
		return channel.OK(p), nil
	case "echo_error":
		return channel.Error(p), nil
	case "shout":
		return channel.NoReply(), c.Broadcast("shout", withFrom(p, u.Username))
	case "shout_others":
		return channel.NoReply(), c.BroadcastFrom("shout", withFrom(p, u.Username))
	case "push_me":
		if err := c.Push("pushed", p); err != nil {
			return channel.NoReply(), err
		}
		return channel.OK(nil), nil
	case "noreply":
		return channel.NoReply(), nil
	case "async_reply":
		ref, err := c.ReplyRef()
		if err != nil {
			return channel.NoReply(), err
		}
		time.AfterFunc(50*time.Millisecond, func() { _ = ref.Reply("ok", p) })
		return channel.NoReply(), nil
	case "crash":
		return channel.NoReply(), errCrash
	case "stop":
		return channel.OK(map[string]bool{"bye": true}).Stop(channel.Normal), nil
	case "binary_echo":
		if !p.IsBinary() {
			return channel.Error(map[string]string{"reason": "binary payload expected"}), nil
		}
		return channel.OK(channel.Binary(p.Bytes())), nil
	case "whoami":
		return channel.OK(map[string]any{"id": u.ID, "username": u.Username, "rating": u.Rating}), nil
	}
	return channel.Error(map[string]string{"reason": "unknown event " + event}), nil
}

// HandleOut filters the intercepted shout: bob does not get secret ones.
func (r *room) HandleOut(c *channel.Context[User], event string, p channel.Payload) (channel.Result, error) {
	var body struct {
		Secret bool `json:"secret"`
	}
	_ = p.Decode(&body)
	if body.Secret && c.Assigns().Username == "bob" {
		return channel.NoReply(), nil
	}
	return channel.NoReply(), c.Push(event, p)
}

// withFrom returns the payload object with "from" set to the sender.
func withFrom(p channel.Payload, from string) map[string]any {
	m := map[string]any{}
	_ = p.Decode(&m)
	if m == nil {
		m = map[string]any{}
	}
	m["from"] = from
	return m
}

// bench implements bench:*, for load tests: no presence, no intercept.
type bench struct{}

func (bench) Join(*channel.Context[User], channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

func (bench) HandleIn(c *channel.Context[User], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "echo":
		return channel.OK(p), nil
	case "shout":
		return channel.NoReply(), c.Broadcast("shout", json.RawMessage(p.JSON()))
	}
	return channel.Error(map[string]string{"reason": "unknown event " + event}), nil
}
