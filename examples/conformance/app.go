package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/ephemeral"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/nats"
	"github.com/phxgo/phx/socket/pubsub/redis"
)

// User is the assigns of a connection: an immutable snapshot taken at
// connect. Handlers read it; nothing can change it.
type User struct {
	ID       int
	Username string
	Rating   int
}

type options struct {
	pubsub, node, db string
	// presenceDown and presenceBroadcast override the tracker's down and
	// broadcast periods when positive (presence.WithDownPeriod,
	// presence.WithBroadcastPeriod).
	presenceDown, presenceBroadcast time.Duration
	// longPollKey signs LongPoll session tokens; nil means a random key,
	// or devLongPollKey in a cluster.
	longPollKey []byte
}

// LongPollKeyEnv names the environment variable holding the LongPoll
// session key (any string; every node of a cluster needs the same one).
const LongPollKeyEnv = "PHX_LONGPOLL_KEY"

// devLongPollKey is the key cluster nodes use when LongPollKeyEnv is unset.
// Every node must sign LongPoll tokens with the same key so that any node
// can verify a session and relay its requests to the owner; a key everyone
// can derive is fine for a test app and wrong for anything else.
var devLongPollKey = func() []byte {
	k := sha256.Sum256([]byte("phx conformance app: development LongPoll key, not a secret"))
	return k[:]
}()

// app wires the socket server, its routes and the HTTP helpers, and owns
// the state the room handlers share: the presence tracker and the user
// service with its store.
type app struct {
	srv     *socket.Server[User]
	tracker *presence.Tracker
	users   *ephemeral.Service[string, Profile]
	store   profileStore
	closeDB func() error
	// closePS closes the cluster adapter and its broker connection; it
	// runs last so that the tracker's goodbye still reaches the peers.
	closePS func() error
}

var seedUsers = map[string]User{
	"alice": {ID: 1, Username: "alice", Rating: 1500},
	"bob":   {ID: 2, Username: "bob", Rating: 1400},
	"carol": {ID: 3, Username: "carol", Rating: 1600},
}

func newApp(opts options, logger *slog.Logger) (*app, error) {
	node := opts.node
	if node == "" {
		host, _ := os.Hostname()
		node = host + "-" + strconv.Itoa(os.Getpid())
	}
	lpKey := opts.longPollKey
	if len(lpKey) == 0 && opts.pubsub != "" {
		lpKey = devLongPollKey
	}
	ps, closePS, err := openPubSub(opts.pubsub, node, logger)
	if err != nil {
		return nil, err
	}
	store, closeDB, err := openStore(context.Background(), opts.db)
	if err != nil {
		return nil, errors.Join(err, closePS())
	}
	popts := []presence.Option{presence.WithLogger(logger)}
	if opts.presenceBroadcast > 0 {
		popts = append(popts, presence.WithBroadcastPeriod(opts.presenceBroadcast))
	}
	if opts.presenceDown > 0 {
		popts = append(popts, presence.WithDownPeriod(opts.presenceDown))
	}
	// One PubSub for the socket server and the tracker: presence diffs
	// reach clients as broadcasts on the room's topic.
	a := &app{
		tracker: presence.New(ps, popts...),
		// Nodes sharing one -db file all write the same three keys, so a
		// save may lose the race many times in a row under load.
		users:   ephemeral.New(store, ephemeral.WithConflictRetries(1000)),
		store:   store,
		closeDB: closeDB,
		closePS: closePS,
	}

	router := channel.NewRouter[User]()
	router.Handle("room:*", func() channel.Handler[User] { return &room{app: a} }, channel.Intercept("shout"))
	router.Handle("bench:*", func() channel.Handler[User] { return bench{} })

	a.srv = socket.New(socket.Config[User]{
		Authenticator:   socket.AuthenticatorFunc[User](authenticate),
		Router:          router,
		ID:              func(u User) string { return "user_socket:" + strconv.Itoa(u.ID) },
		PubSub:          ps,
		SkipOriginCheck: true, // the spec accepts any Origin
		LongPollKey:     lpKey,
		Logger:          logger,
	})
	return a, nil
}

