package socket

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/transport"
)

// Defaults of the limits in Config.
const (
	DefaultMaxFrameSize  = 8 << 20 // 8 MiB: Phoenix has no limit; this is far above what apps send
	DefaultIdleTimeout   = 60 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultOutboundQueue = 4096 // frames queued for one connection before it is closed as a slow consumer
	// DefaultMaxPendingConnects bounds connects in progress at once (see
	// Config.MaxPendingConnects): far above what a node meets in normal
	// traffic, and enough to keep every core busy with handshakes in a
	// reconnect storm.
	DefaultMaxPendingConnects = 512
)

// Authenticator turns connect parameters into the application's assigns, or
// refuses the connection by returning an error (HTTP 403, as Phoenix answers
// a connect that returns :error).
type Authenticator[A any] interface {
	Authenticate(ctx context.Context, req *ConnectRequest) (A, error)
}

// AuthenticatorFunc adapts a function to an Authenticator.
type AuthenticatorFunc[A any] func(ctx context.Context, req *ConnectRequest) (A, error)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc[A]) Authenticate(ctx context.Context, req *ConnectRequest) (A, error) {
	return f(ctx, req)
}

// ConnectRequest is what an Authenticator sees of a connecting client.
type ConnectRequest struct {
	Params     Params      // decoded query parameters (vsn included), last value wins
	Query      url.Values  // the raw query
	Header     http.Header // request headers
	Origin     string      // the Origin header, already checked
	RemoteAddr string      // the peer's address
	// AuthToken is the token phoenix.js 1.8 passes with the authToken option
	// (in Sec-WebSocket-Protocol, or X-Phoenix-AuthToken over LongPoll).
	AuthToken string
	Transport string // "websocket" or "longpoll"

	expiry time.Time
}

// SetExpiry gives the connection an expiry, typically the expiry of the
// token it authenticated with (a JWT's exp, a Phoenix.Token's max age). When
// it passes, the server closes the connection with close code 4001 "token
// expired" and its channels end with channel.Expired. phoenix.js then
// reconnects, evaluating its params again: pass them as a function
// (`new Socket(url, {params: () => ({token: currentToken()})})`) so that the
// reconnect carries a fresh token. For a per-channel expiry that a client
// can refresh without reconnecting, see channel.Context.SetExpiry.
func (r *ConnectRequest) SetExpiry(t time.Time) { r.expiry = t }

// Expiry returns the expiry set by SetExpiry, or the zero time.
func (r *ConnectRequest) Expiry() time.Time { return r.expiry }

// ErrRefused is a convenient error for an Authenticator to refuse with.
var ErrRefused = errors.New("socket: connection refused")

