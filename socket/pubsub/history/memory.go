package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/phxgo/phx/socket/pubsub"
)

// Defaults of a history's limits, in memory and in the cluster stores.
const (
	// DefaultSize is how many broadcasts a topic's history keeps.
	DefaultSize = 1000
	// DefaultTTL is how long a topic's history lives after its last
	// broadcast or recovery query; it is then dropped and the topic's next
	// history has a new epoch.
	DefaultTTL = 10 * time.Minute
)

// Options are the limits of a history store. The zero value means the
// defaults.
type Options struct {
	// Size is how many broadcasts each topic keeps (DefaultSize if zero).
	Size int
	// TTL is how long a topic's history outlives its last use (DefaultTTL
	// if zero).
	TTL time.Duration
}

// WithDefaults returns o with its zero limits set to the defaults, for
// stores in other packages.
func (o Options) WithDefaults() Options {
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	return o
}

// Memory is the Store of a single node: histories live in this process and
// die with it (the next process has new epochs, so clients learn that they
// must reload). It works with a *pubsub.Local (or a wrapper of one), never
// with a cluster adapter, whose nodes would number broadcasts apart.
//
// Memory holds at most Size broadcasts per topic, for the topics used in
// the last TTL; it starts no goroutine, and sweeps expired topics as it
// goes.
type Memory struct {
	opts   Options
	now    func() time.Time
	seed   maphash.Seed
	shards [memShards]memShard
}

const memShards = 32

type memShard struct {
	mu     sync.Mutex
	topics map[string]*memTopic
	ops    uint32 // publishes since the last sweep
}

// memTopic is one topic's history. Its lock is held across the broadcast so
// that the topic's subscribers receive broadcasts in offset order.
type memTopic struct {
	mu    sync.Mutex
	epoch string
	top   uint64
	ring  []*pubsub.Message // the last len(ring) broadcasts; ring[(top-1)%Size] is the newest
	used  time.Time
	dead  bool // swept; a fresh memTopic replaces it
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory(opts Options) *Memory {
	m := &Memory{opts: opts.WithDefaults(), now: time.Now, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].topics = make(map[string]*memTopic)
	}
	return m
}

// topic returns topic's live history, creating it, and locked.
func (s *Memory) topic(topic string, publishing bool) *memTopic {
	sh := &s.shards[maphash.String(s.seed, topic)%memShards]
	now := s.now()
	for {
		sh.mu.Lock()
		if publishing {
			sh.ops++
			if sh.ops >= 1024 {
				sh.ops = 0
				s.sweepLocked(sh, now)
			}
		}
		t := sh.topics[topic]
		if t == nil {
			t = &memTopic{epoch: NewEpoch()}
			sh.topics[topic] = t
		}
		sh.mu.Unlock()
		t.mu.Lock()
		if t.dead {
			t.mu.Unlock()
			continue
		}
		if !t.used.IsZero() && now.Sub(t.used) > s.opts.TTL {
			// Expired but not swept yet: a new history.
			t.epoch, t.top, t.ring = NewEpoch(), 0, nil
		}
		t.used = now
		return t
	}
}

func (s *Memory) sweepLocked(sh *memShard, now time.Time) {
	for name, t := range sh.topics {
		if t.mu.TryLock() {
			if now.Sub(t.used) > s.opts.TTL {
				t.dead = true
				delete(sh.topics, name)
			}
			t.mu.Unlock()
		}
	}
}

// Publish implements Store.
func (s *Memory) Publish(ctx context.Context, ps pubsub.PubSub, m *pubsub.Message) error {
	if _, ok := pubsub.Underlying(ps).(*pubsub.Local); !ok {
		return fmt.Errorf("%w: the in-memory history serves one node, not %T", ErrUnsupported, pubsub.Underlying(ps))
	}
	t := s.topic(m.Topic, true)
	defer t.mu.Unlock()
	t.top++
	m.Offset, m.Epoch = t.top, t.epoch
	if len(t.ring) < s.opts.Size {
		t.ring = append(t.ring, m)
	} else {
		t.ring[(t.top-1)%uint64(s.opts.Size)] = m
	}
	return ps.Broadcast(ctx, m)
}

// Since implements Store.
func (s *Memory) Since(_ context.Context, topic string, since Position, limit int) (Result, error) {
	t := s.topic(topic, false)
	defer t.mu.Unlock()
	res := Result{Top: Position{Offset: t.top, Epoch: t.epoch}}
	if since.Epoch != t.epoch || since.Offset > t.top {
		return res, nil
	}
	missed := t.top - since.Offset
	kept := uint64(len(t.ring))
	n := min(missed, kept, uint64(max(limit, 0)))
	res.Complete = n == missed
	if n > 0 {
		res.Messages = make([]*pubsub.Message, 0, n)
		for off := t.top - n + 1; off <= t.top; off++ {
			res.Messages = append(res.Messages, t.ring[(off-1)%uint64(s.opts.Size)])
		}
	}
	return res, nil
}

// NewEpoch returns a fresh random epoch: 16 hex digits.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// DenseOffsets implements Dense: a topic's offsets go 1, 2, 3…
func (s *Memory) DenseOffsets() bool { return true }

// Reset drops topic's history: its next broadcast starts a new epoch, so
// that clients naming a position in the old one get "recovered": false and
// reload. Use it when the state the broadcasts described was reset.
func (s *Memory) Reset(topic string) {
	t := s.topic(topic, false)
	t.epoch, t.top, t.ring = NewEpoch(), 0, nil
	t.mu.Unlock()
}
