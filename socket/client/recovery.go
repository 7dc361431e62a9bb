package client

import (
	"bytes"
	"encoding/json"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// Position is the position of a broadcast in a recoverable topic's history
// (see channel.Recovery on the server): its offset and the epoch of the
// history the offset belongs to.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// ChannelOption configures a Channel.
type ChannelOption func(*Channel)

// Recover makes a channel of a recoverable topic recover what it missed:
// it remembers the position of the last broadcast it received and names it
// in the params of every rejoin, so that the server replays the broadcasts
// sent while the client was away, before anything live, each once. It is
// the Go twin of the JavaScript snippet in docs/recovery.md.
//
// key is the payload key carrying positions and param the join param
// naming the last one; empty means the server's defaults, "phx_pos" and
// "since". The join reply says whether the replay was complete
// ("recovered": true); when it was not, the channel continues from the
// topic's current position and the application should reload its state.
func Recover(key, param string) ChannelOption {
	if key == "" {
		key = "phx_pos"
	}
	if param == "" {
		param = "since"
	}
	return func(ch *Channel) { ch.rec = &recovery{key: key, param: param} }
}

// recovery is a channel's position tracking, guarded by Client.mu.
type recovery struct {
	key, param string
	pos        Position
	has        bool
	quoted     []byte // the key as a JSON string, to skip payloads without it
}

// Position returns the position of the last broadcast the channel received
// (or, after a join that could not recover, the topic's position then); ok
// is false before any, and for a channel without Recover.
func (ch *Channel) Position() (pos Position, ok bool) {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	if ch.rec == nil {
		return Position{}, false
	}
	return ch.rec.pos, ch.rec.has
}

// joinParamsLocked is what the next join sends: the params, with the last
// position under the since param once there is one.
func (ch *Channel) joinParamsLocked() Payload {
	r := ch.rec
	if r == nil || !r.has {
		return ch.params
	}
	obj := json.RawMessage("{}")
	if ch.params.IsObject() {
		obj = ch.params.JSON()
	}
	return protocol.JSONPayload(pubsub.WithPosition(nil, obj, r.param, r.pos.Offset, r.pos.Epoch))
}

// noteReplyLocked adopts the topic's position from a join reply that says
// nothing (more) will be replayed.
func (r *recovery) noteReplyLocked(p Payload) {
	var reply map[string]json.RawMessage
	if p.IsBinary() || p.Decode(&reply) != nil {
		return
	}
	var recovered bool
	if json.Unmarshal(reply["recovered"], &recovered) != nil || recovered {
		return
	}
	var pos Position
	if json.Unmarshal(reply[r.key], &pos) == nil && pos.Epoch != "" {
		r.pos, r.has = pos, true
	}
}

// noteBroadcastLocked advances the position to a broadcast's.
func (r *recovery) noteBroadcastLocked(p Payload) {
	if r.quoted == nil {
		r.quoted, _ = json.Marshal(r.key)
	}
	if p.IsBinary() || !bytes.Contains(p.JSON(), r.quoted) {
		return
	}
	var body map[string]json.RawMessage
	if p.Decode(&body) != nil {
		return
	}
	var pos Position
	if json.Unmarshal(body[r.key], &pos) != nil || pos.Offset == 0 || pos.Epoch == "" {
		return
	}
	if !r.has || pos.Epoch != r.pos.Epoch || pos.Offset > r.pos.Offset {
		r.pos, r.has = pos, true
	}
}
