// Package client is a Go client for Phoenix Channels servers: Phoenix
// itself, or any server speaking the same protocol, such as phx's socket
// package. It behaves like phoenix.js, so a server sees it as it would see a
// browser.
//
// A Client is one socket connection, kept up for you: after any close it did
// not ask for (network loss, heartbeat timeout, a server close code other
// than 1000) it reconnects with phoenix.js's backoff, and every joined
// channel rejoins with a fresh join ref. A server close with code 1000 means
// "stop", as for phoenix.js: the client ends (see Client.Done and Client.Err).
//
// A Channel is one topic on that connection. Join, Push and Leave wait for
// the server's reply (bounded by their context and Options.Timeout). What
// the server sends to the channel (pushes, broadcasts, phx_error,
// phx_close) is buffered per channel, bounded, and read with Next, or
// handled by On handlers, which run on a goroutine of the channel so they
// may push without stalling the connection. Like phoenix.js, a channel
// whose join fails or which crashes on the server keeps rejoining with
// backoff until Leave; phx_close ends it for good.
//
// Presence consumes presence_state and presence_diff exactly as phoenix.js's
// Presence does, and SyncState and SyncDiff expose its merge rules.
//
// Frames use the V2 serializer (JSON arrays and binary payloads) by default,
// or V1 (JSON objects) with Options.Vsn "1.0.0"; the transport is WebSocket
// or, with Options.Transport, LongPoll. The protocol is described in
// docs/phoenix-protocol.md; docs/client.md shows how to use this package.
//
// Close stops every goroutine of a Client, so tests can use it with leak
// checkers.
package client
