package presence

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fast are options for multi-node tests: quick heartbeats and downs.
func fast(extra ...Option) []Option {
	return append([]Option{
		WithBroadcastPeriod(20 * time.Millisecond),
		WithDownPeriod(200 * time.Millisecond),
		WithPermdownPeriod(10 * time.Second),
		WithLogger(quiet),
	}, extra...)
}

func newTracker(t *testing.T, ps pubsub.PubSub, opts ...Option) *Tracker {
	t.Helper()
	tr := New(ps, append([]Option{WithLogger(quiet)}, opts...)...)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

const wait, poll = 5 * time.Second, 5 * time.Millisecond

func TestTrackListAndPushState(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	tr := newTracker(t, ps, WithCoalesce(0))
	rec := record(t, ps, "room:1")

	tab1, tab2, bob := newChan("room:1"), newChan("room:1"), newChan("room:1")
	r1, err := tr.Track(tab1, "alice", map[string]any{"device": "tab1"})
	require.NoError(t, err)
	r2, err := tr.Track(tab2, "alice", map[string]any{"device": "tab2"})
	require.NoError(t, err)
	r3, err := tr.Track(bob, "bob", nil)
	require.NoError(t, err)
	assert.Len(t, r1, 16)
	assert.NotEqual(t, r1, r2)

	_, err = tr.Track(tab1, "alice", nil)
	require.ErrorIs(t, err, ErrAlreadyTracked)
	_, err = tr.Track(tab1, "alice2", nil)
	require.NoError(t, err, "one channel may track several keys")
	tr.Untrack(tab1, "alice2")

	l := tr.List("room:1")
	assert.Equal(t, map[string][]string{"alice": {r1, r2}, "bob": {r3}}, listRefs(l), "metas oldest first")
	assert.Equal(t, "tab1", l["alice"].Metas[0]["device"])
	assert.Empty(t, tr.List("room:2"))

	require.NoError(t, tr.PushState(bob))
	p := bob.lastPush()
	assert.Equal(t, EventState, p.event)
	var state map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	require.NoError(t, p.payload.Decode(&state))
	assert.Equal(t, "tab2", state["alice"].Metas[1]["device"])
	assert.Equal(t, r3, state["bob"].Metas[0]["phx_ref"])
	assert.JSONEq(t, fmt.Sprintf(`{"metas":[{"phx_ref":%q}]}`, r3), string(mustJSON(t, state["bob"])))

	diffs := rec.all()
	require.Len(t, diffs, 5, "one diff per change without coalescing")
	assert.Equal(t, listRefs(l), replay(diffs).refs())
	raw := mustJSON(t, diffs[0])
	assert.Contains(t, string(raw), `"leaves":{}`, "both keys are always present")

	// An empty topic still pushes an object.
	empty := newChan("room:empty")
	require.NoError(t, tr.PushState(empty))
	assert.Equal(t, "{}", empty.lastPush().payload.String())
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestUpdateSendsJoinAndLeaveInOneDiff(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	tr := newTracker(t, ps, WithCoalesce(0))
	rec := record(t, ps, "room:1")
	ch := newChan("room:1")
	old, err := tr.Track(ch, "alice", map[string]any{"status": "online"})
	require.NoError(t, err)
	cur, err := tr.Update(ch, "alice", map[string]any{"status": "away"})
	require.NoError(t, err)

	diffs := rec.all()
	require.Len(t, diffs, 2)
	up := diffs[1]
	require.Len(t, up.Joins["alice"].Metas, 1)
	require.Len(t, up.Leaves["alice"].Metas, 1)
	assert.Equal(t, map[string]any{"status": "away", "phx_ref": cur, "phx_ref_prev": old}, up.Joins["alice"].Metas[0])
	assert.Equal(t, map[string]any{"status": "online", "phx_ref": old}, up.Leaves["alice"].Metas[0])
	assert.Equal(t, map[string][]string{"alice": {cur}}, replay(diffs).refs())

	_, err = tr.Update(newChan("room:1"), "alice", nil)
	require.ErrorIs(t, err, ErrNotTracked)
}

func TestChannelExitUntracks(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	tr := newTracker(t, ps, WithCoalesce(0))
	rec := record(t, ps, "room:1")
	ch, other := newChan("room:1"), newChan("room:1")
	_, err := tr.Track(ch, "alice", nil)
	require.NoError(t, err)
	_, err = tr.Track(ch, "alice-phone", nil)
	require.NoError(t, err)
	keep, err := tr.Track(other, "bob", nil)
	require.NoError(t, err)
	assert.Equal(t, 1, ch.hooks, "OnExit is registered once per channel")

	ch.exit()
	assert.Equal(t, map[string][]string{"bob": {keep}}, listRefs(tr.List("room:1")))
	assert.Equal(t, listRefs(tr.List("room:1")), replay(rec.all()).refs())

	// A channel that has already ended untracks at once.
	_, err = tr.Track(ch, "late", nil)
	require.NoError(t, err)
	assert.NotContains(t, tr.List("room:1"), "late")
}

func TestFetchEnrichesStateAndDiffs(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	var calls int
	fetch := func(topic string, es map[string]Entry) map[string]Entry {
		calls++
		for k, e := range es {
			e.Extra = map[string]any{"user": map[string]any{"name": "<" + k + ">"}}
			es[k] = e
		}
		return es
	}
	tr := newTracker(t, ps, WithCoalesce(0), WithFetch(fetch))
	rec := record(t, ps, "room:1")
	ch := newChan("room:1")
	ref, err := tr.Track(ch, "alice", nil)
	require.NoError(t, err)
	require.NoError(t, tr.PushState(ch))
	assert.JSONEq(t, fmt.Sprintf(`{"alice":{"metas":[{"phx_ref":%q}],"user":{"name":"<alice>"}}}`, ref),
		ch.lastPush().payload.String())
	assert.Contains(t, ch.lastPush().payload.String(), `"<alice>"`, "no HTML escaping")
	d := rec.all()[0]
	assert.Equal(t, map[string]any{"name": "<alice>"}, d.Joins["alice"].Extra["user"])
	assert.Equal(t, 2, calls, "one call for the diff's joins, one for the state")
}

func TestClosedTracker(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	tr := New(ps, WithLogger(quiet))
	require.NoError(t, tr.Close())
	require.NoError(t, tr.Close())
	_, err := tr.Track(newChan("room:1"), "alice", nil)
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, tr.Shutdown(context.Background()))
}

func TestCoalescingBurst(t *testing.T) {
	ps := pubsub.NewLocal("n1")
	tr := newTracker(t, ps, WithCoalesce(20*time.Millisecond))
	rec := record(t, ps, "room:1")
	const n = 10_000
	chans := make([]*fakeChan, n)
	for i := range chans {
		chans[i] = newChan("room:1")
		_, err := tr.Track(chans[i], fmt.Sprint("user", i%2500), map[string]any{"i": i})
		require.NoError(t, err)
		// Churn within the burst: leaves, updates and exits of metas that
		// may not have been broadcast yet.
		switch {
		case i%7 == 3:
			tr.Untrack(chans[i], fmt.Sprint("user", i%2500))
		case i%11 == 5:
			_, err := tr.Update(chans[i], fmt.Sprint("user", i%2500), map[string]any{"i": -i})
			require.NoError(t, err)
		case i%13 == 0 && i > 0:
			chans[i-1].exit()
		}
	}
	want := listRefs(tr.List("room:1"))
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(sortedRefs(want), sortedRefs(replay(rec.all()).refs()))
	}, wait, poll)
	time.Sleep(50 * time.Millisecond)
	diffs := rec.n.Load()
	t.Logf("%d changes -> %d presence_diff broadcasts", n, diffs)
	assert.Less(t, diffs, int64(n/10))
	assert.Equal(t, sortedRefs(want), sortedRefs(replay(rec.all()).refs()))
}

