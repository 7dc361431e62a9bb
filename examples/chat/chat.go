package main

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/phxgo/phx/examples/internal/serve"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket"
	phxprom "github.com/phxgo/phx/socket/metrics/prometheus"
	"github.com/phxgo/phx/socket/pubsub"
)

//go:embed index.html
var assets embed.FS

// Visitor is a connection's assigns: who is chatting, fixed at connect.
type Visitor struct {
	Name string
}

// Message is one chat line.
type Message struct {
	User string `json:"user"`
	Body string `json:"body"`
	At   int64  `json:"at"` // unix milliseconds
}

type chat struct {
	srv       *socket.Server[Visitor]
	presence  *presence.Tracker
	history   *history
	phoenixJS serve.PhoenixJS
	page      *template.Template
	// metrics is the chat's own registry, served at /metrics. Not the
	// global one: tests (and apps embedding several servers) can then
	// create chats side by side without duplicate-registration panics.
	metrics *prometheus.Registry
}

// newChat builds the chat on ps: pubsub.NewLocal for one node, or a cluster
// adapter shared by several nodes, which then also need the same
// longPollKey (nil: a random key, right for one node).
func newChat(logger *slog.Logger, phoenixJS serve.PhoenixJS, ps pubsub.PubSub, longPollKey []byte) *chat {
	c := &chat{history: newHistory(50), phoenixJS: phoenixJS, metrics: prometheus.NewRegistry()}
	c.page = template.Must(template.ParseFS(assets, "index.html"))
	// Go runtime and process figures (goroutines, heap, open file
	// descriptors) next to the socket counters: the ones to watch for leaks
	// and for the descriptor limit.
	c.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := phxprom.New(c.metrics)
	if err != nil {
		panic(err) // a fresh registry cannot hold a duplicate
	}
	// The socket server and the presence tracker share one PubSub, so that
	// presence diffs reach the room's subscribers.
	c.presence = presence.New(ps, presence.WithLogger(logger))
	router := channel.NewRouter[Visitor]()
	router.Handle("room:*", func() channel.Handler[Visitor] { return &room{history: c.history, presence: c.presence} })
	c.srv = socket.New(socket.Config[Visitor]{
		Authenticator: socket.AuthenticatorFunc[Visitor](authenticate),
		Router:        router,
		PubSub:        ps,
		LongPollKey:   longPollKey,
		Metrics:       m,
		Logger:        logger,
	})
	return c
}

// authenticate accepts any visitor with a name of 1 to 32 characters. A real
// app would verify a signed token here (see package socket/token).
func authenticate(_ context.Context, req *socket.ConnectRequest) (Visitor, error) {
	name := strings.TrimSpace(req.Params.Get("name"))
	if name == "" || utf8.RuneCountInString(name) > 32 {
		return Visitor{}, errors.New("a name of 1 to 32 characters is required")
	}
	return Visitor{Name: name}, nil
}

func (c *chat) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/socket/", c.srv)
	mux.HandleFunc("GET /{$}", c.index)
	// Metrics are served from the same listener for a self-contained
	// example; in production, put them on an internal address or behind
	// authentication (see docs/operations.md).
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics, promhttp.HandlerOpts{}))
	c.phoenixJS.Mount(mux)
	return mux
}

func (c *chat) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = c.page.Execute(w, map[string]string{"PhoenixJS": c.phoenixJS.Src()})
}

func (c *chat) shutdown(ctx context.Context) error {
	return errors.Join(c.srv.Shutdown(ctx), c.presence.Shutdown(ctx))
}

// room is one chat room channel.
type room struct {
	history  *history
	presence *presence.Tracker
}

// AfterJoin shows the visitor as online (one meta per tab) and sends the
// joiner the current list; the tracker removes the meta when the channel ends.
func (r *room) AfterJoin(c *channel.Context[Visitor]) (channel.Result, error) {
	if _, err := r.presence.Track(c, c.Assigns().Name, map[string]any{"online_at": time.Now().Unix()}); err != nil {
		return channel.NoReply(), err
	}
	return channel.NoReply(), r.presence.PushState(c)
}

func (r *room) Join(c *channel.Context[Visitor], _ channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]any{"messages": r.history.list(c.Topic())}), nil
}

func (r *room) HandleIn(c *channel.Context[Visitor], event string, p channel.Payload) (channel.Result, error) {
	if event != "new_msg" {
		return channel.Error(map[string]string{"reason": "unknown event"}), nil
	}
	var in struct {
		Body string `json:"body"`
	}
	if err := p.Decode(&in); err != nil || strings.TrimSpace(in.Body) == "" {
		return channel.Error(map[string]string{"reason": "body required"}), nil
	}
	if utf8.RuneCountInString(in.Body) > 2000 {
		return channel.Error(map[string]string{"reason": "message too long"}), nil
	}
	msg := Message{User: c.Assigns().Name, Body: in.Body, At: time.Now().UnixMilli()}
	r.history.add(c.Topic(), msg)
	return channel.OK(nil), c.Broadcast("new_msg", msg)
}

// history keeps the last messages of each room.
type history struct {
	mu    sync.Mutex
	max   int
	rooms map[string][]Message
}

func newHistory(max int) *history { return &history{max: max, rooms: map[string][]Message{}} }

func (h *history) add(topic string, m Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := append(h.rooms[topic], m)
	if len(list) > h.max {
		list = append([]Message(nil), list[len(list)-h.max:]...)
	}
	h.rooms[topic] = list
}

func (h *history) list(topic string) []Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Message{}, h.rooms[topic]...)
}
