// Command lobby is the game lobby of the ephemeral-services story: players
// log in, see who is online with their ratings, challenge each other, and
// report results; ratings change (Elo, K=32) through one ephemeral service
// that owns each player's fresh state, and every socket is told the new
// ratings instead of trusting its own copy.
//
//	go run ./examples/lobby
//
// then open the printed address in two browser windows and log in as two
// players (alice, bob, carol and dave exist; any other name signs up).
//
// Players live in a SQLite file, by default phx-lobby.db in the system's
// temporary directory (-db to choose another), created and seeded on the
// first start. Login tokens are Phoenix.Token-compatible, signed with the
// secret in $LOBBY_SECRET_KEY_BASE, or with a random one, so that logins
// end when the server restarts. The page loads phoenix.js from a public
// CDN, or from a local npm install when one is found.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/phxgo/phx/examples/internal/serve"
)

func main() {
	addr := flag.String("addr", "localhost:4000", "listen address")
	dbPath := flag.String("db", filepath.Join(os.TempDir(), "phx-lobby.db"), "SQLite file holding the players")
	phoenixJS := flag.String("phoenix-js", "", "path of a local phoenix.min.js (default: look in node_modules, else use a CDN)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	secret := os.Getenv("LOBBY_SECRET_KEY_BASE")
	if secret == "" {
		secret = rand.Text() // 128 random bits, as 26 characters
	}
	host, _ := os.Hostname()
	cfg := config{
		db:        *dbPath,
		secret:    secret,
		phoenixJS: serve.FindPhoenixJS(*phoenixJS),
		node:      host + "-" + strconv.Itoa(os.Getpid()),
		logger:    logger,
	}
	if err := run(*addr, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "lobby:", err)
		os.Exit(1)
	}
}

func run(addr string, cfg config) error {
	l, err := newLobby(cfg)
	if err != nil {
		return err
	}
	cfg.logger.Info("players", "db", cfg.db)
	return serve.Run(addr, l.handler(), l.shutdown)
}
