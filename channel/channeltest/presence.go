package channeltest

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/phxgo/phx/socket/client"
)

// Presence is the presence list of one joined channel as a client would
// render it: it applies the presence_state and presence_diff pushes the
// channel receives with the same sync rules as phoenix.js's Presence (the
// code of socket/client's SyncState and SyncDiff). Diffs of one tick are
// coalesced by the tracker, so tests wait for a list (AssertKeys,
// AwaitList) rather than for a number of pushes.
//
//	p := channeltest.NewPresence(ch) // right after AssertOK
//	p.AssertKeys("alice", "bob")
//
// A Presence is used from the test's goroutine; it is not safe for
// concurrent use.
type Presence[A any] struct {
	ch    *Channel[A]
	state client.PresenceState
}

// NewPresence starts following ch's presence list. Pushes already received
// and not yet taken by another assertion are applied too, so it may be
// created after the join.
func NewPresence[A any](ch *Channel[A]) *Presence[A] {
	return &Presence[A]{ch: ch, state: client.PresenceState{}}
}

// AssertKeys waits until the presence keys are exactly keys (in any order),
// applying presence pushes as they arrive, and fails the test after the
// socket's timeout.
func (p *Presence[A]) AssertKeys(keys ...string) {
	p.ch.s.t.Helper()
	want := slices.Sorted(slices.Values(keys))
	p.await(strings.Join(want, ","), func() bool { return slices.Equal(p.Keys(), want) })
}

// AwaitList waits until ok returns true for the current list (sorted by
// key), for conditions on metas, e.g. a key with two of them or a rating
// that changed.
func (p *Presence[A]) AwaitList(what string, ok func([]client.PresenceEntry) bool) {
	p.ch.s.t.Helper()
	p.await(what, func() bool { return ok(p.List()) })
}

func (p *Presence[A]) await(what string, done func() bool) {
	s := p.ch.s
	s.t.Helper()
	deadline := time.Now().Add(s.timeout)
	for !done() {
		left := time.Until(deadline)
		if left <= 0 {
			s.t.Fatalf("channeltest: presence on %s: have %v, want %s", p.ch.topic, p.Keys(), what)
		}
		f, ok := s.take(left, func(f Frame) bool {
			return f.Topic == p.ch.topic && (f.Event == "presence_state" || f.Event == "presence_diff") &&
				(f.JoinRef == p.ch.joinRef || f.JoinRef == "")
		})
		if !ok {
			continue // the deadline check above fails the test
		}
		p.apply(f)
	}
}

func (p *Presence[A]) apply(f Frame) {
	s := p.ch.s
	s.t.Helper()
	if f.Event == "presence_state" {
		var st client.PresenceState
		if err := f.Payload.Decode(&st); err != nil {
			s.t.Fatalf("channeltest: malformed presence_state %s: %v", f.Payload, err)
		}
		p.state = client.SyncState(p.state, st, nil, nil)
		return
	}
	var d client.PresenceDiff
	if err := f.Payload.Decode(&d); err != nil {
		s.t.Fatalf("channeltest: malformed presence_diff %s: %v", f.Payload, err)
	}
	p.state = client.SyncDiff(p.state, d, nil, nil)
}

// Keys returns the keys present now, sorted.
func (p *Presence[A]) Keys() []string {
	return slices.Sorted(maps.Keys(p.state))
}

// List returns the entries present now, sorted by key.
func (p *Presence[A]) List() []client.PresenceEntry {
	out := make([]client.PresenceEntry, 0, len(p.state))
	for _, k := range p.Keys() {
		e := p.state[k]
		e.Key = k
		out = append(out, e)
	}
	return out
}

// Get returns key's entry; Metas holds one meta per tracked instance (a
// user in two tabs has two), each decodable with Decode.
func (p *Presence[A]) Get(key string) (client.PresenceEntry, bool) {
	e, ok := p.state[key]
	return e, ok
}