// Config configures a Server. Only Authenticator and Router are required; the
// zero value of every other field is a documented default.
type Config[A any] struct {
	// Authenticator turns connect params into assigns. Required.
	Authenticator Authenticator[A]
	// Router routes topics to channel handlers. Required.
	Router *channel.Router[A]
	// ID names a socket from its assigns ("user_socket:42"), so that
	// Disconnect can close it. nil or "" means the socket has no id.
	ID func(A) string
	// PubSub carries broadcasts; nil means an in-process PubSub of this
	// Server alone.
	PubSub pubsub.PubSub

	// AllowedOrigins, when set, lists the origins browsers may connect from,
	// with Phoenix's check_origin rules: "https://example.com" (scheme, host,
	// default port), "//example.com" (any scheme and port),
	// "//*.example.com" (subdomains too).
	AllowedOrigins []string
	// CheckOrigin, when set, decides instead of AllowedOrigins.
	CheckOrigin func(r *http.Request, origin *url.URL) bool
	// SkipOriginCheck accepts any origin. Only for APIs that do not rely on
	// cookies or other ambient browser credentials.
	SkipOriginCheck bool
	// By default the Origin's host must equal the request's host.

	// MaxFrameSize caps the size of one client frame (default 8 MiB).
	MaxFrameSize int64
	// MaxChannels caps channels per connection (default 100, Phoenix's);
	// negative means no limit.
	MaxChannels int
	// IdleTimeout closes a connection that sent nothing for this long
	// (default 60 s; phoenix.js sends a heartbeat every 30 s).
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose writes stall this long (default 10 s).
	WriteTimeout time.Duration
	// OutboundQueue caps the frames queued for one connection (default 4096);
	// a client that falls that far behind is closed with 1013 and reconnects.
	OutboundQueue int

	// LongPollWindow is how long a LongPoll GET is held waiting for frames
	// (default DefaultLongPollWindow, 10 s as in Phoenix). A LongPoll session
	// that gets no poll for 1.5 windows ends, its channels with
	// channel.Inactive. Proxies in front must allow requests longer than it.
	// A LongPoll session buffers at most OutboundQueue frames between polls;
	// overflow ends it.
	LongPollWindow time.Duration
	// LongPollKey signs LongPoll session tokens (HMAC-SHA256). Empty means a
	// random key per Server, which is right for one node. In a cluster, set
	// the same key on every node: any node can then verify a token and relay
	// the request to the node owning the session through the PubSub, so no
	// sticky sessions are needed.
	LongPollKey []byte
	// LongPollTokenMaxAge bounds the age of a session token (default
	// DefaultLongPollTokenMaxAge, 14 days as in Phoenix).
	LongPollTokenMaxAge time.Duration
	// LongPollGoneDelay is how long a GET or POST carrying the valid token
	// of a session that has ended waits before its answer (a new session,
	// or 410), as in Phoenix (default DefaultLongPollGoneDelay, 2 s;
	// negative: none). Keep Phoenix's order of answers for phoenix.js 1.7,
	// which rejoins its channels only when a POST meets the ended session
	// before a GET hands it a new one.
	LongPollGoneDelay time.Duration

	// MaxConnections caps open connections on this server (default 0: no
	// cap). Connects beyond it are refused: HTTP 503 for WebSocket,
	// {"status":403} for LongPoll, which phoenix.js retries with backoff.
	MaxConnections int
	// MaxPendingConnects bounds the connects in progress at once: those
	// being checked, authenticated and upgraded (default
	// DefaultMaxPendingConnects; negative: no bound). It is the admission
	// control of a reconnect storm, when every client of a restarted node
	// comes back within a second: a connect beyond it is refused at once
	// (HTTP 503 with Retry-After: 1 for WebSocket, {"status":500} for
	// LongPoll, the status phoenix.js retries), before the Authenticator runs, and phoenix.js retries it
	// after its reconnect backoff, so that the node admits clients as fast
	// as it can finish them instead of running every Authenticator (and the
	// database behind it) at once.
	MaxPendingConnects int
	// MessageRate and MessageBurst bound the client messages one socket may
	// send (a token bucket: MessageRate per second sustained, bursts of
	// MessageBurst; defaults DefaultMessageRate and DefaultMessageBurst; a
	// negative rate disables the limit). A message over the limit gets the
	// error reply {"reason":"rate limited"}; see AbuseLimit for when a
	// refused client is closed.
	MessageRate, MessageBurst int
	// JoinRate and JoinBurst bound joins per socket in the same way
	// (defaults DefaultJoinRate and DefaultJoinBurst). Joins that are
	// refused before any handler runs (unmatched topic, MaxChannels reached)
	// cost a message token instead, so a client that asks for many topics
	// gets Phoenix's "too many channels joined" rather than a rate limit.
	JoinRate, JoinBurst int
	// AbuseLimit and AbuseWindow decide when a refused client is closed
	// with 1008. Refusals alone never close a client that waits for its
	// replies; the socket is closed when AbuseLimit refusals are queued
	// unwritten at once (default DefaultAbuseLimit: the client sends without
	// reading), or when, within one AbuseWindow (default DefaultAbuseWindow),
	// more than ten times the limit's rate times the window were refused (a
	// sustained flood: 50,000 messages or 1,000 joins in 5 s by default).
	AbuseLimit  int
	AbuseWindow time.Duration

	// Metrics receives connection and message events (nil: none). See
	// socket/metrics/prometheus.
	Metrics Metrics
	// Logger receives the server's logs; nil discards them. Tokens and
	// connect params are never logged.
	Logger *slog.Logger
}

