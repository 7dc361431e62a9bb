package ephemeral

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults used when the corresponding option is not given.
const (
	// DefaultIdleTimeout is how long an instance lives without requests
	// (and, in write-behind mode, without unsaved changes) before its
	// goroutine ends. Long enough to serve a burst of channel events
	// from cache, short enough that idle users cost nothing.
	DefaultIdleTimeout = 30 * time.Second

	// DefaultConflictRetries is how many times one save is retried on
	// fresh state after ErrConflict before giving up.
	DefaultConflictRetries = 10

	// DefaultFlushInterval is the write-behind flush interval used when
	// WithWriteBehind is given a negative duration.
	DefaultFlushInterval = time.Second

	// DefaultSaveAttempts and DefaultSaveBackoff bound write-behind
	// retries of failing flushes: attempt n waits
	// DefaultSaveBackoff * 2^(n-1), capped at maxSaveBackoff.
	DefaultSaveAttempts = 5
	DefaultSaveBackoff  = 100 * time.Millisecond

	maxSaveBackoff = 30 * time.Second
)

// Option configures a Service; pass options to New.
type Option func(*config)

type config struct {
	idleTimeout     time.Duration
	conflictRetries int
	writeBehind     bool
	flushInterval   time.Duration
	saveAttempts    int
	saveBackoff     time.Duration
	onError         func(error)
}

func newConfig(opts []Option) config {
	c := config{
		idleTimeout:     DefaultIdleTimeout,
		conflictRetries: DefaultConflictRetries,
		saveAttempts:    DefaultSaveAttempts,
		saveBackoff:     DefaultSaveBackoff,
		onError:         logFlushError,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithIdleTimeout sets how long an instance may sit idle before it expires
// and its goroutine ends. d <= 0 keeps DefaultIdleTimeout.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.idleTimeout = d
		}
	}
}

// WithConflictRetries sets how many times a save that hit ErrConflict is
// retried on freshly loaded state. The first attempt is not counted, so n
// = 0 means "fail on the first conflict". Raise it when many processes
// write the same key at once. Negative n keeps DefaultConflictRetries.
func WithConflictRetries(n int) Option {
	return func(c *config) {
		if n >= 0 {
			c.conflictRetries = n
		}
	}
}

// WithWriteBehind switches the service to write-behind mode: Do returns
// once the mutation is applied in memory, and each key is saved at most
// once per flushInterval, when it expires, and on Shutdown. flushInterval
// == 0 flushes as soon as the key's queue is drained (bursts still
// coalesce); a negative value means DefaultFlushInterval.
//
// The price is durability: a crash loses changes not yet flushed, and a
// mutation that succeeded in memory can still fail when it is replayed on
// fresh state after a conflict. Both kinds of loss are reported to the
// error handler (WithErrorHandler), never dropped silently.
func WithWriteBehind(flushInterval time.Duration) Option {
	return func(c *config) {
		c.writeBehind = true
		if flushInterval < 0 {
			flushInterval = DefaultFlushInterval
		}
		c.flushInterval = flushInterval
	}
}

// WithSaveRetries bounds how often a failing write-behind flush is retried:
// up to attempts tries in total, waiting initialBackoff, then twice that,
// and so on (capped at 30s). When the last attempt fails the pending
// changes are discarded, a final *FlushError is reported, and the next
// request reloads from the store. Values <= 0 keep the defaults.
func WithSaveRetries(attempts int, initialBackoff time.Duration) Option {
	return func(c *config) {
		if attempts > 0 {
			c.saveAttempts = attempts
		}
		if initialBackoff > 0 {
			c.saveBackoff = initialBackoff
		}
	}
}

// WithErrorHandler sets the function that receives errors nobody is
// waiting for: write-behind flush failures and mutations dropped during a
// replay, always as a *FlushError. It is called on the key's owner
// goroutine, so it must not call the same Service for the same key. The
// default logs with slog.Default at error level.
func WithErrorHandler(fn func(error)) Option {
	return func(c *config) {
		if fn != nil {
			c.onError = fn
		}
	}
}

func logFlushError(err error) {
	slog.Error("ephemeral: write-behind", "err", err)
}

// FlushError describes a write-behind failure. Final reports whether the
// Pending changes were given up (discarded from memory) or will be retried.
type FlushError struct {
	Key     any  // the key, as given to Do
	Pending int  // mutations applied in memory but not saved
	Attempt int  // failed flush attempts in a row, 1-based
	Final   bool // true: the Pending mutations were discarded
	Err     error
}

// Error describes the key, how much is at stake and whether it is lost.
func (e *FlushError) Error() string {
	what := "will retry"
	if e.Final {
		what = "changes discarded"
	}
	return fmt.Sprintf("ephemeral: flush key %v (%d pending, attempt %d, %s): %v",
		e.Key, e.Pending, e.Attempt, what, e.Err)
}

// Unwrap lets errors.Is find ErrConflict, ErrNotFound or the store's own
// errors inside a FlushError.
func (e *FlushError) Unwrap() error { return e.Err }
