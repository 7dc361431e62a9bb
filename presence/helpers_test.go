package presence

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// cluster is an in-process cluster for tests: each node has its own Local
// (so LocalBroadcast stays on the node, as presence diffs must) and
// Broadcast reaches every node that is not cut off.
type cluster struct {
	mu    sync.Mutex
	nodes map[string]*clusterNode
	cut   map[string]bool
	links map[[2]string]bool // one-way cuts: from, to
}

func newCluster() *cluster {
	return &cluster{nodes: make(map[string]*clusterNode), cut: make(map[string]bool), links: make(map[[2]string]bool)}
}

// node returns the PubSub of the named node, creating it on first use.
func (c *cluster) node(name string) *clusterNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[name]
	if n == nil {
		n = &clusterNode{c: c, name: name, local: pubsub.NewLocal(name)}
		c.nodes[name] = n
	}
	return n
}

// partition drops every message from or to the named node until heal.
func (c *cluster) partition(name string, cut bool) {
	c.mu.Lock()
	c.cut[name] = cut
	c.mu.Unlock()
}

// cutLink drops (or, with cut false, delivers again) the messages from one
// node to another, leaving every other path alone.
func (c *cluster) cutLink(from, to string, cut bool) {
	c.mu.Lock()
	c.links[[2]string{from, to}] = cut
	c.mu.Unlock()
}

// heal ends every partition and link cut.
func (c *cluster) heal() {
	c.mu.Lock()
	clear(c.cut)
	clear(c.links)
	c.mu.Unlock()
}

type clusterNode struct {
	c     *cluster
	name  string
	local *pubsub.Local
}

func (n *clusterNode) Node() string                                  { return n.name }
func (n *clusterNode) Subscribe(topic string, s pubsub.Subscriber)   { n.local.Subscribe(topic, s) }
func (n *clusterNode) Unsubscribe(topic string, s pubsub.Subscriber) { n.local.Unsubscribe(topic, s) }
func (n *clusterNode) LocalBroadcast(m *pubsub.Message)              { n.local.LocalBroadcast(m) }

func (n *clusterNode) Broadcast(_ context.Context, m *pubsub.Message) error {
	m.Node = n.name
	n.c.mu.Lock()
	var to []*clusterNode
	for _, o := range n.c.nodes {
		if o == n || (!n.c.cut[n.name] && !n.c.cut[o.name] && !n.c.links[[2]string{n.name, o.name}]) {
			to = append(to, o)
		}
	}
	n.c.mu.Unlock()
	for _, o := range to {
		o.local.LocalBroadcast(m)
	}
	return nil
}

// fakeChan implements the Joined methods and records pushes.
type fakeChan struct {
	topic, id string

	mu     sync.Mutex
	pushes []pushed
	exits  []func()
	ended  bool
	hooks  int
}

type pushed struct {
	event   string
	payload protocol.Payload
}

var chanSeq atomic.Int64

func newChan(topic string) *fakeChan {
	return &fakeChan{topic: topic, id: "ch" + strconv.FormatInt(chanSeq.Add(1), 10)}
}

func (c *fakeChan) Topic() string { return c.topic }
func (c *fakeChan) ID() string    { return c.id }

func (c *fakeChan) Push(event string, payload any) error {
	p, err := protocol.Marshal(payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pushes = append(c.pushes, pushed{event, p})
	c.mu.Unlock()
	return nil
}

func (c *fakeChan) OnExit(fn func()) {
	c.mu.Lock()
	c.hooks++
	if c.ended {
		c.mu.Unlock()
		fn()
		return
	}
	c.exits = append(c.exits, fn)
	c.mu.Unlock()
}

func (c *fakeChan) exit() {
	c.mu.Lock()
	c.ended = true
	fns := c.exits
	c.exits = nil
	c.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

func (c *fakeChan) lastPush() pushed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pushes[len(c.pushes)-1]
}

// recorder is a local subscriber keeping the presence_diff messages.
type recorder struct {
	mu    sync.Mutex
	diffs []Diff
	n     atomic.Int64
	t     testing.TB
}

func record(t testing.TB, ps pubsub.PubSub, topic string) *recorder {
	r := &recorder{t: t}
	ps.Subscribe(topic, r)
	return r
}

func (r *recorder) Deliver(m *pubsub.Message) {
	if m.Event != EventDiff {
		return
	}
	var d Diff
	require.NoError(r.t, m.Payload.Decode(&d))
	r.mu.Lock()
	r.diffs = append(r.diffs, d)
	r.mu.Unlock()
	r.n.Add(1)
}

func (r *recorder) all() []Diff {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.diffs)
}

// client replays what phoenix.js's Presence does with state and diffs.
type client map[string][]map[string]any

func (c client) syncDiff(d Diff) {
	for key, e := range d.Joins {
		joined := e.Refs()
		var keep []map[string]any
		for _, m := range c[key] {
			if !slices.Contains(joined, m["phx_ref"].(string)) {
				keep = append(keep, m)
			}
		}
		c[key] = append(keep, e.Metas...)
	}
	for key, e := range d.Leaves {
		cur, ok := c[key]
		if !ok {
			continue
		}
		left := e.Refs()
		cur = slices.DeleteFunc(cur, func(m map[string]any) bool { return slices.Contains(left, m["phx_ref"].(string)) })
		if len(cur) == 0 {
			delete(c, key)
		} else {
			c[key] = cur
		}
	}
}

// refsOf renders a client or a List as key -> refs, in order.
func (c client) refs() map[string][]string {
	out := make(map[string][]string)
	for k, metas := range c {
		for _, m := range metas {
			out[k] = append(out[k], m["phx_ref"].(string))
		}
	}
	return out
}

func listRefs(l map[string]Entry) map[string][]string {
	out := make(map[string][]string)
	for k, e := range l {
		out[k] = e.Refs()
	}
	return out
}

// sortedRefs is listRefs with every list sorted, for comparisons across
// nodes where order within a key may legitimately differ on the client.
func sortedRefs(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Sorted(slices.Values(v))
	}
	return out
}

func replay(diffs []Diff) client {
	c := client{}
	for _, d := range diffs {
		c.syncDiff(d)
	}
	return c
}

// withMono sets the real-time source the tracker measures its own stalls
// with (default time.Now).
func withMono(f func() time.Time) Option { return func(c *config) { c.mono = f } }