// Server serves Phoenix sockets. Create it with New; it is an http.Handler.
type Server[A any] struct {
	cfg     Config[A]
	ps      pubsub.PubSub
	logger  *slog.Logger
	origins []allowedOrigin
	node    string

	nextConn atomic.Uint64
	now      atomic.Int64 // coarse clock (unix nanoseconds), updated by the sweeper
	pending  atomic.Int64 // connects in progress (Config.MaxPendingConnects)

	ctx    context.Context // parent of every channel context; cancelled at shutdown
	cancel context.CancelFunc

	mu        sync.Mutex
	conns     map[*conn[A]]struct{}
	sweeping  bool
	shutdown  bool
	stopSweep chan struct{}
	wg        sync.WaitGroup // reader, writer and closer goroutines
	sweeperWG sync.WaitGroup
	longpoll  *longPoller[A]
}

// New returns a Server. It panics if Authenticator or Router is nil, or if an
// AllowedOrigins entry cannot be parsed: both are programming errors.
func New[A any](cfg Config[A]) *Server[A] {
	if cfg.Authenticator == nil || cfg.Router == nil {
		panic("socket: Config needs an Authenticator and a Router")
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.OutboundQueue == 0 {
		cfg.OutboundQueue = DefaultOutboundQueue
	}
	if cfg.MaxPendingConnects == 0 {
		cfg.MaxPendingConnects = DefaultMaxPendingConnects
	}
	if cfg.MessageRate == 0 {
		cfg.MessageRate = DefaultMessageRate
	}
	if cfg.MessageBurst <= 0 {
		cfg.MessageBurst = max(DefaultMessageBurst, cfg.MessageRate)
	}
	if cfg.JoinRate == 0 {
		cfg.JoinRate = DefaultJoinRate
	}
	if cfg.JoinBurst <= 0 {
		cfg.JoinBurst = max(DefaultJoinBurst, cfg.JoinRate)
	}
	if cfg.AbuseLimit <= 0 {
		cfg.AbuseLimit = DefaultAbuseLimit
	}
	if cfg.AbuseWindow <= 0 {
		cfg.AbuseWindow = DefaultAbuseWindow
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.LongPollWindow <= 0 {
		cfg.LongPollWindow = DefaultLongPollWindow
	}
	if cfg.LongPollTokenMaxAge <= 0 {
		cfg.LongPollTokenMaxAge = DefaultLongPollTokenMaxAge
	}
	if cfg.LongPollGoneDelay == 0 {
		cfg.LongPollGoneDelay = DefaultLongPollGoneDelay
	}
	s := &Server[A]{cfg: cfg, conns: make(map[*conn[A]]struct{})}
	s.logger = cfg.Logger
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	for _, o := range cfg.AllowedOrigins {
		ao, ok := parseAllowedOrigin(o)
		if !ok {
			panic(fmt.Sprintf("socket: invalid allowed origin %q", o))
		}
		s.origins = append(s.origins, ao)
	}
	s.ps = cfg.PubSub
	if s.ps == nil {
		s.ps = pubsub.NewLocal(newNodeName())
	}
	s.node = s.ps.Node()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.now.Store(time.Now().UnixNano())
	s.longpoll = newLongPoller(s)
	return s
}

func newNodeName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// PubSub returns the PubSub the server broadcasts through.
func (s *Server[A]) PubSub() pubsub.PubSub { return s.ps }

// Node is this server's node name.
func (s *Server[A]) Node() string { return s.node }

// ServeHTTP serves M/websocket and M/longpoll for the path M it is mounted
// at. Any other path is 404.
func (s *Server[A]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimRight(r.URL.Path, "/")
	switch {
	case strings.HasSuffix(path, "/websocket") || path == "websocket":
		s.serveWebSocket(w, r)
	case strings.HasSuffix(path, "/longpoll") || path == "longpoll":
		s.serveLongPoll(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Broadcast sends event with payload to every subscriber of topic on every
// node, from anywhere in the application (Phoenix's Endpoint.broadcast).
// The payload must encode to a JSON object, or be channel.Binary.
func (s *Server[A]) Broadcast(ctx context.Context, topic, event string, payload any) error {
	p, err := protocol.Marshal(payload)
	if err != nil {
		return err
	}
	if !p.IsBinary() && !p.IsObject() {
		return channel.ErrNotObject
	}
	return s.ps.Broadcast(ctx, &pubsub.Message{Topic: topic, Event: event, Payload: p})
}

// Disconnect closes every socket whose ID is id, on every node (Phoenix:
// broadcasting "disconnect" to the socket id). Clients see close code 1001
// and reconnect, so Disconnect is how to force re-authentication.
func (s *Server[A]) Disconnect(ctx context.Context, id string) error {
	return s.ps.Broadcast(ctx, &pubsub.Message{Topic: id, Event: "disconnect"})
}

// Connections returns the number of open connections.
func (s *Server[A]) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ErrServerClosed is returned for connects after Shutdown.
var ErrServerClosed = errors.New("socket: server closed")

// Shutdown stops accepting connections, closes every socket with 1012
// (phoenix.js reconnects, typically to another node), runs every channel's
// Terminate with channel.Shutdown, and returns when all of that is done or
// ctx ends.
func (s *Server[A]) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	list := make([]*conn[A], 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	if s.sweeping {
		close(s.stopSweep)
		s.sweeping = false
	}
	s.mu.Unlock()
	for _, c := range list {
		c.closeWith(closeShutdown)
	}
	if lp := s.longpoll; lp != nil {
		lp.shutdown()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.sweeperWG.Wait()
		s.longpoll.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		for _, c := range list {
			c.t.CloseNow()
		}
		return ctx.Err()
	}
}

// register adds a connection, starting the sweeper with the first one.
func (s *Server[A]) register(c *conn[A]) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c] = struct{}{}
	// The reader's count is taken under the lock that Shutdown sets its flag
	// under, so Shutdown's Wait never races with a new connection's Add.
	s.wg.Add(1)
	if !s.sweeping {
		s.sweeping = true
		s.stopSweep = make(chan struct{})
		s.sweeperWG.Add(1)
		go s.sweep(s.stopSweep)
	}
	return true
}

func (s *Server[A]) unregister(c *conn[A]) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// sweep is the one timer of the server: it keeps the coarse clock and closes
// connections that are idle or stuck writing, so that idle sockets need no
// timer or goroutine of their own.
func (s *Server[A]) sweep(stop chan struct{}) {
	defer s.sweeperWG.Done()
	period := min(s.cfg.IdleTimeout, s.cfg.WriteTimeout) / 4
	period = max(min(period, time.Second), 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	var stale []*conn[A]
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := now.UnixNano()
			s.now.Store(n)
			idle := n - int64(s.cfg.IdleTimeout)
			stuck := n - int64(s.cfg.WriteTimeout)
			stale = stale[:0]
			s.mu.Lock()
			for c := range s.conns {
				if _, lp := c.t.(*transport.LongPoll); lp {
					// phoenix.js sends no heartbeats over LongPoll and
					// writes never block: sessions expire on missing polls.
					continue
				}
				if c.lastRead.Load() < idle {
					stale = append(stale, c)
				} else if w := c.writeStart.Load(); w != 0 && w < stuck {
					stale = append(stale, c)
				}
			}
			s.mu.Unlock()
			for _, c := range stale {
				if w := c.writeStart.Load(); w != 0 && w < stuck {
					c.closeWith(closeWriteTimeout)
				} else {
					c.closeWith(closeIdle)
				}
			}
			clear(stale)
		}
	}
}

func (s *Server[A]) connID() string {
	return s.node + "." + strconv.FormatUint(s.nextConn.Add(1), 36)
}
