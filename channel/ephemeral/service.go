package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Service owns fresh state for a set of keys, one short-lived instance per
// active key. Create it with New; all methods are safe for concurrent use.
// A Service must not be copied after first use.
type Service[K comparable, S any] struct {
	store Store[K, S]
	cfg   config
	deep  func(S) S // nil: copy by assignment

	// hard is cancelled when Shutdown runs out of time; it aborts store
	// calls and backoff waits so that every owner goroutine can end.
	hard       context.Context
	hardCancel context.CancelCauseFunc

	mu        sync.Mutex
	instances map[K]*instance[K, S]
	closed    bool
	finalErrs []error // final flush failures seen after Shutdown began

	wg   sync.WaitGroup
	live atomic.Int64 // running owner goroutines, for tests
}

// New returns a Service that loads and saves through store. Its instances
// start on first use and need no further setup; call Shutdown when done to
// flush write-behind changes and end the goroutines.
func New[K comparable, S any](store Store[K, S], opts ...Option) *Service[K, S] {
	if store == nil {
		panic("ephemeral: New with nil Store")
	}
	hard, cancel := context.WithCancelCause(context.Background())
	return &Service[K, S]{
		store:      store,
		cfg:        newConfig(opts),
		deep:       cloneFunc[S](),
		hard:       hard,
		hardCancel: cancel,
		instances:  make(map[K]*instance[K, S]),
	}
}

func (s *Service[K, S]) copy(v S) S {
	if s.deep != nil {
		return s.deep(v)
	}
	return v
}

// Do runs mutate on the fresh state of key and, in the default
// write-through mode, returns after the result is saved. If no instance is
// live for key one is started and loads the state from the store; a Load
// error (ErrNotFound included) fails the call, wrapped.
//
// mutate runs on the key's owner goroutine, never concurrently with another
// mutation of the same key, on a copy of the state: if it returns an error
// (or panics) nothing changes and Do returns that error. On ErrConflict
// from the store the state is reloaded and mutate runs again, up to the
// configured number of retries; after that Do returns an error wrapping
// ErrConflict. mutate must therefore be a pure function of *S: no I/O, no
// references to the state kept after it returns, and no calls to this
// Service for the same key (that would deadlock).
//
// If ctx ends before mutate starts, mutate never runs. If it ends later,
// Do returns ctx.Err() at once but the mutation and its save still
// complete, so the change may apply; store calls made on the caller's
// behalf see ctx's values but not its cancellation.
//
// After Shutdown has begun Do returns ErrClosed.
func (s *Service[K, S]) Do(ctx context.Context, key K, mutate func(*S) error) error {
	if mutate == nil {
		panic("ephemeral: Do with nil mutate")
	}
	_, err := s.submit(ctx, key, mutate, false)
	return err
}

// Update is Do that also returns a copy of the state as mutate left it
// (as saved, in write-through mode): the snapshot to broadcast and to put
// in assigns. On error it returns the zero S.
func (s *Service[K, S]) Update(ctx context.Context, key K, mutate func(*S) error) (S, error) {
	if mutate == nil {
		panic("ephemeral: Update with nil mutate")
	}
	return s.submit(ctx, key, mutate, true)
}

// Get returns a copy of the state of key, loading it if no instance is
// live. The copy includes write-behind changes not yet saved. It is fresh
// with respect to this Service; writes by other processes become visible
// when this instance next loads (on start, after a conflict, after a
// failed mutation when S is not a Cloner).
func (s *Service[K, S]) Get(ctx context.Context, key K) (S, error) {
	return s.submit(ctx, key, nil, true)
}

