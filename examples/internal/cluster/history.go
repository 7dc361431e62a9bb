package cluster

import (
	"fmt"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/history/redishistory"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

// History returns the history store that goes with ps, as returned by Open:
// in memory for the in-process PubSub, in Redis Streams on the Redis
// adapter. closeStore releases what the store holds; call it before
// closePS.
func History(ps pubsub.PubSub, opts history.Options) (store history.Store, closeStore func() error, err error) {
	switch u := pubsub.Underlying(ps).(type) {
	case *pubsub.Local:
		return history.NewMemory(opts), func() error { return nil }, nil
	case *redis.PubSub:
		return redishistory.New(u.Client(), redishistory.Options{Options: opts}), func() error { return nil }, nil
	default:
		return nil, nil, fmt.Errorf("%w: no history store for %T", history.ErrUnsupported, u)
	}
}
