package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/examples/internal/cluster"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket/pubsub"
)

// nodeOptions extend -serve into one node of `bench cluster`: a cluster
// PubSub, a presence tracker on it and the lobby:* presence route.
type nodeOptions struct {
	pubsubURL      string
	node           string
	presenceTopics int
	down           time.Duration // tracker down period (0: presence's default)
}

// clusterNode is what a cluster node adds to the bench app.
type clusterNode struct {
	opts     nodeOptions
	ps       *countingPS
	tracker  *presence.Tracker
	closePS  func() error
	seen     *diffCounter
	firstRef sync.Once
}

func openClusterNode(opts nodeOptions) (*clusterNode, error) {
	// PHX_BENCH_LOG=info shows the tracker's peer events (replica down…).
	level := slog.LevelWarn
	if os.Getenv("PHX_BENCH_LOG") == "info" {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ps, closePS, err := cluster.Open(opts.pubsubURL, opts.node, logger)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", opts.node, err)
	}
	cps := &countingPS{PubSub: ps, wrapped: map[pubsub.Subscriber]*countingSub{}}
	topts := []presence.Option{presence.WithLogger(logger)}
	if opts.down > 0 {
		topts = append(topts, presence.WithDownPeriod(opts.down))
	}
	n := &clusterNode{opts: opts, ps: cps, tracker: presence.New(cps, topts...), closePS: closePS, seen: &diffCounter{}}
	if os.Getenv("PHX_BENCH_CHECK") == "refs" {
		n.seen.refs = make(map[refKey]string)
	}
	for p := range opts.presenceTopics {
		cps.Subscribe(presenceTopic(p), n.seen)
	}
	return n, nil
}

// diffCounter follows the presence diffs of this node's presence topics:
// the number of metas they leave visible, and when that number last
// changed. Counting diffs is cheap at any size, unlike a List of 100,000
// presences per poll, and it dates a change when the tracker made it
// rather than when a poll happened to look.
type diffCounter struct {
	mu      sync.Mutex
	metas   int
	changed int64 // unix nanoseconds
	// refs, with PHX_BENCH_CHECK=refs, is every meta the diffs leave
	// visible (topic and phx_ref -> key), to name the metas on which
	// the diffs and List disagree. Off by default: it costs ~100 B per
	// presence of the cluster on every node.
	refs map[refKey]string
}

type refKey struct{ topic, ref string }

func refOf(topic string, meta map[string]any) refKey {
	return refKey{topic, fmt.Sprint(meta["phx_ref"])}
}

// Deliver implements pubsub.Subscriber; the tracker calls it from its flush.
func (c *diffCounter) Deliver(m *pubsub.Message) {
	var d presence.Diff
	if m.Event != presence.EventDiff || m.Payload.Decode(&d) != nil {
		return
	}
	delta := 0
	for _, e := range d.Joins {
		delta += len(e.Metas)
	}
	for _, e := range d.Leaves {
		delta -= len(e.Metas)
	}
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs != nil {
		c.note(m.Topic, d)
	}
	if delta != 0 {
		c.metas += delta
		c.changed = now
	}
}

// note applies a diff to refs, logging what no sequence of diffs should
// contain: a join of a visible meta or a leave of an invisible one.
// Joins come before leaves, as phoenix.js applies them. Under c.mu.
func (c *diffCounter) note(topic string, d presence.Diff) {
	for key, e := range d.Joins {
		for _, m := range e.Metas {
			k := refOf(topic, m)
			if _, dup := c.refs[k]; dup {
				fmt.Fprintf(os.Stderr, "check: diff joins %s %s ref %s, already visible\n", topic, key, k.ref)
			}
			c.refs[k] = key
		}
	}
	for key, e := range d.Leaves {
		for _, m := range e.Metas {
			k := refOf(topic, m)
			if _, ok := c.refs[k]; !ok {
				fmt.Fprintf(os.Stderr, "check: diff leaves %s %s ref %s, not visible\n", topic, key, k.ref)
			}
			delete(c.refs, k)
		}
	}
}

// mismatch names the metas on which the diffs and lists disagree.
func (c *diffCounter) mismatch(lists map[string]map[string]presence.Entry) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs == nil {
		return nil
	}
	var out []string
	listed := make(map[refKey]bool)
	for topic, es := range lists {
		for key, e := range es {
			for _, m := range e.Metas {
				k := refOf(topic, m)
				listed[k] = true
				if _, ok := c.refs[k]; !ok {
					out = append(out, fmt.Sprintf("listed, not in diffs: %s %s ref %s", topic, key, k.ref))
				}
			}
		}
	}
	for k, key := range c.refs {
		if !listed[k] {
			out = append(out, fmt.Sprintf("in diffs, not listed: %s %s ref %s", k.topic, key, k.ref))
		}
	}
	return out
}

