// Package channel is where an application's realtime logic lives: topics,
// joins, and the events clients and servers exchange on them.
//
// # Concepts
//
// A client connection (a socket) multiplexes any number of channels, one per
// topic ("room:lobby", "game:42"). The client joins a topic; the Router picks
// the handler registered for the topic's pattern ("room:*" or an exact topic)
// and creates a fresh Handler value for that join. That value is the
// channel's state: every callback of one channel runs one at a time, so the
// handler's fields need no locks, while different channels run in parallel.
// This mirrors Phoenix, where each joined channel is its own process.
//
// A Handler answers Join and HandleIn. It may also implement the optional
// interfaces OutHandler (intercepted broadcasts, filtered per subscriber),
// InfoHandler (messages sent to the channel with Context.Send), AfterJoiner
// (work after the join reply, e.g. pushing presence_state) and Terminator
// (clean-up with the reason the channel ended).
//
// Callbacks return a Result: OK, Error or Reply to answer the client, NoReply,
// or Stop (optionally after a reply). A callback that returns a non-nil error
// or panics ends only its own channel: the client gets phx_error, and the
// connection and its other channels carry on.
//
// The Context passed to every callback gives the topic, the connection's
// assigns (an immutable value produced by the socket's Authenticator: there
// is no way to change it after connect) and the ways to talk: Push to this
// client, Broadcast to every subscriber of the topic on every node,
// BroadcastFrom to all but this channel, and ReplyRef for replying later.
//
// Session is the per-connection engine that applies the protocol's join and
// leave rules; the socket package and test harnesses drive it, applications
// do not need it.
package channel
