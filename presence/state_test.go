package presence

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func rep(node string) replica { return replica{Node: node, Vsn: "0000000000000001" + "00000000"} }

// stateFor returns a state for node that has heard from the given peers.
func stateFor(node string, peers ...string) *state {
	s := newState(rep(node))
	for _, p := range peers {
		s.seen(rep(p), t0)
	}
	s.takeChanges()
	return s
}

var refN int

func addLocal(s *state, topic, key string) *element {
	refN++
	ref := fmt.Sprintf("ref%06d", refN)
	meta := map[string]any{"phx_ref": ref}
	return s.add("ch-"+ref, topic, key, ref, int64(refN), meta, rawMeta(ref, "", []byte("{}")))
}

// refs lists the visible phx_refs of topic, sorted.
func refs(s *state, topic string) []string {
	var out []string
	for _, e := range s.list(topic) {
		out = append(out, e.key+"="+e.ref)
	}
	slices.Sort(out)
	return out
}

// changeRefs renders taken changes as "+key=ref" / "-key=ref".
func changeRefs(cs []change) []string {
	var out []string
	for _, c := range cs {
		sign := "-"
		if c.join {
			sign = "+"
		}
		out = append(out, sign+c.e.key+"="+c.e.ref)
	}
	slices.Sort(out)
	return out
}

// transfer is a full catch-up of dst from src, as transfer_req/transfer_ack do.
func transfer(dst, src *state) { dst.merge(src.extract(dst.self, dst.clock())) }

func TestStateLocalDelta(t *testing.T) {
	a := stateFor("a")
	x := addLocal(a, "room", "x")
	d := a.takeDelta()
	require.NotNil(t, d)
	assert.Equal(t, wireCausal{I: 0, From: 0, Upto: 1}, d.Causal[0])
	require.Len(t, d.Values, 1)
	assert.Nil(t, a.takeDelta(), "no change, no delta")

	a.remove(x)
	d = a.takeDelta()
	assert.Equal(t, wireCausal{I: 0, From: 1, Upto: 2, Dots: []uint64{1}}, d.Causal[0], "removal of an announced element is explicit")
	assert.Empty(t, d.Values)

	y := addLocal(a, "room", "y")
	a.remove(y)
	d = a.takeDelta()
	assert.Equal(t, wireCausal{I: 0, From: 2, Upto: 4}, d.Causal[0], "an element added and removed within one delta is only a range")
	assert.Empty(t, d.Values)
	assert.Equal(t, []string{"+x=" + x.ref, "+y=" + y.ref, "-x=" + x.ref, "-y=" + y.ref}, changeRefs(a.takeChanges()))
}

func TestStateMergeJoinsAndObservedRemoves(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	x := addLocal(a, "room", "x")
	y := addLocal(a, "room", "y")
	b.merge(a.takeDelta())
	assert.Equal(t, []string{"+x=" + x.ref, "+y=" + y.ref}, changeRefs(b.takeChanges()))
	assert.Equal(t, refs(a, "room"), refs(b, "room"))

	a.remove(x)
	b.merge(a.takeDelta())
	assert.Equal(t, []string{"-x=" + x.ref}, changeRefs(b.takeChanges()))
	assert.Equal(t, []string{"y=" + y.ref}, refs(b, "room"))
	assert.Equal(t, a.ctx[a.self], b.ctx[a.self])
}

func TestStateMergeIsIdempotent(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	addLocal(a, "room", "x")
	d := a.takeDelta()
	b.merge(d)
	b.takeChanges()
	before := refs(b, "room")
	b.merge(d)
	transfer(b, a)
	transfer(b, a)
	assert.Empty(t, b.takeChanges())
	assert.Equal(t, before, refs(b, "room"))
	assert.Equal(t, map[replica]uint64{a.self: 1, b.self: 0}, b.ctx)
	assert.Empty(t, b.clouds)
}

func TestStateMergeIsCommutative(t *testing.T) {
	a := stateFor("a", "b", "c")
	x := addLocal(a, "room", "x")
	addLocal(a, "room", "y")
	d1 := a.takeDelta()
	a.remove(x)
	addLocal(a, "room", "z")
	d2 := a.takeDelta()
	addLocal(a, "lobby", "w")
	d3 := a.takeDelta()

	b, c := stateFor("b", "a"), stateFor("c", "a")
	for _, d := range []*wireState{d1, d2, d3} {
		b.merge(d)
	}
	for _, d := range []*wireState{d3, d2, d1} {
		c.merge(d)
	}
	for _, topic := range []string{"room", "lobby"} {
		assert.Equal(t, refs(a, topic), refs(b, topic), topic)
		assert.Equal(t, refs(a, topic), refs(c, topic), topic)
	}
	assert.Equal(t, b.ctx[a.self], c.ctx[a.self])
	assert.Empty(t, b.clouds)
	assert.Empty(t, c.clouds, "out-of-order deltas compact once the gaps are filled")
}

