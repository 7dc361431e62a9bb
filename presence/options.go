package presence

import (
	"log/slog"
	"time"
)

// Defaults of the options.
const (
	// DefaultName is the default tracker name, the PubSub topic of its
	// replication messages.
	DefaultName = "phx_presence"
	// DefaultBroadcastPeriod is how often a node sends its changes (Phoenix's
	// broadcast_period).
	DefaultBroadcastPeriod = 1500 * time.Millisecond
	// DefaultDownPeriod is how long a silent node's presences stay visible.
	// Phoenix defaults to 30 s; 4 s makes a crashed node's users disappear
	// within 2.5 to 4.3 s of its death (silent peers are looked for every
	// 200 ms) while still riding out a lost heartbeat.
	DefaultDownPeriod = 4 * time.Second
	// DefaultPermdownPeriod is how long a silent node's presences are kept
	// (hidden) before being forgotten, as in Phoenix.
	DefaultPermdownPeriod = 20 * time.Minute
	// DefaultCoalesce is the default window over which diffs are coalesced.
	DefaultCoalesce = 20 * time.Millisecond
	// DefaultMaxMessageBytes bounds one replication message. A transfer of
	// a large state, or the delta of a burst of joins, is sent as several
	// messages of at most about this size, well under NATS's default 1 MB
	// max_payload.
	DefaultMaxMessageBytes = 256 << 10
)

// FetchFunc enriches the entries of a topic in one batch, like Phoenix's
// fetch/2: it typically loads the users of all keys at once and sets
// Entry.Extra. It is called for presence_state (List, PushState) and for
// the joins and leaves of every diff. It runs without the tracker's lock
// held and may call List, but must not call Track, Untrack or Update.
type FetchFunc func(topic string, entries map[string]Entry) map[string]Entry

// Option configures a Tracker.
type Option func(*config)

type config struct {
	name      string
	node      string
	broadcast time.Duration
	down      time.Duration
	permdown  time.Duration
	coalesce  time.Duration
	maxMsg    int
	fetch     FetchFunc
	logger    *slog.Logger
	now       func() time.Time
	// mono is the real time the tracker's own pace is measured in (see
	// Tracker.stalled), apart from now so that tests can move the
	// peers' clock without it looking like a stall.
	mono func() time.Time
}

func defaultConfig() config {
	return config{
		name:      DefaultName,
		broadcast: DefaultBroadcastPeriod,
		down:      DefaultDownPeriod,
		permdown:  DefaultPermdownPeriod,
		coalesce:  DefaultCoalesce,
		maxMsg:    DefaultMaxMessageBytes,
		now:       time.Now,
		mono:      time.Now,
	}
}

// WithName sets the tracker name (default "phx_presence"). Trackers of the
// same name on different nodes replicate with each other; give independent
// trackers on one cluster different names.
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithNode overrides the node name, which defaults to the PubSub's Node().
// It must be unique in the cluster and should be stable across restarts.
func WithNode(node string) Option { return func(c *config) { c.node = node } }

// WithBroadcastPeriod sets how often the node sends its changes to its
// peers (default 1.5 s). Remote changes become visible within about one period.
func WithBroadcastPeriod(d time.Duration) Option { return func(c *config) { c.broadcast = d } }

// WithDownPeriod sets how long a peer may stay silent before its presences
// are reported as leaves (default 5 s). It is raised to twice the broadcast
// period if lower.
func WithDownPeriod(d time.Duration) Option { return func(c *config) { c.down = d } }

// WithPermdownPeriod sets how long a silent peer's presences are kept,
// hidden, in case it comes back (default 20 min). It is raised above the
// down period if not already.
func WithPermdownPeriod(d time.Duration) Option { return func(c *config) { c.permdown = d } }

// WithCoalesce sets the window over which changes are gathered into one
// presence_diff per topic (default 20 ms). Zero sends one diff per change,
// synchronously, before Track, Untrack or Update returns.
func WithCoalesce(d time.Duration) Option { return func(c *config) { c.coalesce = d } }

// WithFetch sets the hook that enriches entries (default none).
func WithFetch(fn FetchFunc) Option { return func(c *config) { c.fetch = fn } }

// WithMaxMessageBytes bounds the size of one replication message (default
// DefaultMaxMessageBytes, 256 KiB). Larger states are split into several
// messages, each merged on its own. Set it below the broker's message limit
// (NATS max_payload); 0 or less sends every state in one message.
func WithMaxMessageBytes(n int) Option { return func(c *config) { c.maxMsg = n } }

// WithLogger sets the logger (default slog.Default()). Peers going up and
// down are logged at Info, transfers at Debug, replication failures at Warn.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithClock sets the time source used for peer liveness and meta ordering
// (default time.Now). Timers still run on real time.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }
