package client_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/client"
)

func state(t *testing.T, s string) client.PresenceState {
	t.Helper()
	var st client.PresenceState
	require.NoError(t, json.Unmarshal([]byte(s), &st))
	return st
}

func diff(t *testing.T, s string) client.PresenceDiff {
	t.Helper()
	var d client.PresenceDiff
	require.NoError(t, json.Unmarshal([]byte(s), &d))
	return d
}

// refs summarises a state as key -> phx_refs, in meta order.
func refs(s client.PresenceState) map[string][]string {
	out := map[string][]string{}
	for k, e := range s {
		for _, m := range e.Metas {
			out[k] = append(out[k], m.Ref)
		}
	}
	return out
}

type event struct {
	kind, key string
	current   []string // refs before (join) or remaining (leave)
	changed   []string
}

func metaRefs(e *client.PresenceEntry) []string {
	if e == nil {
		return nil
	}
	var out []string
	for _, m := range e.Metas {
		out = append(out, m.Ref)
	}
	return out
}

func recorder() (*[]event, client.PresenceJoinFunc, client.PresenceLeaveFunc) {
	var evs []event
	return &evs,
		func(k string, cur *client.PresenceEntry, j client.PresenceEntry) {
			evs = append(evs, event{"join", k, metaRefs(cur), metaRefs(&j)})
		},
		func(k string, rem, l client.PresenceEntry) {
			evs = append(evs, event{"leave", k, metaRefs(&rem), metaRefs(&l)})
		}
}

func TestPresenceSync(t *testing.T) {
	// Two users, bob in two tabs.
	evs, onJoin, onLeave := recorder()
	s := client.SyncState(nil, state(t, `{
		"alice":{"metas":[{"rating":1500,"phx_ref":"a1"}]},
		"bob":{"metas":[{"phx_ref":"b1"},{"phx_ref":"b2"}],"user":{"name":"Bob"}}}`), onJoin, onLeave)
	assert.Equal(t, map[string][]string{"alice": {"a1"}, "bob": {"b1", "b2"}}, refs(s))
	assert.JSONEq(t, `{"name":"Bob"}`, string(s["bob"].Extra["user"]), "extra fields are kept")
	var meta struct{ Rating int }
	require.NoError(t, s["alice"].Metas[0].Decode(&meta))
	assert.Equal(t, 1500, meta.Rating)
	assert.Equal(t, []event{{"join", "alice", nil, []string{"a1"}}, {"join", "bob", nil, []string{"b1", "b2"}}}, *evs)

	// One of bob's tabs leaves: bob stays with the other.
	*evs = nil
	s2 := client.SyncDiff(s, diff(t, `{"joins":{},"leaves":{"bob":{"metas":[{"phx_ref":"b1"}]}}}`), onJoin, onLeave)
	assert.Equal(t, map[string][]string{"alice": {"a1"}, "bob": {"b2"}}, refs(s2))
	assert.Equal(t, []event{{"leave", "bob", []string{"b2"}, []string{"b1"}}}, *evs)
	assert.Equal(t, []string{"b1", "b2"}, refs(s)["bob"], "SyncDiff does not modify its input")

	// An update of alice: join with phx_ref_prev plus leave of the old meta.
	*evs = nil
	s3 := client.SyncDiff(s2, diff(t, `{
		"joins":{"alice":{"metas":[{"rating":1510,"phx_ref":"a2","phx_ref_prev":"a1"}]}},
		"leaves":{"alice":{"metas":[{"rating":1500,"phx_ref":"a1"}]}}}`), onJoin, onLeave)
	assert.Equal(t, map[string][]string{"alice": {"a2"}, "bob": {"b2"}}, refs(s3))
	assert.Equal(t, "a1", s3["alice"].Metas[0].PrevRef)
	assert.Equal(t, []event{{"join", "alice", []string{"a1"}, []string{"a2"}}, {"leave", "alice", []string{"a2"}, []string{"a1"}}}, *evs)

	// A new tab of bob goes after the existing one (oldest first); bob's last
	// old tab and carol's only... carol never existed: her leave is ignored.
	s4 := client.SyncDiff(s3, diff(t, `{"joins":{"bob":{"metas":[{"phx_ref":"b3"}]}},"leaves":{"carol":{"metas":[{"phx_ref":"c1"}]}}}`), nil, nil)
	assert.Equal(t, map[string][]string{"alice": {"a2"}, "bob": {"b2", "b3"}}, refs(s4))

	// The last meta leaving removes the key.
	s5 := client.SyncDiff(s4, diff(t, `{"joins":{},"leaves":{"alice":{"metas":[{"phx_ref":"a2"}]}}}`), nil, nil)
	assert.Equal(t, map[string][]string{"bob": {"b2", "b3"}}, refs(s5))

	// A fresh state (after a rejoin) replaces: keys gone leave, metas diffed.
	*evs = nil
	s6 := client.SyncState(s5, state(t, `{"bob":{"metas":[{"phx_ref":"b3"},{"phx_ref":"b4"}]},"dave":{"metas":[{"phx_ref":"d1"}]}}`), onJoin, onLeave)
	assert.Equal(t, map[string][]string{"bob": {"b3", "b4"}, "dave": {"d1"}}, refs(s6))
	assert.Equal(t, []event{
		{"join", "bob", []string{"b2", "b3"}, []string{"b4"}},
		{"join", "dave", nil, []string{"d1"}},
		{"leave", "bob", []string{"b3", "b4"}, []string{"b2"}},
	}, *evs)
}

