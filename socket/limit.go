package socket

import "time"

// Defaults of the per-socket rate limits. Phoenix has none; phoenix.js sends
// a heartbeat every 30 s and rejoins at most every second per channel, so
// these leave ample room for real clients.
const (
	DefaultMessageRate  = 1000 // inbound messages per second per socket, sustained
	DefaultMessageBurst = 2000
	DefaultJoinRate     = 20 // joins per second per socket, sustained
	DefaultJoinBurst    = 110
	// DefaultAbuseLimit is how many refused messages may wait unwritten in
	// a socket's outbound queue at once before it is closed with 1008
	// (policy violation): only a client that does not wait for its replies
	// gets there.
	DefaultAbuseLimit = 200
	// DefaultAbuseWindow is the window of the sustained-flood rule: a socket
	// refused more than abuseFactor times its rate limit's worth of messages
	// within one window is closed with 1008.
	DefaultAbuseWindow = 5 * time.Second
)

// abuseFactor: how far over its rate, sustained over an AbuseWindow, a
// client must be refused before it is closed. Ten times leaves room for a
// client that waits for each reply on a fast link.
const abuseFactor = 10

// floodMeter counts one kind of refusal over fixed windows.
type floodMeter struct {
	start int64 // unix nanoseconds the current window began
	count int
}

// refuse records one refusal at now and reports whether refusals in the
// current window exceed limit.
func (f *floodMeter) refuse(now int64, window time.Duration, limit int) bool {
	if now-f.start >= int64(window) {
		f.start, f.count = now, 0
	}
	f.count++
	return f.count > limit
}

// bucket is a token bucket driven by the server's coarse clock, so it costs
// no timer: tokens are added lazily when a message arrives.
type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last refill
}

// allow takes one token if there is one. rate is tokens per second.
func (b *bucket) allow(now int64, rate, burst float64) bool {
	if rate <= 0 {
		return true
	}
	if b.last == 0 {
		b.tokens, b.last = burst, now
	}
	if now > b.last {
		b.tokens = min(burst, b.tokens+rate*float64(now-b.last)/float64(time.Second))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
