package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/ephemeral"
	"github.com/phxgo/phx/examples/internal/cluster"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
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
	// history limits each feed topic's history (history.DefaultSize and
	// history.DefaultTTL when zero).
	history history.Options
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
	// ps is the PubSub every broadcast goes through; recovery numbers
	// and records the broadcasts of feed:* in the history store.
	ps           pubsub.PubSub
	recovery     *channel.Recovery
	closeHistory func() error
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
	ps, closePS, err := cluster.Open(opts.pubsub, node, logger)
	if err != nil {
		return nil, err
	}
	store, closeDB, err := openStore(context.Background(), opts.db)
	if err != nil {
		return nil, errors.Join(err, closePS())
	}
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	hstore, closeHistory, err := cluster.History(hctx, ps, opts.history)
	cancel()
	if errors.Is(err, history.ErrUnsupported) {
		// A NATS server without JetStream: everything but feed:*'s
		// recovery still works.
		logger.Warn("feed:* is not recoverable on this pubsub", "err", err)
		hstore, closeHistory, err = nil, func() error { return nil }, nil
	}
	if err != nil {
		return nil, errors.Join(err, closeDB(), closePS())
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
		users:        ephemeral.New(store, ephemeral.WithConflictRetries(1000)),
		store:        store,
		closeDB:      closeDB,
		closePS:      closePS,
		ps:           ps,
		closeHistory: closeHistory,
	}
	var feedOpts []channel.RouteOption
	if hstore != nil {
		// feed:* replays what a rejoining client missed; the replay must
		// fit the outbound queue, so the cap stays at the default size.
		a.recovery = channel.NewRecovery(hstore, channel.RecoveryOptions{})
		feedOpts = append(feedOpts, channel.Recoverable(a.recovery))
	}

	router := channel.NewRouter[User]()
	router.Handle("room:*", func() channel.Handler[User] { return &room{app: a} }, channel.Intercept("shout"))
	router.Handle("bench:*", func() channel.Handler[User] { return bench{} })
	router.Handle("feed:*", func() channel.Handler[User] { return feed{} }, feedOpts...)

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
		a.closeHistory(),
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
	send := a.srv.Broadcast
	if strings.HasPrefix(topic, "feed:") && a.recovery != nil {
		// A plain broadcast would carry no position and could not be
		// replayed; feed topics are numbered by the history store.
		send = func(ctx context.Context, topic, event string, payload any) error {
			return a.recovery.Broadcast(ctx, a.ps, topic, event, payload)
		}
	}
	if err := send(r.Context(), topic, event, json.RawMessage(body)); err != nil {
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
