// Command chat is a chat room that the unmodified phoenix.js client talks to.
//
//	go run ./examples/chat
//
// then open http://localhost:4000 in two browser windows. Add
// ?transport=longpoll to the page's address to use the LongPoll transport.
// The page loads phoenix.js from a public CDN, or from a local npm install
// (node_modules/phoenix) when one is found.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "localhost:4000", "listen address")
	phoenixJS := flag.String("phoenix-js", "", "path of a local phoenix.min.js (default: look in node_modules, else use a CDN)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*addr, *phoenixJS, logger); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

func run(addr, phoenixJS string, logger *slog.Logger) error {
	c := newChat(logger, findPhoenixJS(phoenixJS))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		return err
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The sockets close while http.Server.Shutdown waits: it waits for
	// in-flight requests, held LongPoll polls among them, which only the
	// socket server's Shutdown answers early (docs/operations.md).
	sockets := make(chan error, 1)
	srv.RegisterOnShutdown(func() { sockets <- c.shutdown(ctx) })
	err = srv.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, <-sockets)
}

// findPhoenixJS returns the path of a local phoenix.min.js, or "".
func findPhoenixJS(flagPath string) string {
	if flagPath != "" {
		return flagPath
	}
	for _, p := range []string{
		"node_modules/phoenix/priv/static/phoenix.min.js",
		"examples/conformance/js/node_modules/phoenix18/priv/static/phoenix.min.js",
		"../conformance/js/node_modules/phoenix18/priv/static/phoenix.min.js",
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
