package presence

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sourceState builds a state that exercises every part of a transfer: local
// elements with some removed, two peers' elements with gaps (clouds) from
// lost deltas, topics and keys that JSON must escape.
// early is a's transfer to a receiver "d" before a removed some elements.
func sourceState(t *testing.T) (a *state, early *wireState) {
	t.Helper()
	var b, c *state
	a, b, c = stateFor("a", "b", "c"), stateFor("b", "a", "c"), stateFor("c", "a", "b")
	var mine []*element
	for i := range 1200 {
		mine = append(mine, addLocal(a, fmt.Sprintf("room:%d<&>", i%7), fmt.Sprintf("user-%d-\u2028é\"", i)))
	}
	early = a.extract(rep("d"), stateFor("d", "a", "b", "c").clock())
	for i, e := range mine {
		if i%7 == 3 {
			a.remove(e)
		}
	}
	for round := range 4 {
		for i := range 300 {
			addLocal(b, "room:b", fmt.Sprintf("b-%d-%d", round, i))
			addLocal(c, "room:c", fmt.Sprintf("c-%d-%d", round, i))
		}
		db, dc := b.takeDelta(), c.takeDelta()
		if round != 1 { // a misses b's second and c's third delta: clouds
			a.merge(db)
		}
		if round != 2 {
			a.merge(dc)
		}
	}
	a.takeChanges()
	require.NotEmpty(t, a.clouds[b.self], "a has a gap for b")
	require.NotEmpty(t, a.clouds[c.self], "a has a gap for c")
	return a, early
}

// fingerprint is everything a merge decides: visible elements, context and
// clouds, one line per topic or replica (counted and hashed, so that a
// failure prints short lines).
func fingerprint(s *state) []string {
	var out []string
	topics := []string{"room:b", "room:c"}
	for i := range 7 {
		topics = append(topics, fmt.Sprintf("room:%d<&>", i))
	}
	for _, topic := range topics {
		rs := refs(s, topic)
		out = append(out, fmt.Sprintf("%s: %d elements, %x", topic, len(rs), sha256.Sum256([]byte(strings.Join(rs, "|")))))
	}
	for _, r := range []replica{rep("a"), rep("b"), rep("c")} {
		out = append(out, fmt.Sprintf("%s: ctx %d, %d cloud dots", r.Node, s.ctx[r], len(s.clouds[r])))
	}
	return out
}

func encodedSize(t *testing.T, from replica, ws *wireState) int {
	t.Helper()
	b, err := json.Marshal(wireMsg{From: from, Clock: []wireClock{{R: rep("a"), C: 1 << 40}, {R: rep("b"), C: 1 << 40}, {R: rep("c"), C: 1 << 40}}, State: ws})
	require.NoError(t, err)
	return len(b)
}

func TestSplitTransferMergesLikeTheWhole(t *testing.T) {
	a, early := sourceState(t)
	const limit = 16 << 10

	// Two receivers, each stale in the same way: they hold a's elements
	// from before a removed some, so the transfer must remove them too.
	whole, parts := stateFor("d", "a", "b", "c"), stateFor("d", "a", "b", "c")
	for _, r := range []*state{whole, parts} {
		r.merge(early)
		r.takeChanges()
	}
	require.Len(t, refs(whole, "room:3<&>"), 171)

	ws := a.extract(whole.self, whole.clock())
	full := encodedSize(t, a.self, ws)
	msgs := split(ws, limit, nil)
	require.Greater(t, len(msgs), 5, "a %d-byte state in %d-byte messages", full, limit)
	total := 0
	for _, p := range msgs {
		n := encodedSize(t, a.self, p)
		assert.LessOrEqual(t, n, limit)
		total += len(p.Values)
	}
	assert.Equal(t, len(ws.Values), total, "every value in exactly one message")

	whole.merge(ws)
	rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	for _, p := range msgs {
		parts.merge(p)
	}
	assert.Equal(t, fingerprint(whole), fingerprint(parts))
	assert.Equal(t, fingerprint(a), fingerprint(parts), "the receiver knows what a knows")
}