// startNodes starts one tracker per node name on cluster c.
func startNodes(t *testing.T, c *cluster, names ...string) []*Tracker {
	var ts []*Tracker
	for _, n := range names {
		ts = append(ts, newTracker(t, c.node(n), fast()...))
	}
	return ts
}

// converged waits until every tracker lists the same presences of topic,
// and returns them.
func converged(t *testing.T, topic string, ts ...*Tracker) map[string][]string {
	t.Helper()
	var last []map[string][]string
	ok := assert.Eventually(t, func() bool {
		last = last[:0]
		for _, tr := range ts {
			last = append(last, sortedRefs(listRefs(tr.List(topic))))
		}
		for _, l := range last[1:] {
			if !maps.EqualFunc(l, last[0], slices.Equal) {
				return false
			}
		}
		return true
	}, wait, poll)
	if !ok {
		for i, l := range last {
			t.Logf("node %d: %v", i, l)
		}
		t.FailNow()
	}
	return last[0]
}

func countMetas(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func TestClusterConverges(t *testing.T) {
	c := newCluster()
	ts := startNodes(t, c, "a", "b", "c")
	recs := make([]*recorder, len(ts))
	for i, n := range []string{"a", "b", "c"} {
		recs[i] = record(t, c.node(n), "room:1")
	}
	var chans []*fakeChan
	for i := range 30 {
		ch := newChan("room:1")
		chans = append(chans, ch)
		_, err := ts[i%3].Track(ch, fmt.Sprint("user", i%10), map[string]any{"node": i % 3})
		require.NoError(t, err)
	}
	got := converged(t, "room:1", ts...)
	assert.Equal(t, 30, countMetas(got))

	for i, ch := range chans {
		switch i % 3 {
		case 0:
			ch.exit()
		case 1:
			_, err := ts[i%3].Update(ch, fmt.Sprint("user", i%10), map[string]any{"updated": true})
			require.NoError(t, err)
		}
	}
	got = converged(t, "room:1", ts...)
	assert.Equal(t, 20, countMetas(got))
	for i, rec := range recs {
		assert.Eventually(t, func() bool {
			return maps.EqualFunc(got, sortedRefs(replay(rec.all()).refs()), slices.Equal)
		}, wait, poll, "node %d's clients end with its list", i)
	}
}

func TestPartitionedNodeGoesDownAndHeals(t *testing.T) {
	c := newCluster()
	ts := startNodes(t, c, "a", "b", "c")
	recA := record(t, c.node("a"), "room:1")
	cChans := []*fakeChan{newChan("room:1"), newChan("room:1")}
	for i, tr := range ts {
		_, err := tr.Track(newChan("room:1"), fmt.Sprint("user", i), nil)
		require.NoError(t, err)
	}
	for _, ch := range cChans {
		_, err := ts[2].Track(ch, "carol", nil)
		require.NoError(t, err)
	}
	require.Equal(t, 5, countMetas(converged(t, "room:1", ts...)))

	c.partition("c", true)
	require.Eventually(t, func() bool {
		_, a := ts[0].List("room:1")["carol"]
		_, b := ts[1].List("room:1")["carol"]
		return !a && !b
	}, wait, poll, "c's presences leave after the down period")
	assert.Equal(t, 2, countMetas(listRefs(ts[0].List("room:1"))))
	assert.Eventually(t, func() bool { return countMetas(listRefs(ts[2].List("room:1"))) == 3 }, wait, poll,
		"on c, a and b are down")

	// Changes on both sides during the partition.
	cChans[0].exit()
	_, err := ts[2].Track(newChan("room:1"), "dave", nil)
	require.NoError(t, err)
	_, err = ts[0].Track(newChan("room:1"), "erin", nil)
	require.NoError(t, err)

	c.partition("c", false)
	got := converged(t, "room:1", ts...)
	assert.Equal(t, 6, countMetas(got))
	for k, refs := range got {
		assert.Len(t, slices.Compact(slices.Clone(refs)), len(refs), "no duplicate metas for %s", k)
	}
	assert.Eventually(t, func() bool {
		return maps.EqualFunc(got, sortedRefs(replay(recA.all()).refs()), slices.Equal)
	}, wait, poll, "a's clients saw c leave and come back")
}

func TestRestartWithNewVsnReplacesOldPresences(t *testing.T) {
	c := newCluster()
	slow := []Option{WithBroadcastPeriod(20 * time.Millisecond), WithDownPeriod(5 * time.Second)}
	a := newTracker(t, c.node("a"), slow...)
	b := newTracker(t, c.node("b"), slow...)
	_, err := b.Track(newChan("room:1"), "bob", nil)
	require.NoError(t, err)
	converged(t, "room:1", a, b)
	require.NoError(t, b.Close()) // crash-like: peers are not told

	time.Sleep(100 * time.Millisecond)
	assert.Contains(t, a.List("room:1"), "bob", "a stopped node stays visible for the down period")

	start := time.Now()
	b2 := newTracker(t, c.node("b"), slow...)
	ref, err := b2.Track(newChan("room:1"), "bob2", nil)
	require.NoError(t, err)
	got := converged(t, "room:1", a, b2)
	assert.Equal(t, map[string][]string{"bob2": {ref}}, got)
	assert.Less(t, time.Since(start), 2*time.Second, "the old run is dropped as soon as the new one is heard, not after the down period")
}

func TestGracefulShutdownTellsPeers(t *testing.T) {
	c := newCluster()
	slow := []Option{WithBroadcastPeriod(20 * time.Millisecond), WithDownPeriod(5 * time.Second)}
	a := newTracker(t, c.node("a"), slow...)
	b := newTracker(t, c.node("b"), slow...)
	recB := record(t, c.node("b"), "room:1")
	_, err := b.Track(newChan("room:1"), "bob", nil)
	require.NoError(t, err)
	_, err = a.Track(newChan("room:1"), "alice", nil)
	require.NoError(t, err)
	converged(t, "room:1", a, b)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.NoError(t, b.Shutdown(ctx))
	assert.Eventually(t, func() bool {
		_, ok := a.List("room:1")["bob"]
		return !ok
	}, time.Second, poll)
	assert.NotContains(t, replay(recB.all()).refs(), "bob", "local subscribers saw the leave")
	_, err = b.Track(newChan("room:1"), "x", nil)
	require.ErrorIs(t, err, ErrClosed)
}

func TestTrackersShareOneLocalWithNodeNames(t *testing.T) {
	ps := pubsub.NewLocal("shared")
	a := newTracker(t, ps, fast(WithNode("a"))...)
	b := newTracker(t, ps, fast(WithNode("b"))...)
	for i, tr := range []*Tracker{a, b} {
		_, err := tr.Track(newChan("room:1"), fmt.Sprint("u", i), nil)
		require.NoError(t, err)
	}
	assert.Equal(t, 2, countMetas(converged(t, "room:1", a, b)))
}

func TestLateNodeGetsFullStateByTransfer(t *testing.T) {
	c := newCluster()
	ts := startNodes(t, c, "a", "b")
	for i := range 50 {
		_, err := ts[i%2].Track(newChan("room:1"), fmt.Sprint("user", i), map[string]any{"i": i})
		require.NoError(t, err)
	}
	converged(t, "room:1", ts...)
	time.Sleep(100 * time.Millisecond) // the deltas are long gone
	late := newTracker(t, c.node("c"), fast()...)
	recC := record(t, c.node("c"), "room:1")
	got := converged(t, "room:1", append(ts, late)...)
	assert.Equal(t, 50, countMetas(got))
	assert.Eventually(t, func() bool {
		return maps.EqualFunc(got, sortedRefs(replay(recC.all()).refs()), slices.Equal)
	}, wait, poll)
	assert.Equal(t, json.Number("7"), late.List("room:1")["user7"].Metas[0]["i"])
}

func TestEntryJSON(t *testing.T) {
	e := Entry{
		Metas: []map[string]any{{"phx_ref": "r1", "html": "<b>"}},
		Extra: map[string]any{"user": "bob", "metas": "ignored"},
	}
	p, err := protocol.Marshal(e)
	require.NoError(t, err)
	b := p.JSON()
	assert.Equal(t, `{"metas":[{"html":"<b>","phx_ref":"r1"}],"user":"bob"}`, string(compact(t, b)), "no HTML escaping")
	var back Entry
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, []string{"r1"}, back.Refs())
	assert.Equal(t, map[string]any{"user": "bob"}, back.Extra)
	assert.Equal(t, `{"metas":[]}`, string(compact(t, mustJSON(t, Entry{}))))
}

