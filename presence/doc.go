// Package presence tracks who is connected to which topic, across every node
// of a cluster, and tells phoenix.js clients about it in the shape its
// Presence object expects.
//
// # Model
//
// A presence is identified by a key (a user id, say) within a topic. One key
// may be present several times at once, one meta per tracked channel (one per
// browser tab or device); each meta is a JSON object carrying the app's fields
// plus a server-generated "phx_ref" that is unique and opaque. The current
// presences of a topic are listed as
//
//	{"alice": {"metas": [{"status": "away", "phx_ref": "F_kq3c2nAqlhqAIB"}]}}
//
// Clients receive that full list once per join, as a "presence_state" push that
// the app sends itself (see Tracker.PushState), and afterwards every change as a
// "presence_diff" broadcast {"joins": {...}, "leaves": {...}}. phoenix.js buffers
// diffs until it has the state of its current join, so the app must push the
// state after every join and rejoin.
//
// # Use from a channel
//
// After a successful join the channel tracks itself and pushes the state:
//
//	ref, err := tracker.Track(ch, userID, map[string]any{"online_at": now})
//	...
//	err = tracker.PushState(ch)
//
// The tracker registers ch.OnExit, so the presence leaves by itself when the
// channel ends for any reason; Untrack and Update are for changes while the
// channel lives.
//
// # Replication
//
// There is no leader and no central store: every node holds the presences of
// every topic, replicated over PubSub with the design of Phoenix.Tracker, a
// delta-state add-wins observed-remove set. Each node broadcasts the changes
// it made since its last heartbeat, every broadcast period; a node that misses
// something notices it from its peers' clocks and asks for a transfer. Each
// node computes the diffs of its own state and delivers them only to its
// local subscribers, so clients never receive a change twice. A node that is
// not heard from for the down period has its presences reported as leaves
// (and reported as joins again if it comes back); after the permdown period
// they are forgotten. A node counts only the time it was listening: if its
// own tracker got no CPU for a while (a starved box), its peers' silence
// during that stall is not held against them. docs/presence.md describes
// the design and its guarantees.
package presence
