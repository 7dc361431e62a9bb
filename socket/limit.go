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
	// DefaultAbuseLimit is how many rate-limited messages in a row close the
	// socket with 1008 (policy violation).
	DefaultAbuseLimit = 200
)

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
