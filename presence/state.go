package presence

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// dot names one operation of one replica: its counter value at that time.
// Every element carries the dot of the operation that added it.
type dot struct {
	r replica
	c uint64
}

// element is one tracked presence. It is immutable once created, so it can be
// read outside the tracker's lock (List, diffs, encoding).
type element struct {
	dot   dot
	topic string
	key   string
	owner string // ID of the tracking channel; local elements only
	ref   string
	at    int64 // creation time in µs; metas are listed oldest first
	// meta is the app's meta with phx_ref, for local elements only. A
	// remote element keeps only raw, decoded for List when asked: a node
	// holds every presence of the cluster, and a decoded map per remote
	// presence would double its size for what diffs and state pushes copy
	// from raw anyway.
	meta map[string]any
	raw  json.RawMessage // the meta as a JSON object, phx_ref included
}

type peerStatus uint8

const (
	statusUp peerStatus = iota
	statusDown
)

type peer struct {
	status   peerStatus
	lastSeen time.Time
}

// change is a presence that became visible (join) or stopped being visible
// (leave) on this node.
type change struct {
	e    *element
	join bool
}

// state is this node's replica of the presence set: an add-wins
// observed-remove set with dots, a causal context (ctx, contiguous counters)
// and clouds (observed dots above the contiguous range), as in
// Phoenix.Tracker.State. Only the replica that added an element ever removes
// it; other replicas learn the removal by observing its dot without its value.
//
// state is not safe for concurrent use and does no I/O and keeps no timers:
// time is passed in, and the changes visible to this node accumulate in
// changes until taken.
type state struct {
	self   replica
	ctx    map[replica]uint64
	clouds map[replica]map[uint64]struct{}
	values map[replica]map[uint64]*element
	topics map[string]map[dot]*element
	owners map[string][]*element // local elements by channel; a channel tracks few keys
	peers  map[replica]*peer
	nodes  map[string]replica // node name -> its current replica
	delta  localDelta

	changes []change
	// notify, if set, is told about peers going up, down and away, for logs.
	notify func(event string, r replica)
}

// localDelta is what this replica did since its last heartbeat: the range of
// its own counters (from, ctx[self]], the elements added in that range that
// are still present, and the older elements removed meanwhile.
type localDelta struct {
	from    uint64
	removed []uint64
	values  map[uint64]*element
}

func newState(self replica) *state {
	return &state{
		self:   self,
		ctx:    map[replica]uint64{self: 0},
		clouds: make(map[replica]map[uint64]struct{}),
		values: map[replica]map[uint64]*element{self: {}},
		topics: make(map[string]map[dot]*element),
		owners: make(map[string][]*element),
		peers:  make(map[replica]*peer),
		nodes:  make(map[string]replica),
		delta:  localDelta{values: make(map[uint64]*element)},
	}
}

func (s *state) visible(r replica) bool {
	if r == s.self {
		return true
	}
	p := s.peers[r]
	return p != nil && p.status == statusUp
}

func (s *state) observed(d dot) bool {
	if ctx, ok := s.ctx[d.r]; ok && d.c <= ctx {
		return true
	}
	_, ok := s.clouds[d.r][d.c]
	return ok
}

func (s *state) event(what string, r replica) {
	if s.notify != nil {
		s.notify(what, r)
	}
}

func (s *state) takeChanges() []change {
	c := s.changes
	s.changes = nil
	return c
}

// insert stores e and reports it if it is visible.
func (s *state) insert(e *element) {
	vs := s.values[e.dot.r]
	if vs == nil {
		vs = make(map[uint64]*element)
		s.values[e.dot.r] = vs
	}
	vs[e.dot.c] = e
	tm := s.topics[e.topic]
	if tm == nil {
		tm = make(map[dot]*element)
		s.topics[e.topic] = tm
	}
	tm[e.dot] = e
	if e.dot.r == s.self {
		s.owners[e.owner] = append(s.owners[e.owner], e)
	}
	if s.visible(e.dot.r) {
		s.changes = append(s.changes, change{e: e, join: true})
	}
}

// drop forgets e and reports it if it was visible.
func (s *state) drop(e *element) {
	delete(s.values[e.dot.r], e.dot.c)
	if tm := s.topics[e.topic]; tm != nil {
		delete(tm, e.dot)
		if len(tm) == 0 {
			delete(s.topics, e.topic)
		}
	}
	if e.dot.r == s.self {
		om := slices.DeleteFunc(s.owners[e.owner], func(o *element) bool { return o == e })
		if len(om) == 0 {
			delete(s.owners, e.owner)
		} else {
			s.owners[e.owner] = om
		}
	}
	if s.visible(e.dot.r) {
		s.changes = append(s.changes, change{e: e, join: false})
	}
}

