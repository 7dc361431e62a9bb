package supabase

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/presence"
)

// TopicPrefix starts every Supabase Realtime topic: realtime-js's
// channel("room1") joins "realtime:room1".
const TopicPrefix = "realtime:"

// Config configures a Profile. A is the application's assigns type.
type Config[A any] struct {
	// Verifier checks access tokens. Required.
	Verifier Verifier
	// ConnectClaims returns the claims a join without an access_token runs
	// with, typically those of the API key the connection authenticated
	// with (see Authenticator). nil: when A is Claims, the assigns
	// themselves; otherwise such joins are refused.
	ConnectClaims func(assigns A) Claims
	// Authorize decides whether a private channel may be joined (Supabase's
	// RLS policies on realtime.messages). nil refuses every private channel.
	Authorize func(ctx context.Context, req AuthorizeRequest) error
	// Presence tracks presences; nil refuses presence ("presence is not
	// enabled on this server").
	Presence *presence.Tracker
	// Changes, if set, serves postgres_changes bindings; nil refuses joins
	// that ask for them. No implementation ships yet.
	Changes ChangeSource
}

// AuthorizeRequest is what Config.Authorize decides on.
type AuthorizeRequest struct {
	Topic  string // the sub-topic: "room1" for "realtime:room1"
	Claims Claims // the verified access token's claims
}

// ChangeSource is the seam for a later adapter that feeds database changes
// (e.g. from Postgres logical replication) into channels: Subscribe is
// called on join with the client's postgres_changes bindings and returns
// the bindings' server ids, in order, as realtime-js expects them in the
// join reply; the adapter then pushes "postgres_changes" events to ch.
type ChangeSource interface {
	Subscribe(ch channel.Joined, claims Claims, bindings []json.RawMessage) (ids []int64, err error)
}

// Profile makes the channel handlers of the Supabase dialect.
type Profile[A any] struct {
	cfg Config[A]
}

// New returns a Profile. It panics without a Verifier (a programming error).
func New[A any](cfg Config[A]) *Profile[A] {
	if cfg.Verifier == nil {
		panic("supabase: Config needs a Verifier")
	}
	return &Profile[A]{cfg: cfg}
}

// NewHandler returns a handler for one join; route "realtime:*" to it.
func (p *Profile[A]) NewHandler() channel.Handler[A] { return &handler[A]{p: p} }

// handler is one joined Supabase channel.
type handler[A any] struct {
	p           *Profile[A]
	name        string
	self, ack   bool
	presenceKey string
	presenceOn  bool
	tracked     bool
}

type joinParams struct {
	Config struct {
		Broadcast struct {
			Self bool `json:"self"`
			Ack  bool `json:"ack"`
		} `json:"broadcast"`
		Presence struct {
			Key     string `json:"key"`
			Enabled bool   `json:"enabled"`
		} `json:"presence"`
		PostgresChanges []json.RawMessage `json:"postgres_changes"`
		Private         bool              `json:"private"`
	} `json:"config"`
	AccessToken string `json:"access_token"`
}

func refuse(reason string) channel.Result {
	return channel.Error(map[string]string{"reason": reason})
}

func (h *handler[A]) Join(c *channel.Context[A], params channel.Payload) (channel.Result, error) {
	var jp joinParams
	if len(params.JSON()) > 0 {
		if err := params.Decode(&jp); err != nil {
			return refuse("invalid join payload: " + err.Error()), nil
		}
	}
	h.name = strings.TrimPrefix(c.Topic(), TopicPrefix)
	claims, err := h.claims(c, jp.AccessToken)
	if err != nil {
		return refuse(tokenReason(err)), nil
	}
	if jp.Config.Private {
		if h.p.cfg.Authorize == nil {
			return refuse(unauthorized(h.name)), nil
		}
		if err := h.p.cfg.Authorize(c.Context(), AuthorizeRequest{Topic: h.name, Claims: claims}); err != nil {
			return refuse(unauthorized(h.name) + ": " + err.Error()), nil
		}
	}
	reply := map[string]any{"postgres_changes": []any{}}
	if len(jp.Config.PostgresChanges) > 0 {
		if h.p.cfg.Changes == nil {
			return refuse("postgres_changes is not supported by this server"), nil
		}
		ids, err := h.p.cfg.Changes.Subscribe(c, claims, jp.Config.PostgresChanges)
		if err != nil {
			return refuse("postgres_changes: " + err.Error()), nil
		}
		reply["postgres_changes"] = bindingReplies(jp.Config.PostgresChanges, ids)
	}
	h.self, h.ack = jp.Config.Broadcast.Self, jp.Config.Broadcast.Ack
	h.presenceOn = jp.Config.Presence.Enabled && h.p.cfg.Presence != nil
	h.presenceKey = jp.Config.Presence.Key
	if h.presenceKey == "" {
		h.presenceKey = randomKey()
	}
	if exp := claims.Expiry(); !exp.IsZero() {
		c.SetExpiry(exp)
	}
	return channel.OK(reply), nil
}

