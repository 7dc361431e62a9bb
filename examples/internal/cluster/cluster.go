// Package cluster opens the PubSub an example runs on: in-process, or a
// Redis or NATS adapter chosen by URL, so that several nodes of an example
// share broadcasts and presence.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/nats"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

// Open returns the in-process PubSub when rawURL is empty, or a
// cluster adapter connected to the broker at redis://HOST:PORT or
// nats://HOST:PORT. closePS releases the adapter, then its connection.
func Open(rawURL, node string, logger *slog.Logger) (ps pubsub.PubSub, closePS func() error, err error) {
	if rawURL == "" {
		return pubsub.NewLocal(node), func() error { return nil }, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-pubsub %q: %w", rawURL, err)
	}
	// New waits for the broker to confirm the subscription: a node that
	// cannot reach it at start-up refuses to start rather than run deaf.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch u.Scheme {
	case "redis", "rediss":
		ropts, err := goredis.ParseURL(rawURL)
		if err != nil {
			return nil, nil, fmt.Errorf("-pubsub %q: %w", rawURL, err)
		}
		client := goredis.NewClient(ropts)
		rps, err := redis.New(ctx, client, redis.Options{Node: node, Logger: logger})
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("-pubsub %q: %w", rawURL, err), client.Close())
		}
		return pubsub.Tolerant(rps, logger), func() error { return errors.Join(rps.Close(), client.Close()) }, nil
	case "nats", "tls":
		nc, err := natsgo.Connect(rawURL,
			natsgo.Name(node),
			natsgo.MaxReconnects(-1), // never give up on the cluster
			natsgo.ReconnectWait(250*time.Millisecond),
		)
		if err != nil {
			return nil, nil, fmt.Errorf("-pubsub %q: connect: %w", rawURL, err)
		}
		nps, err := nats.New(ctx, nc, nats.Options{Node: node, Logger: logger})
		if err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("-pubsub %q: %w", rawURL, err)
		}
		return pubsub.Tolerant(nps, logger), func() error {
			err := nps.Close()
			// Close drops what nats.go still buffers; the tracker's
			// goodbye is among it.
			if ferr := nc.FlushTimeout(time.Second); ferr != nil && !errors.Is(ferr, natsgo.ErrConnectionClosed) {
				logger.Warn("nats flush at shutdown", "err", ferr)
			}
			nc.Close()
			return err
		}, nil
	}
	return nil, nil, fmt.Errorf("-pubsub %q: want redis://HOST:PORT or nats://HOST:PORT", rawURL)
}
