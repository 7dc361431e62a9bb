// Command supabase serves the realtime part of a Supabase app from Go: the
// unmodified @supabase/realtime-js (or supabase-js) connects to it as to
// Supabase Realtime, with broadcast, presence and tokens that expire.
//
//	go run ./examples/supabase -addr 127.0.0.1:4000
//
// A client points realtime-js at ws://ADDR/realtime/v1 with an API key
// signed with -jwt-secret (HS256), as Supabase's anon key is:
//
//	new RealtimeClient("ws://127.0.0.1:4000/realtime/v1", {params: {apikey: KEY}})
//
// REST broadcast is at POST /realtime/v1/api/broadcast. Private channels
// may be joined by tokens whose role is "admin". POST /api/disconnect?sub=S
// closes the sockets whose API key has subject S (for tests). The page at /
// is a small realtime-js chat; -node-modules names the npm install it loads
// realtime-js from. -pubsub redis://HOST:PORT or nats://HOST:PORT joins
// several processes into one cluster (broadcasts and presence span them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/supabase"
	"github.com/phxgo/phx/examples/internal/cluster"
	"github.com/phxgo/phx/examples/internal/serve"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket"
)

// devSecret signs tokens when -jwt-secret is not given; it is no secret.
const devSecret = "phx-supabase-example-jwt-secret-not-for-production"

func main() {
	addr := flag.String("addr", "127.0.0.1:4000", "listen address")
	secret := flag.String("jwt-secret", devSecret, "HS256 secret the API keys and access tokens are signed with")
	ps := flag.String("pubsub", "", "cluster PubSub: redis://HOST:PORT or nats://HOST:PORT (default in-process)")
	node := flag.String("node", "", "this node's name in the cluster")
	modules := flag.String("node-modules", "", "an npm install holding @supabase/realtime-js, for the page (default: the test suites')")
	flag.Parse()
	if err := run(*addr, *secret, *ps, *node, *modules); err != nil {
		fmt.Fprintln(os.Stderr, "supabase:", err)
		os.Exit(1)
	}
}

func run(addr, secret, psURL, node, modules string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if node == "" {
		node = fmt.Sprintf("supabase-%d", os.Getpid())
	}
	ps, closePS, err := cluster.Open(psURL, node, logger)
	if err != nil {
		return err
	}
	verifier, err := supabase.NewJWTVerifier(supabase.JWTConfig{Secret: []byte(secret)})
	if err != nil {
		return errors.Join(err, closePS())
	}
	tracker := presence.New(ps, presence.WithLogger(logger))
	authorize := func(_ context.Context, r supabase.AuthorizeRequest) error {
		if r.Claims.Role() == "admin" {
			return nil
		}
		return errors.New("role is not admin")
	}
	profile := supabase.New(supabase.Config[supabase.Claims]{Verifier: verifier, Presence: tracker, Authorize: authorize})
	router := channel.NewRouter[supabase.Claims]()
	router.Handle(supabase.TopicPrefix+"*", profile.NewHandler)
	srv := socket.New(socket.Config[supabase.Claims]{
		Authenticator:   supabase.Authenticator(verifier),
		Router:          router,
		ID:              func(c supabase.Claims) string { return "apikey:" + c.Subject() },
		PubSub:          ps,
		SkipOriginCheck: true, // API-key auth, no cookies: any origin may connect, as with Supabase
		Logger:          logger,
	})

	mux := http.NewServeMux()
	mux.Handle("/realtime/v1/api/broadcast", supabase.BroadcastHandler(srv, verifier, authorize))
	mux.Handle("/realtime/v1/", srv)
	mux.HandleFunc("POST /api/disconnect", func(w http.ResponseWriter, r *http.Request) {
		if err := srv.Disconnect(r.Context(), "apikey:"+r.URL.Query().Get("sub")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mountPage(mux, findModules(modules))

	shutdown := func(ctx context.Context) error {
		return errors.Join(srv.Shutdown(ctx), tracker.Shutdown(ctx), closePS())
	}
	return serve.Run(addr, mux, shutdown)
}

// findModules returns the npm install the page loads realtime-js from.
func findModules(flagPath string) string {
	for _, p := range []string{flagPath, "node_modules", "examples/conformance/js/node_modules", "../conformance/js/node_modules"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(p, "@supabase", "realtime-js", "dist", "module", "index.js")); err == nil {
			return p
		}
	}
	return ""
}

// mountPage serves the demo page and, under /vendor/, the ES modules of
// realtime-js and its dependencies. realtime-js ships no browser bundle and
// its modules import each other without the ".js" extension browsers need,
// so a request without an extension gets the ".js" file.
func mountPage(mux *http.ServeMux, modules string) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if modules == "" {
			_, _ = w.Write([]byte("<p>run npm install @supabase/realtime-js (or pass -node-modules) to get the page</p>"))
			return
		}
		_, _ = w.Write(page)
	})
	if modules == "" {
		return
	}
	files := http.Dir(modules)
	mux.HandleFunc("GET /vendor/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/vendor")
		if !strings.HasPrefix(name, "/@supabase/") && !strings.HasPrefix(name, "/tslib/") {
			http.NotFound(w, r)
			return
		}
		if filepath.Ext(name) == "" {
			name += ".js"
		}
		f, err := files.Open(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeContent(w, r, "", st.ModTime(), f)
	})
}
