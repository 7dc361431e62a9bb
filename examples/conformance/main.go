// Command conformance serves the app that black-box suites of real Phoenix
// clients drive (see docs/conformance.md): every protocol feature, on the
// routes room:* (with presence) and bench:*, plus two HTTP helpers.
//
//	go run ./examples/conformance -addr 127.0.0.1:4000
//
// Ratings live in memory, or in a SQLite file with -db PATH, which several
// processes may share: each rating change is an optimistic, versioned write.
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
	addr := flag.String("addr", "127.0.0.1:4000", "listen address")
	ps := flag.String("pubsub", "", "cluster PubSub: redis://HOST:PORT or nats://HOST:PORT (default in-process)")
	node := flag.String("node", "", "this node's name in the cluster (default host name and pid)")
	db := flag.String("db", "", "SQLite file holding users and ratings (default in-memory)")
	flag.Parse()
	if err := run(*addr, options{pubsub: *ps, node: *node, db: *db}); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func run(addr string, opts options) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := newApp(opts, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: app.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
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
	// Stop accepting first, then close the sockets (hijacked connections are
	// not tracked by http.Server) and flush the app's state.
	shutErr := httpSrv.Shutdown(ctx)
	if err := app.shutdown(ctx); err != nil {
		return err
	}
	if shutErr != nil && !errors.Is(shutErr, http.ErrServerClosed) {
		return shutErr
	}
	return nil
}