// add records a local presence under a new dot.
func (s *state) add(owner, topic, key, ref string, at int64, meta map[string]any, raw json.RawMessage) *element {
	c := s.ctx[s.self] + 1
	s.ctx[s.self] = c
	e := &element{dot: dot{s.self, c}, topic: topic, key: key, owner: owner, ref: ref, at: at, meta: meta, raw: raw}
	s.insert(e)
	s.delta.values[c] = e
	return e
}

// remove deletes a local presence. The removal takes a dot of its own, with
// no value, so that the replica's counter moves and peers that compare
// clocks notice there is something to learn.
func (s *state) remove(e *element) {
	s.drop(e)
	if e.dot.c > s.delta.from {
		delete(s.delta.values, e.dot.c) // peers never saw it: the range says it is gone
	} else {
		s.delta.removed = append(s.delta.removed, e.dot.c)
	}
	s.ctx[s.self]++
}

func (s *state) lookup(owner, topic, key string) *element {
	for _, e := range s.owners[owner] {
		if e.topic == topic && e.key == key {
			return e
		}
	}
	return nil
}

// owned returns a copy of the elements tracked by owner, oldest first.
func (s *state) owned(owner string) []*element {
	es := slices.Clone(s.owners[owner])
	sortElements(es)
	return es
}

// list returns the visible elements of topic.
func (s *state) list(topic string) []*element {
	tm := s.topics[topic]
	es := make([]*element, 0, len(tm))
	for d, e := range tm {
		if s.visible(d.r) {
			es = append(es, e)
		}
	}
	return es
}

// takeDelta returns the local changes since the previous call, or nil if
// there are none.
func (s *state) takeDelta() *wireState {
	upto := s.ctx[s.self]
	if upto == s.delta.from && len(s.delta.removed) == 0 {
		return nil
	}
	ws := &wireState{
		Replicas: []replica{s.self},
		Causal:   []wireCausal{{I: 0, From: s.delta.from, Upto: upto, Dots: s.delta.removed}},
		Values:   make([]wireValue, 0, len(s.delta.values)),
	}
	for _, c := range slices.Sorted(maps.Keys(s.delta.values)) {
		ws.Values = append(ws.Values, wireValueOf(0, s.delta.values[c]))
	}
	s.delta = localDelta{from: upto, values: make(map[uint64]*element)}
	return ws
}

// clock is this replica's version vector as announced to peers; replicas
// considered down are left out, as Phoenix does, so that peers do not ask
// us for what we no longer vouch for.
func (s *state) clock() map[replica]uint64 {
	m := make(map[replica]uint64, len(s.ctx))
	for r, c := range s.ctx {
		if s.visible(r) {
			m[r] = c
		}
	}
	return m
}

// extract returns what requester needs to catch up, given its clock: the
// causal context and all elements of every replica both sides know, except
// the requester's own (it is their only authority). Elements the requester
// has already observed are sent as well, because "observed but not held"
// means "removed" to the receiver.
func (s *state) extract(requester replica, clock map[replica]uint64) *wireState {
	ws := &wireState{}
	rs := slices.SortedFunc(maps.Keys(clock), compareReplicas)
	for _, r := range rs {
		if r == requester {
			continue
		}
		ours, known := s.ctx[r]
		if !known {
			continue
		}
		i := len(ws.Replicas)
		ws.Replicas = append(ws.Replicas, r)
		var dots []uint64
		if cl := s.clouds[r]; len(cl) > 0 {
			dots = slices.Sorted(maps.Keys(cl))
		}
		ws.Causal = append(ws.Causal, wireCausal{I: i, Upto: ours, Dots: dots})
		for _, c := range slices.Sorted(maps.Keys(s.values[r])) {
			ws.Values = append(ws.Values, wireValueOf(i, s.values[r][c]))
		}
	}
	return ws
}

