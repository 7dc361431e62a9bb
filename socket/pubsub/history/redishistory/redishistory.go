// Package redishistory keeps the histories of recoverable topics in Redis,
// for a cluster whose nodes share the Redis pubsub adapter, so that a client
// whose node died recovers what it missed from any other node.
//
// Each topic has three keys, hash-tagged by topic so that Redis Cluster
// keeps them together: its epoch (a random string), its offset counter, and
// a Redis Stream of its recent broadcasts, whose entry IDs are the offsets.
// Publishing runs one script that, atomically, creates the epoch if the
// history is new (or was lost: flushed, expired), increments the offset,
// XADDs the broadcast with MAXLEN trimming, refreshes the TTL and PUBLISHes
// the envelope on the adapter's channel. Every node, the publisher's
// included, delivers recoverable broadcasts from that channel, so a topic's
// broadcasts reach subscribers in offset order on every node. A recovery
// query is one script too (XREVRANGE after the client's offset), so its
// epoch, top and messages are consistent with each other.
//
// While Redis is unreachable a recoverable broadcast fails and is delivered
// nowhere, even locally: it cannot be numbered, and a broadcast without a
// position could not be recovered later. Plain broadcasts are unaffected.
package redishistory

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/internal/envelope"
	phxredis "github.com/phxgo/phx/socket/pubsub/redis"
)

// DefaultPrefix starts every key of a history.
const DefaultPrefix = "phx:history:"

// Options configures New.
type Options struct {
	// Size and TTL limit each topic's history (history.DefaultSize and
	// history.DefaultTTL if zero). Trimming is approximate (XADD MAXLEN ~):
	// a stream may keep a few more entries, never fewer.
	history.Options
	// Prefix starts the keys (DefaultPrefix if empty). Clusters sharing one
	// Redis are separated by their prefix.
	Prefix string
}

// Store is a history.Store in Redis.
type Store struct {
	client *goredis.Client
	opts   Options
}

var _ history.Store = (*Store)(nil)

// New returns a Store keeping histories through client, usually the client
// of the node's Redis adapter.
func New(client *goredis.Client, opts Options) *Store {
	opts.Options = opts.Options.WithDefaults()
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Store{client: client, opts: opts}
}

func (s *Store) keys(topic string) []string {
	base := s.opts.Prefix + "{" + topic + "}:"
	return []string{base + "epoch", base + "offset", base + "stream"}
}

// publishScript numbers, records and publishes one broadcast. KEYS: epoch,
// offset, stream. ARGV: candidate epoch, maxlen, ttl (ms), channel,
// envelope head, envelope tail.
var publishScript = goredis.NewScript(`
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local off = redis.call('INCR', KEYS[2])
local offs = tostring(off)
local env = ARGV[5] .. string.char(#offs) .. offs .. string.char(#epoch) .. epoch .. ARGV[6]
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], offs .. '-0', 'm', env)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], env)
return {off, epoch}
`)

// sinceScript answers a recovery query. KEYS: epoch, offset, stream. ARGV:
// since offset, limit, candidate epoch, ttl (ms).
var sinceScript = goredis.NewScript(`
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
local since = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local msgs = {}
if limit > 0 and top > since then
  msgs = redis.call('XREVRANGE', KEYS[3], '+', tostring(since + 1) .. '-0', 'COUNT', limit)
end
return {epoch, top, msgs}
`)

// Publish implements history.Store. ps must be (or wrap) the node's Redis
// adapter.
func (s *Store) Publish(ctx context.Context, ps pubsub.PubSub, m *pubsub.Message) error {
	rp, ok := pubsub.Underlying(ps).(*phxredis.PubSub)
	if !ok {
		return fmt.Errorf("%w: redishistory needs the Redis adapter, not %T", history.ErrUnsupported, pubsub.Underlying(ps))
	}
	m.Node = rp.Node()
	head := envelope.AppendHistoryHead(nil, m.Node, m)
	tail := envelope.AppendHistoryTail(nil, m)
	res, err := publishScript.Run(ctx, s.client, s.keys(m.Topic),
		history.NewEpoch(), s.opts.Size, s.opts.TTL.Milliseconds(), rp.Channel(), head, tail).Slice()
	if err != nil {
		return fmt.Errorf("redishistory: publish %q: %w", m.Topic, err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redishistory: publish %q: unexpected reply %v", m.Topic, res)
	}
	off, _ := res[0].(int64)
	epoch, _ := res[1].(string)
	// The caller's copy learns its position too; subscribers get theirs
	// from the envelope.
	m.Offset, m.Epoch = uint64(off), epoch
	return nil
}

// Since implements history.Store.
func (s *Store) Since(ctx context.Context, topic string, since history.Position, limit int) (history.Result, error) {
	var res history.Result
	after := since.Offset
	raw, err := sinceScript.Run(ctx, s.client, s.keys(topic),
		strconv.FormatUint(after, 10), max(limit, 0), history.NewEpoch(), s.opts.TTL.Milliseconds()).Slice()
	if err != nil {
		return res, fmt.Errorf("redishistory: since %q: %w", topic, err)
	}
	if len(raw) != 3 {
		return res, fmt.Errorf("redishistory: since %q: unexpected reply", topic)
	}
	epoch, _ := raw[0].(string)
	top, _ := raw[1].(int64)
	entries, _ := raw[2].([]any)
	res.Top = history.Position{Offset: uint64(top), Epoch: epoch}
	if since.Epoch != epoch || after > res.Top.Offset {
		return res, nil
	}
	// XREVRANGE gave newest first.
	res.Messages = make([]*pubsub.Message, 0, len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		m, err := decodeEntry(entries[i])
		if err != nil {
			return history.Result{}, fmt.Errorf("redishistory: since %q: %w", topic, err)
		}
		res.Messages = append(res.Messages, m)
	}
	missed := res.Top.Offset - after
	res.Complete = uint64(len(res.Messages)) == missed &&
		(missed == 0 || res.Messages[0].Offset == after+1)
	return res, nil
}

var errEntry = errors.New("malformed stream entry")

// decodeEntry reads one XRANGE entry: [id, ["m", envelope]].
func decodeEntry(e any) (*pubsub.Message, error) {
	parts, _ := e.([]any)
	if len(parts) != 2 {
		return nil, errEntry
	}
	fields, _ := parts[1].([]any)
	if len(fields) != 2 {
		return nil, errEntry
	}
	env, _ := fields[1].(string)
	m, err := envelope.Decode([]byte(env))
	if err != nil {
		return nil, err
	}
	if m.Offset == 0 {
		return nil, errEntry
	}
	return m, nil
}

// DenseOffsets implements history.Dense: the offset counter of a topic is
// incremented once per broadcast.
func (s *Store) DenseOffsets() bool { return true }
