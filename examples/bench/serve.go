package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/pubsub"
)

// runServer serves the bench:* routes and POST /api/broadcast as
// examples/conformance does (any token accepted), so that the server side
// can be profiled under this tool's own load: -cpuprofile for the whole
// run; SIGUSR1 prints memory statistics and writes -memprofile.
//
// With nodeOptions (non-nil, from -pubsub), the server is one node of
// `bench cluster`: see clusternode.go.
func runServer(addr, cpuprofile, memprofile string, nopts *nodeOptions) error {
	var cn *clusterNode
	if nopts != nil {
		var err error
		if cn, err = openClusterNode(*nopts); err != nil {
			return err
		}
		defer func() { _ = cn.close() }()
	}
	srv, mux := benchAppWith(cn)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	stopProfile, err := startProfile(cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("listening on http://%s pid %d\n", ln.Addr(), os.Getpid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	for s := range sig {
		if s != syscall.SIGUSR1 {
			break
		}
		// SIGUSR1: where the sockets' memory goes, after a collection.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("connections %d heap_inuse_kib %d stack_inuse_kib %d goroutines %d\n",
			srv.Connections(), ms.HeapInuse>>10, ms.StackInuse>>10, runtime.NumGoroutine())
		if memprofile != "" {
			if f, err := os.Create(memprofile); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	return srv.Shutdown(ctx)
}

// benchApp is the server of -serve: the socket at /socket and the
// broadcast helper, with any token accepted.
func benchApp() (*socket.Server[string], *http.ServeMux) { return benchAppWith(nil) }

// benchAppWith is benchApp, on a cluster node's PubSub with its lobby:*
// presence route when cn is not nil. GET /api/stats is served either way.
func benchAppWith(cn *clusterNode) (*socket.Server[string], *http.ServeMux) {
	router := channel.NewRouter[string]()
	router.Handle("bench:*", func() channel.Handler[string] { return benchHandler{} })
	var ps pubsub.PubSub
	if cn != nil {
		ps = cn.ps
		router.Handle("lobby:*", func() channel.Handler[string] { return &presenceHandler{cn: cn} })
	}
	srv := socket.New(socket.Config[string]{
		PubSub: ps,
		Authenticator: socket.AuthenticatorFunc[string](func(_ context.Context, req *socket.ConnectRequest) (string, error) {
			return req.Params.Get("token"), nil
		}),
		Router:          router,
		SkipOriginCheck: true,
	})
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	mux.HandleFunc("GET /api/stats", statsHandler(srv.Connections, cn))
	mux.HandleFunc("POST /api/broadcast", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		topic, event := r.URL.Query().Get("topic"), r.URL.Query().Get("event")
		if err != nil || topic == "" || event == "" || !json.Valid(body) {
			http.Error(w, "need topic, event and a JSON body", http.StatusBadRequest)
			return
		}
		if err := srv.Broadcast(r.Context(), topic, event, json.RawMessage(body)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return srv, mux
}

// benchHandler is the conformance app's bench channel.
type benchHandler struct{}

func (benchHandler) Join(*channel.Context[string], channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

func (benchHandler) HandleIn(c *channel.Context[string], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "echo":
		return channel.OK(p), nil
	case "shout":
		return channel.NoReply(), c.Broadcast("shout", json.RawMessage(p.JSON()))
	}
	return channel.Error(map[string]string{"reason": "unknown event " + event}), nil
}