func TestSplitDeltaMergesLikeTheWhole(t *testing.T) {
	a, b := stateFor("a", "b"), stateFor("b", "a")
	var old []*element
	for i := range 500 {
		old = append(old, addLocal(a, "room:1", fmt.Sprintf("old-%d", i)))
	}
	b.merge(a.takeDelta())
	for i, e := range old {
		if i%3 == 0 {
			a.remove(e) // removed dots below the delta's range
		}
	}
	for i := range 2000 {
		addLocal(a, "room:1", fmt.Sprintf("new-%d", i))
	}
	delta := a.takeDelta()
	parts := split(delta, 8<<10, nil)
	require.Greater(t, len(parts), 10)
	for _, p := range parts {
		assert.LessOrEqual(t, encodedSize(t, a.self, p), 8<<10)
	}

	for i := len(parts) - 1; i >= 0; i-- { // backwards: order does not matter
		b.merge(parts[i])
	}
	assert.Len(t, refs(b, "room:1"), 500-167+2000)
	assert.Equal(t, refs(a, "room:1"), refs(b, "room:1"))
	assert.Equal(t, a.ctx[a.self], b.ctx[a.self])
	assert.Empty(t, b.clouds)
}

func TestSplitLeavesSmallStatesWhole(t *testing.T) {
	a := stateFor("a", "b")
	addLocal(a, "room", "x")
	ws := a.takeDelta()
	got := split(ws, DefaultMaxMessageBytes, nil)
	require.Len(t, got, 1)
	assert.Same(t, ws, got[0])
	assert.Equal(t, []*wireState{nil}, split(nil, DefaultMaxMessageBytes, nil), "a heartbeat without changes")
	assert.Same(t, ws, split(ws, 0, nil)[0], "0 turns splitting off")
}

func TestSplitSendsAnOversizedValueAlone(t *testing.T) {
	a := stateFor("a", "b")
	addLocal(a, "room", "x")
	big := strings.Repeat("y", 10<<10)
	a.add("ch-big", "room", "big", "refbig", 1, map[string]any{"phx_ref": "refbig"}, rawMeta("refbig", "", []byte(`{"v":"`+big+`"}`)))
	addLocal(a, "room", "z")
	parts := split(a.takeDelta(), 4<<10, nil)
	require.Len(t, parts, 3)
	for i, p := range parts {
		assert.Len(t, p.Values, 1, "part %d", i)
	}
	b := stateFor("b", "a")
	for _, p := range parts {
		b.merge(p)
	}
	assert.Len(t, refs(b, "room"), 3)
}

func TestJSONStringSizeBoundsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\`, "tab\tnl\n", "\x01ctl", "<&>", "é漢字🙂", "\u2028\u2029", "bad\xffutf8", `{"a":"<b>"}`} {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, jsonStringSize(s), len(b)-2, "%q", s)
		raw, err := json.Marshal(map[string]string{"k": s})
		require.NoError(t, err)
		enc, err := json.Marshal(json.RawMessage(raw))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, jsonStringSize(string(raw)), len(enc), "raw %s", raw)
	}
}

// warnings records the tracker's log lines, debug included.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	w.msgs = append(w.msgs, msg)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}

// TestTransferOverNATSDefaultMaxPayload: a node joining a cluster whose
// state is larger than NATS's default 1 MB max_payload gets all of it. Sent
// whole (splitting off), the same transfer is refused by the broker.
func TestTransferOverNATSDefaultMaxPayload(t *testing.T) {
	addr := startBroker(t, "nats-server", func(p string) []string { return []string{"-a", "127.0.0.1", "-p", p} })
	const n = 12000
	for _, tc := range []struct {
		name    string
		max     int
		arrives bool
	}{
		{"split", DefaultMaxMessageBytes, true},
		{"whole", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warn := &warnings{}
			opts := []Option{WithBroadcastPeriod(50 * time.Millisecond), WithDownPeriod(2 * time.Second), WithMaxMessageBytes(tc.max), WithLogger(slog.New(warn))}
			a := newTracker(t, natsNode(t, addr, "big-a-"+tc.name), append(opts, WithName("big-"+tc.name))...)
			for i := range n {
				_, err := a.Track(newChan(fmt.Sprintf("room:%d", i%10)), fmt.Sprintf("user-%05d", i), map[string]any{"device": "phone"})
				require.NoError(t, err)
			}
			time.Sleep(200 * time.Millisecond) // a's deltas go out before b exists
			b := newTracker(t, natsNode(t, addr, "big-b-"+tc.name), append(opts, WithName("big-"+tc.name))...)
			count := func() int {
				total := 0
				for i := range 10 {
					total += len(b.List(fmt.Sprintf("room:%d", i)))
				}
				return total
			}
			logged := func(prefix, part string) string {
				for _, l := range strings.Split(warn.all(), "\n") {
					if strings.HasPrefix(l, prefix) && strings.Contains(l, part) {
						return l
					}
				}
				return ""
			}
			if tc.arrives {
				assert.Eventually(t, func() bool { return count() == n }, 10*time.Second, 20*time.Millisecond)
				assert.Empty(t, logged("WARN", ""), "no warnings")
				sent := logged("DEBUG presence: transfer", "values=12000")
				require.NotEmpty(t, sent, "log: %s", warn.all())
				var msgs int
				_, err := fmt.Sscanf(sent[strings.Index(sent, "messages="):], "messages=%d", &msgs)
				require.NoError(t, err, "log line %q", sent)
				t.Logf("12,000 presences sent to a new node in %d messages", msgs)
				assert.Greater(t, msgs, 1)
				return
			}
			assert.Eventually(t, func() bool { return logged("WARN presence: transfer", "maximum payload exceeded") != "" },
				10*time.Second, 20*time.Millisecond, "log: %s", warn.all())
			assert.Zero(t, count())
		})
	}
}

// TestChurnWithSplitMessagesAndPartitions drives four trackers whose every
// replication state is split into small messages through churn and
// repeated partitions (downs, ups, transfers), then checks that they
// converge and that each node's diffs, replayed the way phoenix.js does,
// end at its List.
func TestChurnWithSplitMessagesAndPartitions(t *testing.T) {
	c := newCluster()
	names := []string{"a", "b", "c", "d"}
	var ts []*Tracker
	var recs []*recorder
	for _, n := range names {
		recs = append(recs, record(t, c.node(n), "room:1"))
		ts = append(ts, newTracker(t, c.node(n), fast(WithMaxMessageBytes(2<<10))...))
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	var live []*fakeChan
	for round := range 40 {
		cut := names[rng.IntN(len(names))]
		switch round % 4 {
		case 0:
			c.partition(cut, true)
		case 1, 2: // one-way: a node misses one peer but hears it through transfers from others
			c.cutLink(cut, names[rng.IntN(len(names))], true)
		}
		for range 50 {
			if len(live) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(live))
				live[i].exit()
				live = append(live[:i], live[i+1:]...)
				continue
			}
			n := rng.IntN(len(ts))
			ch := newChan("room:1")
			_, err := ts[n].Track(ch, fmt.Sprintf("user%d", rng.IntN(200)), map[string]any{"n": n})
			require.NoError(t, err)
			live = append(live, ch)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // sometimes past the down period
		if round%4 == 3 {
			c.heal()
		}
	}
	c.heal()
	got := converged(t, "room:1", ts...)
	assert.Equal(t, len(live), countMetas(got))
	for i, rec := range recs {
		assert.Eventually(t, func() bool {
			return maps.EqualFunc(got, sortedRefs(replay(rec.all()).refs()), slices.Equal)
		}, wait, poll, "node %s's diffs end at its List", names[i])
	}
}