// merge applies a remote delta or state. Only replicas known here (heard
// from directly) are considered, and never this replica itself: this node is
// the only authority on its own elements.
//
//   - a remote element is added if its dot was not observed here;
//   - an element here is removed if the remote observed its dot but does not
//     hold it (add-wins: a remote that never saw an element cannot remove it);
//   - the observed dots are unioned and compacted.
//
// Merging is idempotent and commutative. It returns the number of elements
// whose meta could not be decoded (they are skipped).
func (s *state) merge(ws *wireState) int {
	known := make([]bool, len(ws.Replicas))
	for i, r := range ws.Replicas {
		if r != s.self {
			_, known[i] = s.ctx[r]
		}
	}
	ok := func(i int) bool { return i >= 0 && i < len(known) && known[i] }

	held := make(map[dot]struct{}, len(ws.Values))
	for _, v := range ws.Values {
		if ok(v.I) {
			held[dot{ws.Replicas[v.I], v.C}] = struct{}{}
		}
	}

	// Leaves: observed remotely, not held remotely.
	for ci := range ws.Causal {
		cz := &ws.Causal[ci]
		if !ok(cz.I) {
			continue
		}
		r := ws.Replicas[cz.I]
		vs := s.values[r]
		if len(vs) == 0 {
			continue
		}
		gone := func(c uint64) {
			if e := vs[c]; e != nil {
				if _, h := held[e.dot]; !h {
					s.drop(e)
				}
			}
		}
		span := uint64(0)
		if cz.Upto > cz.From {
			span = cz.Upto - cz.From
		}
		if span+uint64(len(cz.Dots)) < uint64(len(vs)) {
			for c := cz.From + 1; c <= cz.Upto; c++ {
				gone(c)
			}
			for _, c := range cz.Dots {
				gone(c)
			}
			continue
		}
		var dots map[uint64]struct{}
		if len(cz.Dots) > 0 {
			dots = make(map[uint64]struct{}, len(cz.Dots))
			for _, c := range cz.Dots {
				dots[c] = struct{}{}
			}
		}
		for _, c := range slices.Sorted(maps.Keys(vs)) {
			if cz.observed(c, dots) {
				gone(c)
			}
		}
	}

	// Joins: held remotely, never observed here.
	bad := 0
	var added []dot
	for _, v := range ws.Values {
		if !ok(v.I) {
			continue
		}
		d := dot{ws.Replicas[v.I], v.C}
		if s.observed(d) || s.values[d.r][d.c] != nil {
			continue
		}
		if !isObject(v.Meta) {
			bad++
			continue
		}
		s.insert(&element{dot: d, topic: v.Topic, key: v.Key, ref: v.Ref, at: v.At, raw: v.Meta})
		added = append(added, d)
	}

	// Causal context.
	touched := make(map[replica]struct{})
	for _, cz := range ws.Causal {
		if !ok(cz.I) {
			continue
		}
		r := ws.Replicas[cz.I]
		touched[r] = struct{}{}
		cur := s.ctx[r]
		if cz.From <= cur {
			if cz.Upto > cur {
				s.ctx[r] = cz.Upto
			}
		} else {
			for c := cz.From + 1; c <= cz.Upto; c++ {
				s.cloud(r, c)
			}
		}
		for _, c := range cz.Dots {
			s.cloud(r, c)
		}
	}
	for _, d := range added { // a well-formed remote covers its values; be safe anyway
		s.cloud(d.r, d.c)
		touched[d.r] = struct{}{}
	}
	for r := range touched {
		s.compact(r)
	}
	return bad
}

func (s *state) cloud(r replica, c uint64) {
	if c <= s.ctx[r] {
		return
	}
	cl := s.clouds[r]
	if cl == nil {
		cl = make(map[uint64]struct{})
		s.clouds[r] = cl
	}
	cl[c] = struct{}{}
}

// compact moves the dots of r's cloud that extend its contiguous range into
// the context.
func (s *state) compact(r replica) {
	cl := s.clouds[r]
	if len(cl) == 0 {
		delete(s.clouds, r)
		return
	}
	c := s.ctx[r]
	for {
		if _, ok := cl[c+1]; !ok {
			break
		}
		delete(cl, c+1)
		c++
	}
	s.ctx[r] = c
	for n := range cl {
		if n <= c {
			delete(cl, n)
		}
	}
	if len(cl) == 0 {
		delete(s.clouds, r)
	}
}

