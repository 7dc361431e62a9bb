// Command chat is a chat room that the unmodified phoenix.js client talks to.
//
//	go run ./examples/chat
//
// then open http://localhost:4000 in two browser windows. Add
// ?transport=longpoll to the page's address to use the LongPoll transport.
// The page loads phoenix.js from a public CDN, or from a local npm install
// (node_modules/phoenix) when one is found.
//
// Two nodes sharing broadcasts and presence through Redis (or NATS):
//
//	redis-server --port 6379 &
//	export PHX_LONGPOLL_KEY=$(head -c 32 /dev/urandom | base64)
//	go run ./examples/chat -addr localhost:4000 -pubsub redis://127.0.0.1:6379 -node a &
//	go run ./examples/chat -addr localhost:4001 -pubsub redis://127.0.0.1:6379 -node b
//
// A visitor on :4000 and one on :4001 see each other's messages and each
// other in the online list; LongPoll requests may land on either node once
// both share PHX_LONGPOLL_KEY. Each node keeps its own short message history.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/phxgo/phx/examples/internal/cluster"
	"github.com/phxgo/phx/examples/internal/serve"
)

func main() {
	addr := flag.String("addr", "localhost:4000", "listen address")
	phoenixJS := flag.String("phoenix-js", "", "path of a local phoenix.min.js (default: look in node_modules, else use a CDN)")
	psURL := flag.String("pubsub", "", "cluster PubSub: redis://HOST:PORT or nats://HOST:PORT (default in-process)")
	node := flag.String("node", "", "this node's name in the cluster (default host name and pid)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*addr, *phoenixJS, *psURL, *node, logger); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

func run(addr, phoenixJS, psURL, node string, logger *slog.Logger) error {
	if node == "" {
		host, _ := os.Hostname()
		node = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	ps, closePS, err := cluster.Open(psURL, node, logger)
	if err != nil {
		return err
	}
	defer closePS()
	var lpKey []byte
	if k := os.Getenv("PHX_LONGPOLL_KEY"); k != "" {
		lpKey = []byte(k)
	}
	c := newChat(logger, serve.FindPhoenixJS(phoenixJS), ps, lpKey)
	return serve.Run(addr, c.handler(), c.shutdown)
}
