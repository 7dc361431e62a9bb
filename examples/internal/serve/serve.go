// Package serve runs an example's HTTP server the way every example needs:
// listen, announce the address, and shut down gracefully on SIGINT/SIGTERM.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Run serves h on addr and prints "listening on http://ADDR" once it accepts
// connections (test harnesses wait for that line). On SIGINT or SIGTERM it
// stops accepting and calls shutdown, within 10 s in all.
//
// shutdown starts as soon as http.Server.Shutdown does, not after it: that
// call waits for in-flight requests, held LongPoll polls among them, which
// only the socket server's Shutdown answers early; and it does not track
// hijacked WebSocket connections at all.
func Run(addr string, h http.Handler, shutdown func(context.Context) error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, shutdown(context.Background()))
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	srv.RegisterOnShutdown(func() { done <- shutdown(ctx) })
	err = srv.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, err, <-done)
}
