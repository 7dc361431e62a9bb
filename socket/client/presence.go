package client

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// PresenceMeta is one tracked instance of a presence (one tab, one
// device): the meta object with its server-assigned refs pulled out.
type PresenceMeta struct {
	Ref     string          // phx_ref, unique per key
	PrevRef string          // phx_ref_prev, set on the meta that replaced another in an update
	Raw     json.RawMessage // the whole meta object
}

// Decode unmarshals the meta object into v.
func (m PresenceMeta) Decode(v any) error { return json.Unmarshal(m.Raw, v) }

// UnmarshalJSON implements json.Unmarshaler.
func (m *PresenceMeta) UnmarshalJSON(b []byte) error {
	var refs struct {
		Ref     string `json:"phx_ref"`
		PrevRef string `json:"phx_ref_prev"`
	}
	if err := json.Unmarshal(b, &refs); err != nil {
		return fmt.Errorf("phx client: presence meta: %w", err)
	}
	*m = PresenceMeta{Ref: refs.Ref, PrevRef: refs.PrevRef, Raw: append(json.RawMessage(nil), b...)}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (m PresenceMeta) MarshalJSON() ([]byte, error) { return m.Raw, nil }

// PresenceEntry is everything known about one presence key: its metas,
// oldest first, and any extra fields the server added beside "metas"
// (Phoenix's fetch/2 hook).
type PresenceEntry struct {
	Key   string `json:"-"`
	Metas []PresenceMeta
	Extra map[string]json.RawMessage
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *PresenceEntry) UnmarshalJSON(b []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("phx client: presence entry: %w", err)
	}
	var metas []PresenceMeta
	if raw, ok := obj["metas"]; ok {
		if err := json.Unmarshal(raw, &metas); err != nil {
			return fmt.Errorf("phx client: presence metas: %w", err)
		}
		delete(obj, "metas")
	}
	if len(obj) == 0 {
		obj = nil
	}
	*e = PresenceEntry{Key: e.Key, Metas: metas, Extra: obj}
	return nil
}

func (e PresenceEntry) clone() PresenceEntry {
	e.Metas = slices.Clone(e.Metas)
	return e
}

func (e PresenceEntry) refs() []string {
	out := make([]string, len(e.Metas))
	for i, m := range e.Metas {
		out[i] = m.Ref
	}
	return out
}

// PresenceState is the payload of presence_state, and the synced view: key
// to entry.
type PresenceState map[string]PresenceEntry

// UnmarshalJSON implements json.Unmarshaler, filling in each entry's Key.
func (s *PresenceState) UnmarshalJSON(b []byte) error {
	var m map[string]PresenceEntry
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, e := range m {
		e.Key = k
		m[k] = e
	}
	*s = m
	return nil
}

// PresenceDiff is the payload of presence_diff.
type PresenceDiff struct {
	Joins  PresenceState `json:"joins"`
	Leaves PresenceState `json:"leaves"`
}

// PresenceJoinFunc is called for a key that gained metas: current is its
// entry before (nil for a new key), joined the entry with the new metas.
type PresenceJoinFunc func(key string, current *PresenceEntry, joined PresenceEntry)

// PresenceLeaveFunc is called for a key that lost metas: remaining is its
// entry after (no metas when the key left entirely), left the removed metas.
type PresenceLeaveFunc func(key string, remaining PresenceEntry, left PresenceEntry)

// sortedKeys iterates in key order: JavaScript objects keep insertion
// order, Go maps have none, so sorted is the deterministic choice.
func sortedKeys(s PresenceState) []string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SyncState merges a presence_state payload into current, like phoenix.js
// Presence.syncState: keys missing from newState leave; for keys in both,
// metas with new phx_refs join and vanished ones leave; new keys join. It
// returns the new state and does not modify its arguments. onJoin and
// onLeave may be nil.
func SyncState(current, newState PresenceState, onJoin PresenceJoinFunc, onLeave PresenceLeaveFunc) PresenceState {
	state := cloneState(current)
	joins, leaves := PresenceState{}, PresenceState{}
	for _, key := range sortedKeys(state) {
		if _, ok := newState[key]; !ok {
			leaves[key] = state[key]
		}
	}
	for _, key := range sortedKeys(newState) {
		np := newState[key].clone()
		np.Key = key
		cur, ok := state[key]
		if !ok {
			joins[key] = np
			continue
		}
		newRefs, curRefs := np.refs(), cur.refs()
		joined := slices.DeleteFunc(slices.Clone(np.Metas), func(m PresenceMeta) bool { return slices.Contains(curRefs, m.Ref) })
		left := slices.DeleteFunc(slices.Clone(cur.Metas), func(m PresenceMeta) bool { return slices.Contains(newRefs, m.Ref) })
		if len(joined) > 0 {
			np.Metas = joined
			joins[key] = np
		}
		if len(left) > 0 {
			lp := cur.clone()
			lp.Metas = left
			leaves[key] = lp
		}
	}
	return syncDiff(state, PresenceDiff{Joins: joins, Leaves: leaves}, onJoin, onLeave)
}

// SyncDiff applies a presence_diff to state, like phoenix.js
// Presence.syncDiff: joins first (a joined key's entry becomes the diff's,
// with the previously known metas that are not in it put in front), then
// leaves (metas removed by phx_ref; a key with none left is deleted). It
// returns the new state and does not modify its arguments.
func SyncDiff(state PresenceState, diff PresenceDiff, onJoin PresenceJoinFunc, onLeave PresenceLeaveFunc) PresenceState {
	return syncDiff(cloneState(state), diff, onJoin, onLeave)
}