func (c *diffCounter) get() (metas int, changed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metas, c.changed
}

// close stops the tracker without a goodbye (as a crash would, but with
// pending diffs sent), then the PubSub.
func (n *clusterNode) close() error {
	return errors.Join(n.tracker.Close(), n.closePS())
}

// presenceCounts is the number of metas the tracker lists for each presence
// topic: what this node sees cluster-wide.
func (n *clusterNode) presenceCounts() map[string]int {
	lists := n.lists()
	out := make(map[string]int, len(lists))
	for topic, es := range lists {
		total := 0
		for _, e := range es {
			total += len(e.Metas)
		}
		out[topic] = total
	}
	if first := n.seen.mismatch(lists); len(first) > 0 {
		// A socket rejoining while List and the diffs are read shows up
		// once; what is still there a second later is real.
		time.Sleep(time.Second)
		again := n.seen.mismatch(n.lists())
		for i, l := range first {
			if i == 20 {
				fmt.Fprintf(os.Stderr, "check: %s: more\n", n.opts.node)
				break
			}
			fmt.Fprintf(os.Stderr, "check: %s: %s (a second later: %t)\n", n.opts.node, l, slices.Contains(again, l))
		}
	}
	return out
}

// lists is the tracker's List of each presence topic.
func (n *clusterNode) lists() map[string]map[string]presence.Entry {
	out := make(map[string]map[string]presence.Entry, n.opts.presenceTopics)
	for p := range n.opts.presenceTopics {
		out[presenceTopic(p)] = n.tracker.List(presenceTopic(p))
	}
	return out
}

func presenceTopic(p int) string { return "presence:" + strconv.Itoa(p) }

// nodeStats is the JSON of GET /api/stats.
type nodeStats struct {
	Node        string         `json:"node,omitempty"`
	PID         int            `json:"pid"`
	Connections int            `json:"connections"`
	Goroutines  int            `json:"goroutines"`
	HeapInuse   uint64         `json:"heap_inuse"`
	StackInuse  uint64         `json:"stack_inuse"`
	RSSKiB      int64          `json:"rss_kib"`
	CPUS        float64        `json:"cpu_s"`
	Presence    map[string]int `json:"presence,omitempty"` // ?list=1: from Tracker.List
	// PresenceSeen is the number of visible metas per the diffs, and
	// PresenceChanged (unix ns) when it last changed.
	PresenceSeen    int       `json:"presence_seen"`
	PresenceChanged int64     `json:"presence_changed"`
	PubSub          *psCounts `json:"pubsub,omitempty"`
	UnixNano        int64     `json:"unix_nano"`
}

// statsHandler serves GET /api/stats; ?gc=1 collects garbage first, so
// that heap_inuse is the live heap.
func statsHandler(connections func() int, cn *clusterNode) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := nodeStats{PID: os.Getpid(), Connections: connections(), Goroutines: runtime.NumGoroutine(),
			HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse}
		st.RSSKiB, _ = procRSS(os.Getpid())
		st.CPUS, _ = procCPU(os.Getpid())
		if cn != nil {
			st.Node = cn.opts.node
			if r.URL.Query().Get("list") == "1" {
				st.Presence = cn.presenceCounts()
			}
			st.PresenceSeen, st.PresenceChanged = cn.seen.get()
			c := cn.ps.counts()
			st.PubSub = &c
		}
		st.UnixNano = time.Now().UnixNano()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	}
}

// presenceHandler is the lobby:* route of a cluster node: it tracks the
// socket's key (join params {"key":"w3-1234"}) under the aliased topic
// presence:P, which no channel subscribes to, and pushes no presence_state.
// At 10,000 members per topic presence_state (O(n) per join) and the diffs
// to every member (O(n²) in all) would dominate, in Phoenix as here: this
// route measures the tracker's replication, not presence fan-out.
// One handler per channel (the router's factory), so Join can keep the key.
type presenceHandler struct {
	cn  *clusterNode
	key string
}

type keyParams struct {
	Key string `json:"key"`
}

func (h *presenceHandler) Join(_ *channel.Context[string], p channel.Payload) (channel.Result, error) {
	var kp keyParams
	if err := p.Decode(&kp); err != nil || kp.Key == "" {
		return channel.Error(map[string]string{"reason": "need {\"key\":…}"}), nil
	}
	h.key = kp.Key
	return channel.OK(nil), nil
}

func (h *presenceHandler) AfterJoin(c *channel.Context[string]) (channel.Result, error) {
	ref, err := h.cn.tracker.Track(aliasJoined{c, "presence:" + strings.TrimPrefix(c.Topic(), "lobby:")}, h.key, nil)
	if h.cn.seen.refs != nil && err == nil {
		h.cn.firstRef.Do(func() { fmt.Fprintf(os.Stderr, "check: %s: first ref %s\n", h.cn.opts.node, ref) })
	}
	return channel.NoReply(), err
}