func (s *Service[K, S]) submit(ctx context.Context, key K, fn func(*S) error, want bool) (S, error) {
	var zero S
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	r := &request[S]{ctx: ctx, fn: fn, want: want, done: make(chan result[S], 1)}

	// Enqueueing under s.mu is what makes expiry safe: an owner removes
	// itself from the map under the same lock, after checking its queue
	// is empty, so a request can never land on a goroutine that is gone.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return zero, ErrClosed
	}
	in := s.instances[key]
	if in == nil {
		in = s.start(key)
	}
	in.enqueue(r)
	s.mu.Unlock()

	select {
	case res := <-r.done:
		return res.state, res.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// start launches the owner goroutine for key. s.mu must be held.
func (s *Service[K, S]) start(key K) *instance[K, S] {
	in := &instance[K, S]{
		svc:  s,
		key:  key,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	s.instances[key] = in
	s.wg.Add(1)
	s.live.Add(1)
	go in.run()
	return in
}

// Shutdown stops accepting requests (later calls return ErrClosed), lets
// every live instance finish its queued requests and flush write-behind
// changes, and waits for all owner goroutines to end. If ctx ends first,
// store calls in flight are cancelled, unsaved changes are reported to the
// error handler as final, Shutdown still waits for the goroutines (which
// end as soon as the store honours its context) and returns ctx.Err().
// Otherwise it returns the final flush failures, joined, or nil.
// Calling Shutdown again waits the same way and returns nil.
func (s *Service[K, S]) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	if first {
		s.closed = true
		for _, in := range s.instances {
			close(in.stop)
		}
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.hardCancel(fmt.Errorf("%w: shutdown: %w", ErrClosed, ctx.Err()))
		<-done
		return ctx.Err()
	}
	s.hardCancel(ErrClosed) // releases the AfterFunc hooks of opContext
	if !first {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.finalErrs...)
}

// report hands an unattended error to the handler and, during shutdown,
// keeps final ones for Shutdown's return value.
func (s *Service[K, S]) report(fe *FlushError) {
	if fe.Final {
		s.mu.Lock()
		if s.closed {
			s.finalErrs = append(s.finalErrs, fe)
		}
		s.mu.Unlock()
	}
	s.cfg.onError(fe)
}

// opContext derives the context for store calls made for a caller: it
// keeps the caller's values (tracing, auth) but not its cancellation,
// because once a mutation has run its save must not be torn halfway by a
// caller that stopped waiting. Only a Shutdown that ran out of time
// cancels it.
func (s *Service[K, S]) opContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	stop := context.AfterFunc(s.hard, func() { cancel(context.Cause(s.hard)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

type request[S any] struct {
	ctx  context.Context
	fn   func(*S) error // nil: read only
	want bool           // caller wants a snapshot back
	done chan result[S] // buffered: the owner never blocks on a gone caller
}

type result[S any] struct {
	state S
	err   error
}

func (r *request[S]) finish(state S, err error) {
	r.done <- result[S]{state: state, err: err}
}

// instance is the owner of one key's fresh state. Everything below the
// queue is touched only by its run goroutine.
type instance[K comparable, S any] struct {
	svc  *Service[K, S]
	key  K
	wake chan struct{} // capacity 1: "the queue may be non-empty"
	stop chan struct{} // closed by Shutdown

	mu    sync.Mutex
	queue []*request[S]

	state    S
	version  Version
	loaded   bool
	pending  []func(*S) error // write-behind: applied since the last save
	attempts int              // write-behind: failed flushes in a row
}

func (in *instance[K, S]) enqueue(r *request[S]) {
	in.mu.Lock()
	in.queue = append(in.queue, r)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *instance[K, S]) pop() *request[S] {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.queue) == 0 {
		return nil
	}
	r := in.queue[0]
	in.queue[0] = nil
	in.queue = in.queue[1:]
	if len(in.queue) == 0 {
		in.queue = nil // let the backing array go after a burst
	}
	return r
}

func (in *instance[K, S]) run() {
	s := in.svc
	defer s.wg.Done()
	defer s.live.Add(-1)

	idle := time.NewTimer(s.cfg.idleTimeout)
	defer idle.Stop()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	var flushC <-chan time.Time // non-nil while a flush is scheduled
	stopC := in.stop
	stopping := false

	for {
		worked := false
		for r := in.pop(); r != nil; r = in.pop() {
			in.handle(r)
			worked = true
		}
		if worked {
			idle.Reset(s.cfg.idleTimeout)
		}
		if len(in.pending) > 0 && flushC == nil {
			flush.Reset(in.flushDelay(stopping))
			flushC = flush.C
		}
		if stopping && len(in.pending) == 0 && in.retire() {
			return
		}

		select {
		case <-in.wake:
		case <-flushC:
			flushC = nil
			in.flush()
		case <-idle.C:
			if len(in.pending) > 0 && in.attempts == 0 {
				// Flush before expiring rather than waiting for the
				// interval: nobody will ask for this key soon.
				flush.Stop()
				flushC = nil
				in.flush()
			}
			if len(in.pending) == 0 && in.retire() {
				return
			}
			idle.Reset(s.cfg.idleTimeout)
		case <-stopC:
			stopC = nil
			stopping = true
			if in.attempts == 0 {
				flush.Stop() // reschedule at once rather than at the interval
				flushC = nil
			}
		case <-s.hard.Done():
			in.abandon()
			return
		}
	}
}

func (in *instance[K, S]) flushDelay(stopping bool) time.Duration {
	if in.attempts > 0 {
		d := in.svc.cfg.saveBackoff << (in.attempts - 1)
		if d <= 0 || d > maxSaveBackoff {
			d = maxSaveBackoff
		}
		return d
	}
	if stopping {
		return 0
	}
	return in.svc.cfg.flushInterval
}

// retire removes the instance from the service if no request is queued.
// Done under both locks, in submit's order, so no request can slip in.
func (in *instance[K, S]) retire() bool {
	s := in.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.queue) > 0 {
		return false
	}
	if s.instances[in.key] == in {
		delete(s.instances, in.key)
	}
	return true
}

// abandon ends the instance when Shutdown ran out of time: queued callers
// get ErrClosed and unsaved changes are reported as lost.
func (in *instance[K, S]) abandon() {
	s := in.svc
	s.mu.Lock()
	in.mu.Lock()
	queue := in.queue
	in.queue = nil
	if s.instances[in.key] == in {
		delete(s.instances, in.key)
	}
	in.mu.Unlock()
	s.mu.Unlock()

	var zero S
	for _, r := range queue {
		r.finish(zero, ErrClosed)
	}
	if len(in.pending) > 0 {
		s.report(&FlushError{Key: in.key, Pending: len(in.pending), Attempt: in.attempts + 1,
			Final: true, Err: context.Cause(s.hard)})
		in.pending = nil
	}
}

func (in *instance[K, S]) handle(r *request[S]) {
	var zero S
	if err := r.ctx.Err(); err != nil {
		r.finish(zero, err) // the caller has left; never run its mutation
		return
	}
	s := in.svc
	ctx, done := s.opContext(r.ctx)
	defer done()

	if r.fn == nil {
		if err := in.ensureLoaded(ctx); err != nil {
			r.finish(zero, err)
			return
		}
		r.finish(s.copy(in.state), nil)
		return
	}

	for attempt := 0; ; attempt++ {
		if err := in.ensureLoaded(ctx); err != nil {
			r.finish(zero, err)
			return
		}
		work := s.copy(in.state)
		if err := apply(r.fn, &work); err != nil {
			in.discard()
			r.finish(zero, err)
			return
		}
		if s.cfg.writeBehind {
			in.state = work
			in.pending = append(in.pending, r.fn)
			r.finish(in.snapshot(r), nil)
			return
		}
		v, err := s.store.Save(ctx, in.key, work, in.version)
		if err == nil {
			in.state, in.version = work, v
			r.finish(in.snapshot(r), nil)
			return
		}
		in.discard()
		if !errors.Is(err, ErrConflict) {
			r.finish(zero, fmt.Errorf("ephemeral: save %v: %w", in.key, err))
			return
		}
		in.loaded = false // someone else saved: start over from fresh state
		if attempt >= s.cfg.conflictRetries {
			r.finish(zero, fmt.Errorf("ephemeral: save %v: %d attempts: %w", in.key, attempt+1, err))
			return
		}
		if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
			r.finish(zero, err)
			return
		}
	}
}

func (in *instance[K, S]) snapshot(r *request[S]) S {
	if r.want {
		return in.svc.copy(in.state)
	}
	var zero S
	return zero
}

// discard forgets a working copy that will not be kept. Without a Cloner
// the copy may share maps or slices with in.state, so the cached state can
// no longer be trusted and is reloaded before the next use.
func (in *instance[K, S]) discard() {
	if in.svc.deep == nil {
		in.loaded = false
	}
}

// ensureLoaded loads fresh state if the cache is not valid and, in
// write-behind mode, re-applies the changes not yet saved on top of it.
func (in *instance[K, S]) ensureLoaded(ctx context.Context) error {
	if in.loaded {
		return nil
	}
	st, v, err := in.svc.store.Load(ctx, in.key)
	if err != nil {
		return fmt.Errorf("ephemeral: load %v: %w", in.key, err)
	}
	in.state, in.version, in.loaded = st, v, true
	if len(in.pending) == 0 {
		return nil
	}
	kept := in.pending[:0]
	for _, fn := range in.pending {
		work := in.svc.copy(in.state)
		if err := apply(fn, &work); err != nil {
			// The caller was told "applied" long ago; the only honest
			// thing left is to say, loudly, that it was not.
			in.svc.report(&FlushError{Key: in.key, Pending: 1, Attempt: 1, Final: true,
				Err: fmt.Errorf("mutation failed when replayed on fresh state: %w", err)})
			continue
		}
		in.state = work
		kept = append(kept, fn)
	}
	clear(in.pending[len(kept):])
	in.pending = kept
	return nil
}

// flush saves write-behind changes, replaying them on fresh state after a
// conflict. Failures schedule a retry with backoff (through run) or, after
// the last attempt, discard the changes with a final report.
func (in *instance[K, S]) flush() {
	s := in.svc
	if len(in.pending) == 0 {
		return
	}
	ctx := s.hard
	var err error
	for attempt := 0; ; attempt++ {
		if err = in.ensureLoaded(ctx); err != nil {
			break
		}
		if len(in.pending) == 0 {
			return // every change failed on replay, and was reported
		}
		var v Version
		v, err = s.store.Save(ctx, in.key, in.state, in.version)
		if err == nil {
			in.version = v
			clear(in.pending)
			in.pending = in.pending[:0]
			in.attempts = 0
			return
		}
		if !errors.Is(err, ErrConflict) || attempt >= s.cfg.conflictRetries {
			break
		}
		in.loaded = false
		if serr := sleep(ctx, conflictBackoff(attempt)); serr != nil {
			break
		}
	}
	in.attempts++
	final := in.attempts >= s.cfg.saveAttempts || s.hard.Err() != nil
	s.report(&FlushError{Key: in.key, Pending: len(in.pending), Attempt: in.attempts, Final: final, Err: err})
	if final {
		in.pending = nil
		in.attempts = 0
		in.loaded = false // memory holds changes the store never got
	}
}

func apply[S any](fn func(*S) error, s *S) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanicked, p)
		}
	}()
	return fn(s)
}

// conflictBackoff spreads retries of competing writers (usually other
// processes) so they stop colliding in lockstep: random, growing, small.
func conflictBackoff(attempt int) time.Duration {
	limit := 200 * time.Microsecond << min(attempt, 6)
	return rand.N(limit)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
