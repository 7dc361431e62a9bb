package main

import (
	"encoding/json"
	"time"

	"github.com/phxgo/phx/channel"
)

// room implements room:*, the tour of the channel API.
type room struct {
	app *app
}

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

// AfterJoin tracks the user's presence and sends the joiner the current
// list; the other subscribers get a presence_diff. The presence leaves by
// itself when the channel ends (leave, crash, disconnect).
func (r *room) AfterJoin(c *channel.Context[User]) (channel.Result, error) {
	u := c.Assigns()
	if _, err := r.app.tracker.Track(c, u.Username, map[string]any{"rating": u.Rating}); err != nil {
		return channel.NoReply(), err
	}
	return channel.NoReply(), r.app.tracker.PushState(c)
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
	case "rate":
		return r.rate(c, p)
	case "profile":
		// From the store itself rather than the service's cache, which
		// does not see what other nodes sharing the -db file saved.
		prof, _, err := r.app.store.Load(c.Context(), userKey(u.ID))
		if err != nil {
			c.Logger().Warn("profile", "err", err)
			return channel.Error(map[string]string{"reason": "profile unavailable"}), nil
		}
		return channel.OK(map[string]int{"rating": prof.Rating}), nil
	}
	return channel.Error(map[string]string{"reason": "unknown event " + event}), nil
}

// rate applies {"delta": n} to the stored rating. The mutation runs on the
// service's fresh state, never on the assigns, which keep the connect-time
// rating for the life of the connection.
func (r *room) rate(c *channel.Context[User], p channel.Payload) (channel.Result, error) {
	var in struct {
		Delta *int `json:"delta"`
	}
	if err := p.Decode(&in); err != nil || in.Delta == nil {
		return channel.Error(map[string]string{"reason": "integer delta expected"}), nil
	}
	delta := *in.Delta
	prof, err := r.app.users.Update(c.Context(), userKey(c.Assigns().ID), func(pr *Profile) error {
		pr.Rating += delta
		return nil
	})
	if err != nil {
		c.Logger().Warn("rate", "err", err)
		return channel.Error(map[string]string{"reason": "rating not saved"}), nil
	}
	return channel.OK(map[string]int{"rating": prof.Rating}), nil
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

// feed implements feed:*, a recoverable topic: every broadcast carries its
// position under "phx_pos", and a join naming {"since": position} gets what
// it missed before anything live (see channel.Recovery).
type feed struct{}

func (feed) Join(*channel.Context[User], channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

// HandleIn broadcasts "post" to the topic through its history; the ok
// reply comes once the broadcast has a position, so a publisher waiting
// for it never outruns the history.
func (feed) HandleIn(c *channel.Context[User], event string, p channel.Payload) (channel.Result, error) {
	if event != "post" {
		return channel.Error(map[string]string{"reason": "unknown event " + event}), nil
	}
	if err := c.Broadcast("post", json.RawMessage(p.JSON())); err != nil {
		return channel.Error(map[string]string{"reason": err.Error()}), nil
	}
	return channel.OK(nil), nil
}
