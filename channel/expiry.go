package channel

import (
	"errors"
	"time"
)

// Expired is the reason of a channel whose expiry (Context.SetExpiry) passed,
// typically because the token it was joined with ran out. The client gets
// phx_close: phoenix.js does not rejoin such a channel by itself, since
// rejoining with the same expired token would fail again.
var Expired = errors.New("channel: token expired")

// Expirer is implemented by handlers that act when their channel's expiry
// passes, before the channel closes with Expired: pushing an explanation to
// the client (Supabase sends a "system" event), or logging. Its pushes reach
// the client before phx_close.
type Expirer[A any] interface {
	Expired(c *Context[A])
}

// SetExpiry makes the channel close with Expired at t, unless SetExpiry is
// called again first: a refreshed token moves the expiry, the zero time
// removes it. A t in the past closes the channel at once. It costs one timer
// while an expiry is set and nothing otherwise. Safe from any goroutine.
func (c *Context[A]) SetExpiry(t time.Time) { c.in.setExpiry(t) }

// Expiry returns the channel's expiry, or the zero time if it has none.
func (c *Context[A]) Expiry() time.Time {
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	return c.in.expiry
}

func (in *instance[A]) setExpiry(t time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.exited || in.exit != nil {
		return
	}
	in.expiry = t
	if in.expTimer != nil {
		in.expTimer.Stop()
		in.expTimer = nil
	}
	if t.IsZero() {
		return
	}
	// The timer only posts mail; the check against the current expiry
	// happens on the channel goroutine, so a timer that fires just as the
	// expiry moves does no harm.
	in.expTimer = time.AfterFunc(time.Until(t), func() { in.post(mail{kind: mailExpire}) })
}

// stopExpiry releases the timer of a channel that ended. Called with in.mu held.
func (in *instance[A]) stopExpiryLocked() {
	if in.expTimer != nil {
		in.expTimer.Stop()
		in.expTimer = nil
	}
}

// expire runs on the channel goroutine when the expiry timer fired.
func (in *instance[A]) expire() {
	in.mu.Lock()
	exp := in.expiry
	in.mu.Unlock()
	if exp.IsZero() || time.Now().Before(exp) {
		return // moved meanwhile; a new timer is armed
	}
	if h, ok := in.handler.(Expirer[A]); ok {
		if _, err := in.call("Expired", func() (Result, error) { h.Expired(&in.ctx); return Result{}, nil }); err != nil {
			in.s.logger.Error("channel Expired callback crashed", "topic", in.topic, "error", err)
		}
	}
	in.stop(Expired, true)
}