func TestStateDeltasAndFullStateAgree(t *testing.T) {
	a := stateFor("a", "b", "c")
	b, c := stateFor("b", "a"), stateFor("c", "a")
	var live []*element
	for i := range 20 {
		live = append(live, addLocal(a, "room", fmt.Sprint("k", i%5)))
		if i%3 == 2 {
			a.remove(live[0])
			live = live[1:]
		}
		b.merge(a.takeDelta())
	}
	transfer(c, a)
	assert.Equal(t, refs(a, "room"), refs(b, "room"))
	assert.Equal(t, refs(a, "room"), refs(c, "room"))
	assert.Equal(t, b.ctx[a.self], c.ctx[a.self])
}

func TestStateAddWins(t *testing.T) {
	a := stateFor("a", "b", "c")
	b := stateFor("b", "a", "c") // knows a but has observed nothing of it
	c := stateFor("c", "a", "b")
	x := addLocal(a, "room", "x")
	c.merge(a.takeDelta())
	c.takeChanges()

	// b never observed x, so its state cannot remove it.
	transfer(c, b)
	assert.Equal(t, []string{"x=" + x.ref}, refs(c, "room"))
	assert.Empty(t, c.takeChanges())

	// Once b has observed x's removal, its state removes x from c.
	a.remove(x)
	transfer(b, a)
	transfer(c, b)
	assert.Empty(t, refs(c, "room"))
	assert.Equal(t, []string{"-x=" + x.ref}, changeRefs(c.takeChanges()))
}

func TestStateIgnoresClaimsOnOwnAndUnknownReplicas(t *testing.T) {
	a := stateFor("a", "b")
	x := addLocal(a, "room", "x")
	a.takeChanges()
	stranger := rep("z")
	forged := &wireState{
		Replicas: []replica{a.self, stranger},
		Causal:   []wireCausal{{I: 0, Upto: 100}, {I: 1, Upto: 1}},
		Values:   []wireValue{{I: 1, C: 1, Topic: "room", Key: "z", Ref: "zz", Meta: json.RawMessage(`{"phx_ref":"zz"}`)}},
	}
	a.merge(forged)
	assert.Equal(t, []string{"x=" + x.ref}, refs(a, "room"), "only a removes its own elements; unknown replicas are ignored")
	assert.Equal(t, uint64(1), a.ctx[a.self])
	_, known := a.ctx[stranger]
	assert.False(t, known)
}

func TestStateGapIsFilledByTransfer(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	x := addLocal(a, "room", "x")
	y := addLocal(a, "room", "y")
	a.takeDelta() // lost
	a.remove(x)
	z := addLocal(a, "room", "z")
	b.merge(a.takeDelta())
	assert.Equal(t, []string{"z=" + z.ref}, refs(b, "room"))
	assert.Equal(t, uint64(1), b.ctx[a.self], "x's removal was observed, y's dot was not")
	assert.Len(t, b.clouds[a.self], 2)

	clocks := map[replica]map[replica]uint64{a.self: a.clock()}
	assert.Equal(t, []replica{a.self}, b.transfersNeeded(clocks))
	transfer(b, a)
	assert.Equal(t, []string{"y=" + y.ref, "z=" + z.ref}, refs(b, "room"))
	assert.Equal(t, uint64(4), b.ctx[a.self])
	assert.Empty(t, b.clouds)
	assert.Empty(t, b.transfersNeeded(clocks))
}

func TestStateTransfersAskTheBestInformedPeer(t *testing.T) {
	a := stateFor("a", "b", "c")
	for range 3 {
		addLocal(a, "room", "x")
	}
	c := stateFor("c", "a", "b")
	bRep := rep("b")
	clocks := map[replica]map[replica]uint64{
		a.self: a.clock(),
		bRep:   {a.self: 1, bRep: 0},
	}
	assert.Equal(t, []replica{a.self}, c.transfersNeeded(clocks), "b's clock is dominated by a's")
}