// seen records that r was heard from at now. It returns false for messages
// that must be ignored: our own, or from an older run of a node whose newer
// run is up. Another run of a known node makes the previous one permanently
// down at once.
func (s *state) seen(r replica, now time.Time) bool {
	if r.Node == s.self.Node {
		return false
	}
	if cur, ok := s.nodes[r.Node]; ok && cur != r {
		// An older run heard after a newer one is a straggler, unless the
		// newer one has gone quiet: a host clock stepping back must not
		// shut a restarted node out until the permdown period.
		if r.Vsn < cur.Vsn && s.peers[cur].status == statusUp {
			return false
		}
		s.permdown(cur)
	}
	p := s.peers[r]
	switch {
	case p == nil:
		p = &peer{status: statusUp}
		s.peers[r] = p
		s.nodes[r.Node] = r
		if _, ok := s.ctx[r]; !ok {
			s.ctx[r] = 0
		}
		s.event("replica up", r)
	case p.status == statusDown:
		p.status = statusUp
		s.event("replica up", r)
		for _, c := range slices.Sorted(maps.Keys(s.values[r])) {
			s.changes = append(s.changes, change{e: s.values[r][c], join: true})
		}
	}
	if now.After(p.lastSeen) {
		p.lastSeen = now
	}
	return true
}

// down hides r's elements (reporting them as leaves) but keeps them, so that
// they come back without a transfer if r does.
func (s *state) down(r replica) {
	p := s.peers[r]
	if p == nil || p.status == statusDown {
		return
	}
	p.status = statusDown
	s.event("replica down", r)
	for _, c := range slices.Sorted(maps.Keys(s.values[r])) {
		s.changes = append(s.changes, change{e: s.values[r][c], join: false})
	}
}

// permdown forgets r and everything observed of it.
func (s *state) permdown(r replica) {
	if _, ok := s.peers[r]; !ok {
		return
	}
	s.down(r)
	s.event("replica permanently down", r)
	for _, e := range s.values[r] {
		s.drop(e) // r is down: no further report
	}
	delete(s.values, r)
	delete(s.ctx, r)
	delete(s.clouds, r)
	delete(s.peers, r)
	if s.nodes[r.Node] == r {
		delete(s.nodes, r.Node)
	}
}

// detectDowns marks down the replicas silent for longer than downAfter and
// forgets those silent for longer than permdownAfter.
func (s *state) detectDowns(now time.Time, downAfter, permdownAfter time.Duration) {
	for _, r := range slices.SortedFunc(maps.Keys(s.peers), compareReplicas) {
		age := now.Sub(s.peers[r].lastSeen)
		switch {
		case age > permdownAfter:
			s.permdown(r)
		case age > downAfter:
			s.down(r)
		}
	}
}

// excuse forgives every peer d of silence (capped at now): this node was
// not listening for that long.
func (s *state) excuse(d time.Duration, now time.Time) {
	for _, p := range s.peers {
		if p.lastSeen = p.lastSeen.Add(d); p.lastSeen.After(now) {
			p.lastSeen = now
		}
	}
}

// transfersNeeded picks the peers to ask for a transfer, from their latest
// announced clocks: those that have observed more of some replica we know and
// consider up than we have, leaving out a peer whose clock is dominated by
// another candidate's (asking the better-informed one is enough).
func (s *state) transfersNeeded(clocks map[replica]map[replica]uint64) []replica {
	var cands []replica
	for p, clk := range clocks {
		if !s.visible(p) || p == s.self {
			continue
		}
		for r, c := range clk {
			if r == s.self || !s.visible(r) {
				continue
			}
			if c > s.ctx[r] {
				cands = append(cands, p)
				break
			}
		}
	}
	slices.SortFunc(cands, compareReplicas)
	var out []replica
	for i, a := range cands {
		dominated := false
		for j, b := range cands {
			if i == j {
				continue
			}
			if dominates(clocks[b], clocks[a]) && (!dominates(clocks[a], clocks[b]) || j < i) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, a)
		}
	}
	return out
}

// dominates reports whether a >= b for every replica in b.
func dominates(a, b map[replica]uint64) bool {
	for r, c := range b {
		if a[r] < c {
			return false
		}
	}
	return true
}

// isObject reports whether raw is one valid JSON object, the only kind of
// meta phoenix.js can read.
func isObject(raw json.RawMessage) bool {
	b := bytes.TrimLeft(raw, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(raw)
}

func decodeMeta(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep large integers exact when re-encoded
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func sortElements(es []*element) {
	slices.SortFunc(es, func(a, b *element) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		if a.ref < b.ref {
			return -1
		} else if a.ref > b.ref {
			return 1
		}
		return 0
	})
}