func compact(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, b))
	return buf.Bytes()
}

// A silent peer is noticed within the down-check period of its down
// period, not at the next heartbeat tick (which here is seconds away).
func TestSilentPeerNoticedBetweenHeartbeats(t *testing.T) {
	c := newCluster()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	opts := []Option{WithBroadcastPeriod(8 * time.Second), WithDownPeriod(20 * time.Second), WithCoalesce(0)}
	a := newTracker(t, c.node("a"), append(opts, WithClock(clock), WithNode("a"))...)
	b := newTracker(t, c.node("b"), append(opts, WithNode("b"))...)
	_, err := b.Track(newChan("room:1"), "bob", nil)
	require.NoError(t, err)
	// First heartbeats come within a quarter period.
	require.Eventually(t, func() bool { _, ok := a.List("room:1")["bob"]; return ok }, 5*time.Second, poll)

	c.partition("b", true)
	mu.Lock()
	now = now.Add(21 * time.Second)
	mu.Unlock()
	start := time.Now()
	require.Eventually(t, func() bool { _, ok := a.List("room:1")["bob"]; return !ok }, 5*time.Second, poll)
	// The down check runs every second at this down period; a's next
	// heartbeat tick is at least 6 s away.
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
}

// A heartbeat that arrived in time counts even if the tracker handles it
// late: a tracker busy with a large merge must not mark a live peer down
// (and flap its presences out and back in) because its own queue was long.
func TestQueuedHeartbeatKeepsPeerUp(t *testing.T) {
	c := newCluster()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	at := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := []Option{WithBroadcastPeriod(8 * time.Second), WithDownPeriod(20 * time.Second), WithCoalesce(time.Millisecond)}
	a := newTracker(t, c.node("a"), append(opts, WithClock(clock), WithNode("a"))...)
	b := newTracker(t, c.node("b"), append(opts, WithNode("b"))...)
	_, err := b.Track(newChan("room:1"), "bob", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := a.List("room:1")["bob"]; return ok }, 5*time.Second, poll)

	// Keep a's goroutine busy: it blocks in a flush of its own change.
	a.flushMu.Lock()
	_, err = a.Track(newChan("room:2"), "alice", nil)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the 1 ms coalesce timer fires
	at(19 * time.Second)
	b.tick(false) // b's heartbeat arrives 19 s after the last, in time
	at(11 * time.Second)
	// 30 s after the previous heartbeat but 11 s after the queued one.
	a.detectDowns()
	_, ok := a.List("room:1")["bob"]
	a.flushMu.Unlock()
	assert.True(t, ok, "bob's node heartbeat in time; it only waited in a's queue")
}

