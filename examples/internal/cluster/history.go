package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/history/natshistory"
	"github.com/phxgo/phx/socket/pubsub/history/redishistory"
	"github.com/phxgo/phx/socket/pubsub/nats"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

// History returns the history store that goes with ps, as returned by Open:
// in memory for the in-process PubSub, in Redis Streams on the Redis
// adapter, in a JetStream stream on the NATS adapter. A NATS server without
// JetStream (started without -js) has no place for histories: the error
// then matches history.ErrUnsupported. closeStore releases what the store
// holds; call it before closePS.
func History(ctx context.Context, ps pubsub.PubSub, opts history.Options) (store history.Store, closeStore func() error, err error) {
	switch u := pubsub.Underlying(ps).(type) {
	case *pubsub.Local:
		return history.NewMemory(opts), func() error { return nil }, nil
	case *redis.PubSub:
		return redishistory.New(u.Client(), redishistory.Options{Options: opts}), func() error { return nil }, nil
	case *nats.PubSub:
		s, err := natshistory.New(ctx, u, natshistory.Options{Options: opts})
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, nil, fmt.Errorf("%w: nats-server runs without JetStream (-js): %w", history.ErrUnsupported, err)
		}
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	default:
		return nil, nil, fmt.Errorf("%w: no history store for %T", history.ErrUnsupported, u)
	}
}