// claims verifies the join's access token, or falls back to the
// connection's claims.
func (h *handler[A]) claims(c *channel.Context[A], token string) (Claims, error) {
	if token != "" {
		return h.p.cfg.Verifier.Verify(c.Context(), token)
	}
	if f := h.p.cfg.ConnectClaims; f != nil {
		return f(c.Assigns()), nil
	}
	if cl, ok := any(c.Assigns()).(Claims); ok {
		return cl, nil
	}
	return nil, ErrNoToken
}

func (h *handler[A]) AfterJoin(c *channel.Context[A]) (channel.Result, error) {
	if h.presenceOn {
		return channel.NoReply(), h.p.cfg.Presence.PushState(c)
	}
	return channel.NoReply(), nil
}

// message is the payload realtime-js sends for broadcast and presence.
type message struct {
	Type    string          `json:"type"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

func (h *handler[A]) HandleIn(c *channel.Context[A], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "broadcast":
		var m message
		if err := p.Decode(&m); err != nil || m.Type != "broadcast" || m.Event == "" {
			return refuse("a broadcast needs {type: \"broadcast\", event, payload}"), nil
		}
		// The frame goes out as the client sent it: realtime-js matches
		// the inner event against its bindings.
		var err error
		if h.self {
			err = c.Broadcast("broadcast", p)
		} else {
			err = c.BroadcastFrom("broadcast", p)
		}
		if err != nil {
			return refuse(err.Error()), nil
		}
		if h.ack {
			return channel.OK(nil), nil
		}
		return channel.NoReply(), nil
	case "presence":
		return h.presence(c, p), nil
	case "access_token":
		var m struct {
			AccessToken string `json:"access_token"`
		}
		if err := p.Decode(&m); err != nil || m.AccessToken == "" {
			return refuse("access_token event without a token"), nil
		}
		claims, err := h.p.cfg.Verifier.Verify(c.Context(), m.AccessToken)
		if err != nil {
			// Supabase tells the client and closes the channel.
			_ = c.Push("system", h.system("error", tokenReason(err)))
			return channel.Stop(fmt.Errorf("%w: %w", channel.Expired, err)), nil
		}
		c.SetExpiry(claims.Expiry())
		return channel.NoReply(), nil
	}
	return refuse("unknown event " + event), nil
}

func (h *handler[A]) presence(c *channel.Context[A], p channel.Payload) channel.Result {
	tr := h.p.cfg.Presence
	if tr == nil {
		return refuse("presence is not enabled on this server")
	}
	if !h.presenceOn {
		// realtime-js enables presence at join only when the channel has
		// presence listeners; a track without them turns it on, as on
		// Supabase, starting with the state.
		h.presenceOn = true
		if err := tr.PushState(c); err != nil {
			return refuse(err.Error())
		}
	}
	var m message
	if err := p.Decode(&m); err != nil || m.Type != "presence" {
		return refuse("a presence message needs {type: \"presence\", event, payload}")
	}
	switch m.Event {
	case "track":
		var meta map[string]any
		if len(m.Payload) > 0 {
			if err := json.Unmarshal(m.Payload, &meta); err != nil {
				return refuse("track payload must be an object")
			}
		}
		if meta == nil {
			meta = map[string]any{}
		}
		var err error
		if h.tracked {
			_, err = tr.Update(c, h.presenceKey, meta)
		} else {
			_, err = tr.Track(c, h.presenceKey, meta)
		}
		if err != nil {
			return refuse(err.Error())
		}
		h.tracked = true
	case "untrack":
		tr.Untrack(c, h.presenceKey)
		h.tracked = false
	default:
		return refuse("unknown presence event " + m.Event)
	}
	return channel.OK(nil)
}

// Expired implements channel.Expirer: Supabase's message before the close.
func (h *handler[A]) Expired(c *channel.Context[A]) {
	secs := int(time.Since(c.Expiry()) / time.Second)
	_ = c.Push("system", h.system("error", fmt.Sprintf("Token has expired %d seconds ago", secs)))
}

func (h *handler[A]) system(status, message string) map[string]string {
	return map[string]string{"extension": "system", "status": status, "message": message, "channel": h.name}
}

func tokenReason(err error) string {
	switch {
	case errors.Is(err, ErrTokenExpired):
		return "Token has expired"
	case errors.Is(err, ErrNoToken):
		return "No access token"
	}
	return "Invalid token"
}

func unauthorized(topic string) string {
	return "Unauthorized: You do not have permissions to read from this Channel topic: " + topic
}

// bindingReplies pairs each requested postgres_changes binding with its id,
// the shape realtime-js checks its bindings against.
func bindingReplies(bindings []json.RawMessage, ids []int64) []map[string]any {
	out := make([]map[string]any, 0, len(bindings))
	for i, b := range bindings {
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if m == nil {
			m = map[string]any{}
		}
		if i < len(ids) {
			m["id"] = ids[i]
		}
		out = append(out, m)
	}
	return out
}

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
