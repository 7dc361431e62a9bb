package pubsub

import (
	"context"
	"hash/maphash"
	"sync"
)

const shardCount = 64

// Local is the in-process PubSub. Its registry is sharded by topic, and each
// topic keeps an immutable snapshot of its subscribers: a broadcast takes it
// under a brief shard lock and delivers without the lock and without
// allocating. A change of subscribers drops the snapshot and the next
// broadcast rebuilds it, so bursts of joins cost one rebuild.
type Local struct {
	node   string
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu     sync.Mutex
	topics map[string]*topicSubs
}

type topicSubs struct {
	set      map[Subscriber]struct{}
	snapshot []Subscriber // nil when stale; never modified once built
}

// NewLocal returns an in-process PubSub for the named node.
func NewLocal(node string) *Local {
	l := &Local{node: node, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].topics = make(map[string]*topicSubs)
	}
	return l
}

// Node implements PubSub.
func (l *Local) Node() string { return l.node }

func (l *Local) shard(topic string) *shard {
	return &l.shards[maphash.String(l.seed, topic)%shardCount]
}

// Subscribe implements PubSub.
func (l *Local) Subscribe(topic string, s Subscriber) {
	sh := l.shard(topic)
	sh.mu.Lock()
	t := sh.topics[topic]
	if t == nil {
		t = &topicSubs{set: make(map[Subscriber]struct{})}
		sh.topics[topic] = t
	}
	if _, ok := t.set[s]; !ok {
		t.set[s] = struct{}{}
		t.snapshot = nil
	}
	sh.mu.Unlock()
}

// Unsubscribe implements PubSub.
func (l *Local) Unsubscribe(topic string, s Subscriber) {
	sh := l.shard(topic)
	sh.mu.Lock()
	if t := sh.topics[topic]; t != nil {
		if _, ok := t.set[s]; ok {
			delete(t.set, s)
			t.snapshot = nil
			if len(t.set) == 0 {
				delete(sh.topics, topic)
			}
		}
	}
	sh.mu.Unlock()
}

// Subscribers returns how many subscribers topic has on this node.
func (l *Local) Subscribers(topic string) int {
	sh := l.shard(topic)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if t := sh.topics[topic]; t != nil {
		return len(t.set)
	}
	return 0
}

// Broadcast implements PubSub; for Local every node is this node.
func (l *Local) Broadcast(_ context.Context, m *Message) error {
	l.LocalBroadcast(m)
	return nil
}

// LocalBroadcast implements PubSub.
func (l *Local) LocalBroadcast(m *Message) {
	for _, s := range l.subscribers(m.Topic) {
		s.Deliver(m)
	}
}

func (l *Local) subscribers(topic string) []Subscriber {
	sh := l.shard(topic)
	sh.mu.Lock()
	t := sh.topics[topic]
	if t == nil {
		sh.mu.Unlock()
		return nil
	}
	if t.snapshot == nil {
		t.snapshot = make([]Subscriber, 0, len(t.set))
		for s := range t.set {
			t.snapshot = append(t.snapshot, s)
		}
	}
	snap := t.snapshot
	sh.mu.Unlock()
	return snap
}