func (*presenceHandler) HandleIn(*channel.Context[string], string, channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}

// aliasJoined is a joined channel seen under another topic.
type aliasJoined struct {
	channel.Joined
	topic string
}

func (a aliasJoined) Topic() string { return a.topic }

// countingPS counts this node's PubSub traffic: every broadcast it sends,
// and the replication messages its tracker receives from other nodes
// (subscribers of the tracker's topics are wrapped; others are not, so that
// Unsubscribe keeps working with the caller's value). Bytes are payload
// bytes, not the adapter's frames.
type countingPS struct {
	pubsub.PubSub
	sentMsgs, sentBytes   atomic.Int64
	trackerSentMsgs       atomic.Int64
	trackerSentBytes      atomic.Int64
	recvMsgs, recvBytes   atomic.Int64
	transfersSent         atomic.Int64
	transfersRecv         atomic.Int64
	transferBytesReceived atomic.Int64

	mu      sync.Mutex
	wrapped map[pubsub.Subscriber]*countingSub
}

// psCounts are countingPS's counters, cumulative since start.
type psCounts struct {
	SentMsgs         int64 `json:"sent_msgs"`
	SentBytes        int64 `json:"sent_bytes"`
	TrackerSentMsgs  int64 `json:"tracker_sent_msgs"`
	TrackerSentBytes int64 `json:"tracker_sent_bytes"`
	RecvMsgs         int64 `json:"tracker_recv_msgs"`
	RecvBytes        int64 `json:"tracker_recv_bytes"`
	TransfersSent    int64 `json:"transfers_sent"`
	TransfersRecv    int64 `json:"transfers_recv"`
	TransferRecvB    int64 `json:"transfer_recv_bytes"`
}

func (c *countingPS) counts() psCounts {
	return psCounts{
		SentMsgs: c.sentMsgs.Load(), SentBytes: c.sentBytes.Load(),
		TrackerSentMsgs: c.trackerSentMsgs.Load(), TrackerSentBytes: c.trackerSentBytes.Load(),
		RecvMsgs: c.recvMsgs.Load(), RecvBytes: c.recvBytes.Load(),
		TransfersSent: c.transfersSent.Load(), TransfersRecv: c.transfersRecv.Load(),
		TransferRecvB: c.transferBytesReceived.Load(),
	}
}

func isTrackerTopic(topic string) bool {
	return topic == presence.DefaultName || strings.HasPrefix(topic, presence.DefaultName+":")
}

// transfer_ack is the tracker's full-state (or catch-up) transfer.
const evTransferAck = "transfer_ack"

func (c *countingPS) Broadcast(ctx context.Context, m *pubsub.Message) error {
	n := int64(len(m.Payload.Bytes()))
	c.sentMsgs.Add(1)
	c.sentBytes.Add(n)
	if isTrackerTopic(m.Topic) {
		c.trackerSentMsgs.Add(1)
		c.trackerSentBytes.Add(n)
		if m.Event == evTransferAck {
			c.transfersSent.Add(1)
		}
	}
	return c.PubSub.Broadcast(ctx, m)
}

func (c *countingPS) Subscribe(topic string, s pubsub.Subscriber) {
	if !isTrackerTopic(topic) {
		c.PubSub.Subscribe(topic, s)
		return
	}
	c.mu.Lock()
	w, ok := c.wrapped[s]
	if !ok {
		w = &countingSub{ps: c, s: s}
		c.wrapped[s] = w
	}
	c.mu.Unlock()
	c.PubSub.Subscribe(topic, w)
}

func (c *countingPS) Unsubscribe(topic string, s pubsub.Subscriber) {
	if !isTrackerTopic(topic) {
		c.PubSub.Unsubscribe(topic, s)
		return
	}
	c.mu.Lock()
	w, ok := c.wrapped[s]
	c.mu.Unlock()
	if ok {
		c.PubSub.Unsubscribe(topic, w)
	}
}

// Unwrap lets pubsub.Underlying see the adapter.
func (c *countingPS) Unwrap() pubsub.PubSub { return c.PubSub }

type countingSub struct {
	ps *countingPS
	s  pubsub.Subscriber
}

func (w *countingSub) Deliver(m *pubsub.Message) {
	if m.Node != w.ps.Node() { // our own broadcasts come back locally
		n := int64(len(m.Payload.Bytes()))
		w.ps.recvMsgs.Add(1)
		w.ps.recvBytes.Add(n)
		if m.Event == evTransferAck {
			w.ps.transfersRecv.Add(1)
			w.ps.transferBytesReceived.Add(n)
		}
	}
	w.s.Deliver(m)
}
