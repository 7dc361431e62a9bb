// Package supabase is a profile of the channel layer that speaks the dialect
// of Supabase Realtime, so that the unmodified @supabase/realtime-js client
// (and supabase-js, which embeds it) works against a Go server.
//
// Supabase Realtime is Phoenix Channels with conventions on top. A client
// connects with its project's API key as the apikey param and joins topics
// "realtime:<name>" with a join payload that configures the channel:
//
//	{"config": {"broadcast": {"self": false, "ack": false},
//	            "presence": {"key": "", "enabled": true},
//	            "postgres_changes": [], "private": false},
//	 "access_token": "<JWT>"}
//
// The channel's access token (or, without one, the API key) is a JWT that a
// Verifier checks; its exp becomes the channel's expiry, which the client
// moves by sending fresh tokens (realtime-js setAuth sends "access_token"
// events). When the expiry passes, the channel gets Supabase's "system"
// error message and is closed. Private channels are joined only when the
// application's Authorize hook says yes.
//
// On a joined channel, "broadcast" events {"type": "broadcast", "event": E,
// "payload": P} reach every other subscriber as they were sent (the sender
// too with broadcast.self, and the sender gets a reply with broadcast.ack),
// and "presence" events track and untrack the client on a presence.Tracker,
// which replicates across nodes and sends presence_state and presence_diff
// as realtime-js expects. BroadcastHandler serves Supabase's REST broadcast
// endpoint (POST .../api/broadcast).
//
// postgres_changes is not implemented: a join asking for it is refused with
// a reason realtime-js reports as CHANNEL_ERROR, unless Config.Changes names
// a source of database changes.
//
// Use it by routing "realtime:*" to a Profile's handlers:
//
//	p := supabase.New(supabase.Config[supabase.Claims]{Verifier: v, Presence: tracker})
//	router.Handle("realtime:*", p.NewHandler)
package supabase
