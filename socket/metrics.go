package socket

// Metrics receives the server's events, for dashboards and alerts. Every
// method must be cheap and safe for concurrent use: they run on connection
// goroutines. Embed NopMetrics to implement only some of them. The
// socket/metrics/prometheus package provides a Prometheus implementation.
type Metrics interface {
	// ConnectionOpened and ConnectionClosed bracket every connection.
	ConnectionOpened(transport string)
	ConnectionClosed(transport string)
	// ConnectRefused counts refused connects (origin, vsn, Authenticator,
	// limits); reason is a short stable word.
	ConnectRefused(transport, reason string)
	// MessageIn counts decoded client messages; MessageOut counts frames
	// written to clients.
	MessageIn(transport string)
	MessageOut(transport string)
	// Joined counts joins by outcome: "ok", "error", "crashed", "unmatched",
	// "too_many".
	Joined(transport, status string)
	// Replied counts replies by status ("ok", "error", ...), heartbeats
	// excepted.
	Replied(transport, status string)
	// Dropped counts frames a client could not be sent (reason
	// "unencodable": a binary broadcast to a V1 or LongPoll client).
	Dropped(transport, reason string)
	// RateLimited counts client messages refused by a rate limit.
	RateLimited(kind string)
	// SlowConsumerClosed counts connections closed because their outbound
	// queue was full.
	SlowConsumerClosed()
}

// NopMetrics implements Metrics by doing nothing.
type NopMetrics struct{}

func (NopMetrics) ConnectionOpened(string)       {}
func (NopMetrics) ConnectionClosed(string)       {}
func (NopMetrics) ConnectRefused(string, string) {}
func (NopMetrics) MessageIn(string)              {}
func (NopMetrics) MessageOut(string)             {}
func (NopMetrics) Joined(string, string)         {}
func (NopMetrics) Replied(string, string)        {}
func (NopMetrics) Dropped(string, string)        {}
func (NopMetrics) RateLimited(string)            {}
func (NopMetrics) SlowConsumerClosed()           {}