func TestStateDownUpPermdown(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	x := addLocal(a, "room", "x")
	b.merge(a.takeDelta())
	b.takeChanges()

	b.detectDowns(t0.Add(4*time.Second), 5*time.Second, time.Minute)
	assert.Empty(t, b.takeChanges())

	b.detectDowns(t0.Add(6*time.Second), 5*time.Second, time.Minute)
	assert.Equal(t, []string{"-x=" + x.ref}, changeRefs(b.takeChanges()))
	assert.Empty(t, refs(b, "room"), "down replicas are hidden")
	assert.NotContains(t, b.clock(), a.self)

	// Changes merged while down are applied silently.
	y := addLocal(a, "room", "y")
	b.merge(a.takeDelta())
	assert.Empty(t, b.takeChanges())

	require.True(t, b.seen(a.self, t0.Add(7*time.Second)))
	assert.Equal(t, []string{"+x=" + x.ref, "+y=" + y.ref}, changeRefs(b.takeChanges()))
	assert.Equal(t, refs(a, "room"), refs(b, "room"))

	b.detectDowns(t0.Add(7*time.Second+2*time.Minute), 5*time.Second, time.Minute)
	assert.Equal(t, []string{"-x=" + x.ref, "-y=" + y.ref}, changeRefs(b.takeChanges()))
	_, known := b.ctx[a.self]
	assert.False(t, known, "permdown forgets the replica")
	assert.Empty(t, b.values[a.self])

	// Others' copies of a's elements are ignored until a is heard from again.
	c := stateFor("c", "a")
	transfer(c, a)
	b.merge(c.extract(b.self, map[replica]uint64{a.self: 0, b.self: 0}))
	assert.Empty(t, refs(b, "room"))
	b.seen(a.self, t0.Add(3*time.Minute))
	transfer(b, a)
	assert.Equal(t, refs(a, "room"), refs(b, "room"))
}

func TestStateRestartWithNewVsn(t *testing.T) {
	a1 := newState(replica{Node: "a", Vsn: "1"})
	b := newState(rep("b"))
	b.seen(a1.self, t0)
	x := addLocal(a1, "room", "x")
	b.merge(a1.takeDelta())
	b.takeChanges()

	a2 := newState(replica{Node: "a", Vsn: "2"})
	y := addLocal(a2, "room", "y")
	require.True(t, b.seen(a2.self, t0.Add(time.Second)))
	assert.Equal(t, []string{"-x=" + x.ref}, changeRefs(b.takeChanges()), "the old run is gone at once")
	_, known := b.ctx[a1.self]
	assert.False(t, known)
	b.merge(a2.takeDelta())
	assert.Equal(t, []string{"y=" + y.ref}, refs(b, "room"))

	assert.False(t, b.seen(a1.self, t0.Add(2*time.Second)), "late messages of the old run are ignored")
	b.merge(&wireState{Replicas: []replica{a1.self}, Causal: []wireCausal{{Upto: 5}},
		Values: []wireValue{{C: 5, Topic: "room", Key: "x", Ref: "old", Meta: json.RawMessage(`{}`)}}})
	assert.Equal(t, []string{"y=" + y.ref}, refs(b, "room"))
}

func TestWireStateRoundTrip(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	e := a.add("ch", "room", "x", "r1", 1, map[string]any{"phx_ref": "r1", "n": 12345678901234567},
		rawMeta("r1", "", []byte(`{"n":12345678901234567}`)))
	raw, err := json.Marshal(wireMsg{From: a.self, Clock: clockList(a.clock()), State: a.extract(b.self, b.clock())})
	require.NoError(t, err)
	var w wireMsg
	require.NoError(t, json.Unmarshal(raw, &w))
	b.merge(w.State)
	got := b.list("room")
	require.Len(t, got, 1)
	assert.Equal(t, e.ref, got[0].ref)
	assert.Nil(t, got[0].meta, "a remote element keeps only its encoded meta")
	assert.Equal(t, json.Number("12345678901234567"), got[0].metaCopy()["n"], "large integers survive replication")
	assert.Equal(t, a.clock(), clockMap(w.Clock))
}

func TestMergeSkipsNonObjectMetas(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	assert.Equal(t, 3, b.merge(&wireState{Replicas: []replica{a.self}, Causal: []wireCausal{{Upto: 4}},
		Values: []wireValue{
			{C: 1, Topic: "room", Key: "w", Ref: "r1", Meta: json.RawMessage(`[1]`)},
			{C: 2, Topic: "room", Key: "x", Ref: "r2", Meta: json.RawMessage(`{"a":`)},
			{C: 3, Topic: "room", Key: "y", Ref: "r3", Meta: json.RawMessage(` "s"`)},
			{C: 4, Topic: "room", Key: "z", Ref: "r4", Meta: json.RawMessage(` {"phx_ref":"r4"}`)},
		}}))
	assert.Equal(t, []string{"z=r4"}, refs(b, "room"))
}