// openPubSub returns the in-process PubSub when rawURL is empty, or a
// cluster adapter connected to the broker at redis://HOST:PORT or
// nats://HOST:PORT. closePS releases the adapter, then its connection.
func openPubSub(rawURL, node string, logger *slog.Logger) (ps pubsub.PubSub, closePS func() error, err error) {
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
		return newTolerant(rps, logger), func() error { return errors.Join(rps.Close(), client.Close()) }, nil
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
		return newTolerant(nps, logger), func() error {
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

// tolerant is a cluster adapter whose Broadcast succeeds once the local
// subscribers have the message, even if the broker did not take it. The
// adapters deliver locally before publishing and report a failed publish
// as an error; a channel handler returning that error would crash, so a
// broker outage would take down every channel that shouts. This app
// prefers Phoenix-like availability: the other nodes miss what is
// broadcast during an outage (at-most-once), and the outage is logged.
type tolerant struct {
	pubsub.PubSub
	log     *slog.Logger
	failing atomic.Bool
}

func newTolerant(ps pubsub.PubSub, logger *slog.Logger) *tolerant {
	return &tolerant{PubSub: ps, log: logger.With("pubsub_node", ps.Node())}
}

// Broadcast implements pubsub.PubSub.
func (t *tolerant) Broadcast(ctx context.Context, m *pubsub.Message) error {
	err := t.PubSub.Broadcast(ctx, m)
	switch {
	case err == nil:
		if t.failing.Swap(false) {
			t.log.Info("broadcasts reach the other nodes again")
		}
		return nil
	case errors.Is(err, pubsub.ErrClosed):
		return err // not delivered at all
	}
	if !t.failing.Swap(true) {
		t.log.Warn("broadcasts no longer reach the other nodes; delivering locally only", "err", err)
	}
	return nil
}

// authenticate accepts the three seeded users by their token param.
func authenticate(_ context.Context, req *socket.ConnectRequest) (User, error) {
	u, ok := seedUsers[req.Params.Get("token")]
	if !ok {
		return User{}, socket.ErrRefused
	}
	return u, nil
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/socket/", a.srv)
	mux.HandleFunc("POST /api/broadcast", a.broadcast)
	mux.HandleFunc("POST /api/disconnect", a.disconnect)
	return mux
}

// shutdown closes the sockets first, so that every channel's presence
// leaves and no handler uses the user service any more, then stops the
// tracker (which tells the other nodes to forget this one), flushes the
// service, closes the database and, last, leaves the cluster.
func (a *app) shutdown(ctx context.Context) error {
	return errors.Join(
		a.srv.Shutdown(ctx),
		a.tracker.Shutdown(ctx),
		a.users.Shutdown(ctx),
		a.closeDB(),
		a.closePS(),
	)
}

// broadcast: POST /api/broadcast?topic=T&event=E with a JSON object body.
func (a *app) broadcast(w http.ResponseWriter, r *http.Request) {
	topic, event := r.URL.Query().Get("topic"), r.URL.Query().Get("event")
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil || topic == "" || event == "" || !json.Valid(body) {
		http.Error(w, "need topic, event and a JSON body", http.StatusBadRequest)
		return
	}
	if err := a.srv.Broadcast(r.Context(), topic, event, json.RawMessage(body)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// disconnect: POST /api/disconnect?id=N closes every socket of user N.
func (a *app) disconnect(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if _, err := strconv.Atoi(id); err != nil {
		http.Error(w, "need a numeric id", http.StatusBadRequest)
		return
	}
	if err := a.srv.Disconnect(r.Context(), "user_socket:"+id); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errCrash = errors.New("crash requested by the client")
