package client

import (
	"log/slog"
	"net/http"
	"time"
)

// Transport selects how the client talks to the server.
type Transport int

const (
	// WebSocket connects to M/websocket (the default).
	WebSocket Transport = iota
	// LongPoll talks HTTP to M/longpoll: GET polls, NDJSON POST batches.
	// It always speaks vsn 2.0.x and sends no heartbeats, like phoenix.js.
	LongPoll
)

func (t Transport) String() string {
	if t == LongPoll {
		return "longpoll"
	}
	return "websocket"
}

// Options configures a Client. The zero value of every field is a
// documented default, those of phoenix.js where it has one.
type Options struct {
	// Params are the connect parameters, sent in the query string before
	// vsn (keys sorted, values encoded like JavaScript's encodeURIComponent).
	Params map[string]string
	// ParamsFunc, when set, replaces Params and is called before every
	// connection attempt, so that reconnects can send fresh tokens (as
	// phoenix.js's params function does).
	ParamsFunc func() map[string]string
	// AuthToken is sent the way phoenix.js 1.8 sends its authToken option:
	// as the subprotocol "base64url.bearer.phx.<unpadded base64>" next to
	// "phoenix" (header X-Phoenix-AuthToken over LongPoll).
	AuthToken string
	// AuthTokenFunc, when set, replaces AuthToken and is called before every
	// connection attempt.
	AuthTokenFunc func() string
	// Vsn is the serializer version: "2.0.0" (default; JSON arrays and
	// binary payloads) or "1.0.0" (JSON objects).
	Vsn string
	// Transport is WebSocket (default) or LongPoll.
	Transport Transport

	// HeartbeatInterval is how often a heartbeat is sent on topic "phoenix"
	// (default 30 s). A heartbeat unanswered when the next one is due drops
	// the connection, which is then re-established. Negative disables them.
	HeartbeatInterval time.Duration
	// Timeout bounds every join, push and leave (default 10 s), in addition
	// to the deadline of the context passed to the call.
	Timeout time.Duration
	// ReconnectAfter gives the delay before reconnect attempt n (n ≥ 1).
	// Default: 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms, then 5 s.
	ReconnectAfter func(tries int) time.Duration
	// RejoinAfter gives the delay before channel rejoin attempt n (n ≥ 1)
	// after a join error, join timeout or phx_error. Default: 1, 2, 5 s, then
	// 10 s.
	RejoinAfter func(tries int) time.Duration

	// ChannelBuffer caps the messages each channel buffers for Next, and for
	// its On handlers (default 1024). When full, the oldest is dropped.
	ChannelBuffer int
	// ReadLimit caps the size of one frame from the server (default 16 MiB).
	ReadLimit int64
	// HTTPClient makes the handshake and LongPoll requests
	// (default http.DefaultClient).
	HTTPClient *http.Client
	// Header is added to the handshake (and LongPoll) requests, e.g. Origin
	// or Cookie.
	Header http.Header
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultReconnectAfter is phoenix.js's socket reconnect backoff.
func DefaultReconnectAfter(tries int) time.Duration {
	steps := [...]int{10, 50, 100, 150, 200, 250, 500, 1000, 2000}
	if tries >= 1 && tries <= len(steps) {
		return time.Duration(steps[tries-1]) * time.Millisecond
	}
	return 5 * time.Second
}

// DefaultRejoinAfter is phoenix.js's channel rejoin backoff.
func DefaultRejoinAfter(tries int) time.Duration {
	steps := [...]int{1000, 2000, 5000}
	if tries >= 1 && tries <= len(steps) {
		return time.Duration(steps[tries-1]) * time.Millisecond
	}
	return 10 * time.Second
}

func (o Options) withDefaults() Options {
	if o.Vsn == "" {
		o.Vsn = "2.0.0"
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ReconnectAfter == nil {
		o.ReconnectAfter = DefaultReconnectAfter
	}
	if o.RejoinAfter == nil {
		o.RejoinAfter = DefaultRejoinAfter
	}
	if o.ChannelBuffer <= 0 {
		o.ChannelBuffer = 1024
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 16 << 20
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