// A tracker that got no CPU for longer than the down period (a starved
// box) does not hold its peers' silence meanwhile against them: their
// heartbeats may be unread in a socket. Silence while the tracker runs
// on time still marks a peer down.
func TestStalledTrackerExcusesSilence(t *testing.T) {
	c := newCluster()
	var mu sync.Mutex
	now, mono := time.Now(), time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	real := func() time.Time { mu.Lock(); defer mu.Unlock(); return mono }
	opts := []Option{WithBroadcastPeriod(8 * time.Second), WithDownPeriod(20 * time.Second), WithCoalesce(0)}
	a := newTracker(t, c.node("a"), append(opts, WithClock(clock), withMono(real), WithNode("a"))...)
	b := newTracker(t, c.node("b"), append(opts, WithNode("b"))...)
	_, err := b.Track(newChan("room:1"), "bob", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := a.List("room:1")["bob"]; return ok }, 5*time.Second, poll)
	a.detectDowns() // the check the stall is measured from

	c.partition("b", true)
	mu.Lock()
	now, mono = now.Add(21*time.Second), mono.Add(21*time.Second) // a was stopped for 21 s
	mu.Unlock()
	a.detectDowns()
	_, ok := a.List("room:1")["bob"]
	assert.True(t, ok, "b was silent only while a could not listen")

	mu.Lock()
	now = now.Add(21 * time.Second) // a ran on time, b stayed silent
	mu.Unlock()
	a.detectDowns()
	_, ok = a.List("room:1")["bob"]
	assert.False(t, ok, "b was silent for 21 s while a was listening")
}
