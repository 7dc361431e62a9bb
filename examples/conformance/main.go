// Command conformance serves the app that black-box suites of real Phoenix
// clients drive (see docs/conformance.md): every protocol feature, on the
// routes room:* (with presence) and bench:*, plus two HTTP helpers.
//
//	go run ./examples/conformance -addr 127.0.0.1:4000
//
// Ratings live in memory, or in a SQLite file with -db PATH, which several
// processes may share: each rating change is an optimistic, versioned write.
//
// Several processes form a cluster when they share a broker:
//
//	go run ./examples/conformance -addr 127.0.0.1:4001 -node n1 -pubsub redis://127.0.0.1:6379
//	go run ./examples/conformance -addr 127.0.0.1:4002 -node n2 -pubsub redis://127.0.0.1:6379
//
// (or nats://HOST:PORT). Broadcasts, disconnects and presence then span the
// nodes, and a LongPoll request may land on any of them. Node names must be
// unique. Every node must sign LongPoll sessions with the same key: set it
// in PHX_LONGPOLL_KEY, or leave it unset to use a development key that is
// no secret. -presence-down and -presence-broadcast tune how fast a dead
// node's users leave the others' presence lists (defaults 4s and 1.5s).
//
// Topics feed:* are recoverable (docs/recovery.md): their history lives in
// memory, or in Redis Streams / NATS JetStream in a cluster; -history-size
// and -history-ttl bound it.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/phxgo/phx/examples/internal/serve"
	"github.com/phxgo/phx/socket/pubsub/history"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4000", "listen address")
	ps := flag.String("pubsub", "", "cluster PubSub: redis://HOST:PORT or nats://HOST:PORT (default in-process)")
	node := flag.String("node", "", "this node's name in the cluster (default host name and pid)")
	db := flag.String("db", "", "SQLite file holding users and ratings (default in-memory)")
	down := flag.Duration("presence-down", 0, "how long a silent node's presences stay listed (default 4s)")
	beat := flag.Duration("presence-broadcast", 0, "presence heartbeat period (default 1.5s)")
	hsize := flag.Int("history-size", 0, "broadcasts kept per feed:* topic for recovery (default 1000)")
	httl := flag.Duration("history-ttl", 0, "how long an idle feed:* history is kept (default 10m)")
	flag.Parse()
	opts := options{pubsub: *ps, node: *node, db: *db, presenceDown: *down, presenceBroadcast: *beat,
		history: history.Options{Size: *hsize, TTL: *httl}}
	if k := os.Getenv(LongPollKeyEnv); k != "" {
		opts.longPollKey = []byte(k)
	}
	if err := run(*addr, opts); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func run(addr string, opts options) error {
	level := slog.LevelWarn
	if opts.pubsub != "" {
		// Broker outages and recoveries, and peers going down and up, are
		// reported at Info: a cluster's operator wants to see them.
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	app, err := newApp(opts, logger)
	if err != nil {
		return err
	}
	return serve.Run(addr, app.handler(), app.shutdown)
}
