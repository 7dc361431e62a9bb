package supabase_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
	"github.com/phxgo/phx/channel/supabase"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket/client"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

type fixture struct {
	t      *testing.T
	router *channel.Router[supabase.Claims]
	ps     pubsub.PubSub
}

func newFixture(t *testing.T) *fixture {
	v, err := supabase.NewJWTVerifier(supabase.JWTConfig{Secret: secret})
	require.NoError(t, err)
	ps := pubsub.NewLocal("test")
	tracker := presence.New(ps)
	t.Cleanup(func() { _ = tracker.Close() })
	p := supabase.New(supabase.Config[supabase.Claims]{
		Verifier: v,
		Presence: tracker,
		Authorize: func(_ context.Context, r supabase.AuthorizeRequest) error {
			if r.Claims.Role() == "admin" {
				return nil
			}
			return errors.New("not an admin")
		},
	})
	r := channel.NewRouter[supabase.Claims]()
	r.Handle("realtime:*", p.NewHandler)
	return &fixture{t: t, router: r, ps: ps}
}

func (f *fixture) socket() *channeltest.Socket[supabase.Claims] {
	return channeltest.New(f.t, f.router, supabase.Claims{"role": "anon"}, channeltest.WithPubSub(f.ps), channeltest.WithTimeout(2*time.Second))
}

func join(cfg map[string]any, token string) map[string]any {
	p := map[string]any{"config": cfg}
	if token != "" {
		p["access_token"] = token
	}
	return p
}

func TestJoinReplies(t *testing.T) {
	f := newFixture(t)
	s := f.socket()
	ch := s.Join("realtime:room1", join(map[string]any{"broadcast": map[string]any{"self": false}}, "")).AssertOK()
	assert.JSONEq(t, `{"postgres_changes":[]}`, string(ch.JoinReply.Response))

	reason := func(r channeltest.Reply) string {
		var m map[string]string
		require.NoError(t, r.Decode(&m))
		return m["reason"]
	}
	r := s.Join("realtime:secret", join(map[string]any{"private": true}, hs256(t, jwt.MapClaims{"role": "anon"}))).AssertError()
	assert.Contains(t, reason(r), "Unauthorized: You do not have permissions to read from this Channel topic: secret")
	s.Join("realtime:secret", join(map[string]any{"private": true}, hs256(t, jwt.MapClaims{"role": "admin"}))).AssertOK()

	r = s.Join("realtime:db", join(map[string]any{"postgres_changes": []any{map[string]string{"event": "*", "schema": "public"}}}, "")).AssertError()
	assert.Equal(t, "postgres_changes is not supported by this server", reason(r))
	r = s.Join("realtime:old", join(nil, hs256(t, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}))).AssertError()
	assert.Equal(t, "Token has expired", reason(r))
	r = s.Join("realtime:bad", join(nil, "not-a-jwt")).AssertError()
	assert.Equal(t, "Invalid token", reason(r))
}

func TestBroadcastSelfAndAck(t *testing.T) {
	f := newFixture(t)
	a, b := f.socket(), f.socket()
	quiet := a.Join("realtime:r", join(map[string]any{"broadcast": map[string]any{"self": false, "ack": false}}, "")).AssertOK()
	loud := b.Join("realtime:r", join(map[string]any{"broadcast": map[string]any{"self": true, "ack": true}}, "")).AssertOK()

	msg := map[string]any{"type": "broadcast", "event": "cursor", "payload": map[string]int{"x": 1}}
	// What each client is sent (AssertPush sees delivered frames, broadcasts included).
	quiet.Push("broadcast", msg)
	got := loud.AssertPush("broadcast")
	assert.JSONEq(t, `{"type":"broadcast","event":"cursor","payload":{"x":1}}`, string(got.JSON()))
	quiet.RefutePush("broadcast", 100*time.Millisecond)

	ref := loud.Push("broadcast", msg)
	loud.AssertReply(ref, "ok")
	loud.AssertPush("broadcast")
	quiet.AssertPush("broadcast")

	loud.AssertReply(loud.Push("broadcast", map[string]any{"type": "nope"}), "error")
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	f := newFixture(t)
	s := f.socket()
	short := func(d time.Duration) string {
		return hs256(t, jwt.MapClaims{"role": "authenticated", "exp": time.Now().Add(d).Unix()})
	}
	// exp has one-second resolution: 2 s from now expires in 1 to 2 s.
	ch := s.Join("realtime:r", join(nil, short(2*time.Second))).AssertOK()
	time.Sleep(500 * time.Millisecond)
	ch.Push("access_token", map[string]string{"access_token": short(time.Hour)})
	ch.RefutePush("system", 2500*time.Millisecond)

	ch2 := s.Join("realtime:r2", join(nil, short(2*time.Second))).AssertOK()
	sys := ch2.AssertPush("system")
	var m map[string]string
	require.NoError(t, json.Unmarshal(sys.JSON(), &m))
	assert.Equal(t, "error", m["status"])
	assert.Equal(t, "system", m["extension"])
	assert.Equal(t, "r2", m["channel"])
	assert.Contains(t, m["message"], "Token has expired")
	ch2.AssertClose()

	ch3 := s.Join("realtime:r3", join(nil, short(time.Hour))).AssertOK()
	ch3.Push("access_token", map[string]string{"access_token": "garbage"})
	ch3.AssertPush("system")
	ch3.AssertClose()
}

func TestPresenceTrackUntrack(t *testing.T) {
	f := newFixture(t)
	a, b := f.socket(), f.socket()
	cfg := func(key string) map[string]any {
		return map[string]any{"presence": map[string]any{"key": key, "enabled": true}}
	}
	ca := a.Join("realtime:p", join(cfg("alice"), "")).AssertOK()
	ca.AssertPush("presence_state")
	pa := channeltest.NewPresence(ca)
	ca.AssertReply(ca.Push("presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]string{"status": "online"}}), "ok")
	pa.AssertKeys("alice")
	cb := b.Join("realtime:p", join(cfg(""), "")).AssertOK()
	cb.AssertReply(cb.Push("presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]string{}}), "ok")
	pa.AwaitList("two presences", func(l []client.PresenceEntry) bool { return len(l) == 2 })
	ca.AssertReply(ca.Push("presence", map[string]any{"type": "presence", "event": "untrack"}), "ok")
	pa.AwaitList("alice gone", func(l []client.PresenceEntry) bool { return len(l) == 1 && l[0].Key != "alice" })
}

// Send is the server-side broadcast in realtime-js's shape.
func TestSend(t *testing.T) {
	f := newFixture(t)
	ch := f.socket().Join("realtime:news", join(nil, "")).AssertOK()
	require.NoError(t, supabase.Send(context.Background(), psBroadcaster{f.ps}, "news", "headline", map[string]string{"t": "hi"}))
	assert.JSONEq(t, `{"type":"broadcast","event":"headline","payload":{"t":"hi"}}`, string(ch.AssertPush("broadcast").JSON()))
}

// psBroadcaster broadcasts straight on a PubSub, as socket.Server.Broadcast does.
type psBroadcaster struct{ ps pubsub.PubSub }

func (b psBroadcaster) Broadcast(ctx context.Context, topic, event string, payload any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	return b.ps.Broadcast(ctx, &pubsub.Message{Topic: topic, Event: event, Payload: protocol.JSONPayload(p)})
}