func keys(entries []client.PresenceEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key)
	}
	return out
}

func TestPresenceOverChannel(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:presence", nil)
	var mu sync.Mutex
	var syncs int
	var joined []string
	p := client.NewPresence(ch, client.PresenceOptions{
		OnJoin: func(key string, _ *client.PresenceEntry, _ client.PresenceEntry) {
			mu.Lock()
			defer mu.Unlock()
			joined = append(joined, key)
		},
		OnSync: func() {
			mu.Lock()
			defer mu.Unlock()
			syncs++
		},
	})
	defer p.Stop()
	_, err := ch.Join(ctx)
	require.NoError(t, err)
	_, err = ch.Next(ctx, "presence_state")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(p.List()) == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"alice"}, keys(p.List()))

	_, err = ch.Push(ctx, "broadcast_as", map[string]any{"event": "presence_diff", "payload": map[string]any{
		"joins":  map[string]any{"bob": map[string]any{"metas": []any{map[string]any{"phx_ref": "b1"}}}},
		"leaves": map[string]any{},
	}})
	require.NoError(t, err)
	_, err = ch.Next(ctx, "presence_diff")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(p.List()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"alice", "bob"}, keys(p.List()))
	mu.Lock()
	assert.Equal(t, []string{"alice", "bob"}, joined)
	assert.Equal(t, 2, syncs)
	mu.Unlock()
}

// Diffs that arrive before the current join's presence_state are buffered
// and applied after it, as in phoenix.js.
func TestPresenceBuffersDiffsUntilState(t *testing.T) {
	ts := newTestServer(t)
	c := dial(t, ts.URL, client.Options{Params: map[string]string{"token": "alice"}})
	ctx := testCtx(t)
	ch := c.Channel("room:buffered", nil) // no automatic presence_state
	p := client.NewPresence(ch, client.PresenceOptions{})
	defer p.Stop()
	_, err := ch.Join(ctx)
	require.NoError(t, err)

	_, err = ch.Push(ctx, "push_as", map[string]any{"event": "presence_diff", "payload": map[string]any{
		"joins":  map[string]any{"carol": map[string]any{"metas": []any{map[string]any{"phx_ref": "c1"}}}},
		"leaves": map[string]any{},
	}})
	require.NoError(t, err)
	_, err = ch.Next(ctx, "presence_diff")
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	assert.Empty(t, p.List(), "no state yet for this join: the diff waits")

	_, err = ch.Push(ctx, "push_as", map[string]any{"event": "presence_state", "payload": map[string]any{
		"dave": map[string]any{"metas": []any{map[string]any{"phx_ref": "d1"}}},
	}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(p.List()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"carol", "dave"}, keys(p.List()))
}