// syncDiff works on a state it owns.
func syncDiff(state PresenceState, diff PresenceDiff, onJoin PresenceJoinFunc, onLeave PresenceLeaveFunc) PresenceState {
	for _, key := range sortedKeys(diff.Joins) {
		np := diff.Joins[key].clone()
		np.Key = key
		cur, had := state[key]
		entry := np.clone()
		if had {
			joinedRefs := entry.refs()
			kept := slices.DeleteFunc(slices.Clone(cur.Metas), func(m PresenceMeta) bool { return slices.Contains(joinedRefs, m.Ref) })
			entry.Metas = append(kept, entry.Metas...)
		}
		state[key] = entry
		if onJoin != nil {
			var prev *PresenceEntry
			if had {
				c := cur.clone()
				prev = &c
			}
			onJoin(key, prev, np)
		}
	}
	for _, key := range sortedKeys(diff.Leaves) {
		lp := diff.Leaves[key].clone()
		lp.Key = key
		cur, ok := state[key]
		if !ok {
			continue
		}
		gone := lp.refs()
		cur.Metas = slices.DeleteFunc(slices.Clone(cur.Metas), func(m PresenceMeta) bool { return slices.Contains(gone, m.Ref) })
		if onLeave != nil {
			onLeave(key, cur.clone(), lp)
		}
		if len(cur.Metas) == 0 {
			delete(state, key)
		} else {
			state[key] = cur
		}
	}
	return state
}

func cloneState(s PresenceState) PresenceState {
	out := make(PresenceState, len(s))
	for k, e := range s {
		out[k] = e.clone()
	}
	return out
}

// PresenceOptions configures a Presence. Callbacks run on the channel's
// handler goroutine, one at a time, and may call Presence methods.
type PresenceOptions struct {
	// StateEvent and DiffEvent default to "presence_state" and "presence_diff".
	StateEvent, DiffEvent string
	OnJoin                PresenceJoinFunc
	OnLeave               PresenceLeaveFunc
	// OnSync is called after a state or diff has been applied.
	OnSync func()
}

// Presence keeps a channel's presence list in sync, like phoenix.js's
// Presence: it applies presence_state and presence_diff, and buffers diffs
// that arrive before the presence_state of the current join (first join or
// any rejoin), so the list never mixes a stale state with new diffs.
// Create it before joining the channel, or the initial state is missed.
type Presence struct {
	opts PresenceOptions
	offs []func()

	mu      sync.Mutex
	state   PresenceState
	joinRef string // the join whose presence_state was applied
	pending []PresenceDiff
}

// NewPresence starts tracking presence on ch.
func NewPresence(ch *Channel, opts PresenceOptions) *Presence {
	if opts.StateEvent == "" {
		opts.StateEvent = "presence_state"
	}
	if opts.DiffEvent == "" {
		opts.DiffEvent = "presence_diff"
	}
	p := &Presence{opts: opts, state: PresenceState{}}
	p.offs = []func(){
		ch.On(opts.StateEvent, p.onState),
		ch.On(opts.DiffEvent, p.onDiff),
	}
	return p
}

// Stop stops tracking; List keeps returning the last state.
func (p *Presence) Stop() {
	for _, off := range p.offs {
		off()
	}
}

func (p *Presence) onState(m Message) {
	var s PresenceState
	if err := m.Payload.Decode(&s); err != nil {
		return
	}
	var calls []func()
	onJoin, onLeave := p.deferred(&calls)
	p.mu.Lock()
	p.joinRef = m.chanJoinRef
	p.state = SyncState(p.state, s, onJoin, onLeave)
	for _, d := range p.pending {
		p.state = syncDiff(p.state, d, onJoin, onLeave)
	}
	p.pending = nil
	p.mu.Unlock()
	p.run(calls)
}

// deferred returns callbacks that record the user's callbacks, to run them
// after p.mu is released (so they may call List).
func (p *Presence) deferred(calls *[]func()) (PresenceJoinFunc, PresenceLeaveFunc) {
	var onJoin PresenceJoinFunc
	var onLeave PresenceLeaveFunc
	if f := p.opts.OnJoin; f != nil {
		onJoin = func(k string, cur *PresenceEntry, j PresenceEntry) { *calls = append(*calls, func() { f(k, cur, j) }) }
	}
	if f := p.opts.OnLeave; f != nil {
		onLeave = func(k string, rem, l PresenceEntry) { *calls = append(*calls, func() { f(k, rem, l) }) }
	}
	return onJoin, onLeave
}

func (p *Presence) run(calls []func()) {
	for _, f := range calls {
		f()
	}
	if p.opts.OnSync != nil {
		p.opts.OnSync()
	}
}

func (p *Presence) onDiff(m Message) {
	var d PresenceDiff
	if err := m.Payload.Decode(&d); err != nil {
		return
	}
	p.mu.Lock()
	if p.joinRef == "" || p.joinRef != m.chanJoinRef {
		p.pending = append(p.pending, d)
		p.mu.Unlock()
		return
	}
	var calls []func()
	onJoin, onLeave := p.deferred(&calls)
	p.state = syncDiff(p.state, d, onJoin, onLeave)
	p.mu.Unlock()
	p.run(calls)
}

// List returns the current presences, sorted by key.
func (p *Presence) List() []PresenceEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PresenceEntry, 0, len(p.state))
	for _, k := range sortedKeys(p.state) {
		e := p.state[k].clone()
		e.Key = k
		out = append(out, e)
	}
	return out
}

// Get returns the entry for key.
func (p *Presence) Get(key string) (PresenceEntry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.state[key]
	return e.clone(), ok
}
