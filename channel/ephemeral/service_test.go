package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type counter struct{ N int }

func incr(c *counter) error {
	c.N++
	return nil
}

func newCounterService(t *testing.T, opts ...Option) (*Service[string, counter], *MemoryStore[string, counter]) {
	t.Helper()
	mem := NewMemoryStore[string, counter]()
	svc := New(CreateIfMissing[string, counter](mem, nil), opts...)
	t.Cleanup(func() { shutdown(t, svc) })
	return svc, mem
}

func shutdown[K comparable, S any](t *testing.T, svc *Service[K, S]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	assert.NoError(t, svc.Shutdown(ctx))
}

// peek reads the stored count without failing the test, for Eventually.
func peek(mem *MemoryStore[string, counter], key string) int {
	c, _, err := mem.Load(context.Background(), key)
	if err != nil {
		return -1
	}
	return c.N
}

func stored(t *testing.T, mem *MemoryStore[string, counter], key string) (int, Version) {
	t.Helper()
	c, v, err := mem.Load(context.Background(), key)
	require.NoError(t, err)
	return c.N, v
}

// hookStore lets a test intercept store calls.
type hookStore[K comparable, S any] struct {
	Store[K, S]
	loads, saves atomic.Int64
	onLoad       func(ctx context.Context, key K) error
	onSave       func(ctx context.Context, key K, s S, v Version) error
}

func (h *hookStore[K, S]) Load(ctx context.Context, key K) (S, Version, error) {
	h.loads.Add(1)
	if h.onLoad != nil {
		if err := h.onLoad(ctx, key); err != nil {
			var zero S
			return zero, 0, err
		}
	}
	return h.Store.Load(ctx, key)
}

func (h *hookStore[K, S]) Save(ctx context.Context, key K, s S, v Version) (Version, error) {
	h.saves.Add(1)
	if h.onSave != nil {
		if err := h.onSave(ctx, key, s, v); err != nil {
			return 0, err
		}
	}
	return h.Store.Save(ctx, key, s, v)
}

func TestDoConcurrentExactSum(t *testing.T) {
	t.Parallel()
	svc, mem := newCounterService(t)
	ctx := context.Background()

	const n = 1000
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { assert.NoError(t, svc.Do(ctx, "k", incr)) })
	}
	wg.Wait()

	got, err := svc.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, n, got.N)
	v, ver := stored(t, mem, "k")
	assert.Equal(t, n, v, "write-through: every Do saved before returning")
	assert.Equal(t, Version(n), ver)
}

// The blog post's isolation problem: a globally registered process per user
// made tests that used the same user id interfere. Services own their
// instances, so parallel tests with identical keys cannot see each other.
func TestServicesInOneProcessNeverCollide(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint("service", i), func(t *testing.T) {
			t.Parallel()
			svc, mem := newCounterService(t)
			ctx := context.Background()
			want := 50 * (i + 1)
			var wg sync.WaitGroup
			for range want {
				wg.Go(func() {
					assert.NoError(t, svc.Do(ctx, "user:42", incr))
					assert.NoError(t, svc.Do(ctx, "user:43", incr))
				})
			}
			wg.Wait()
			for _, key := range []string{"user:42", "user:43"} {
				got, _ := stored(t, mem, key)
				assert.Equal(t, want, got, key)
			}
		})
	}
}

func TestIdleInstanceExpiresAndGoroutineEnds(t *testing.T) {
	t.Parallel()
	store := &hookStore[string, counter]{Store: CreateIfMissing[string, counter](NewMemoryStore[string, counter](), nil)}
	svc := New[string, counter](store, WithIdleTimeout(200*time.Millisecond))
	defer shutdown(t, svc)
	ctx := context.Background()

	for _, key := range []string{"a", "b", "c"} {
		require.NoError(t, svc.Do(ctx, key, incr))
	}
	assert.EqualValues(t, 3, svc.live.Load())
	require.Eventually(t, func() bool { return svc.live.Load() == 0 }, 2*time.Second, 5*time.Millisecond)
	svc.mu.Lock()
	assert.Empty(t, svc.instances)
	svc.mu.Unlock()

	// A new request starts a new instance that reloads fresh state.
	loads := store.loads.Load()
	require.NoError(t, svc.Do(ctx, "a", incr))
	assert.Equal(t, loads+1, store.loads.Load())
	got, err := svc.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 2, got.N)
}

// Requests arriving while the instance decides to expire must be served,
// not lost: hammer a key whose idle timeout is shorter than the gaps.
func TestExpiryRacingRequestsLosesNothing(t *testing.T) {
	t.Parallel()
	svc, mem := newCounterService(t, WithIdleTimeout(time.Millisecond))
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				assert.NoError(t, svc.Do(ctx, "k", incr))
				if (i+g)%3 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	got, _ := stored(t, mem, "k")
	assert.Equal(t, 200, got)
}

func TestMutationErrorChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("boom")

	t.Run("cloner", func(t *testing.T) {
		t.Parallel()
		store := &hookStore[string, bag]{Store: CreateIfMissing[string, bag](NewMemoryStore[string, bag](), nil)}
		svc := New[string, bag](store)
		defer shutdown(t, svc)

		require.NoError(t, svc.Do(ctx, "k", func(b *bag) error { b.Set("x", 1); return nil }))
		saves := store.saves.Load()
		err := svc.Do(ctx, "k", func(b *bag) error {
			b.Set("x", 99)
			b.Set("y", 2)
			return boom
		})
		require.ErrorIs(t, err, boom)
		got, err := svc.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"x": 1}, got.M)
		assert.Equal(t, saves, store.saves.Load(), "nothing saved")
	})

	t.Run("plain value", func(t *testing.T) {
		t.Parallel()
		svc, mem := newCounterService(t)
		require.NoError(t, svc.Do(ctx, "k", incr))
		err := svc.Do(ctx, "k", func(c *counter) error { c.N = 1000; return boom })
		require.ErrorIs(t, err, boom)
		got, err := svc.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, 1, got.N)
		n, _ := stored(t, mem, "k")
		assert.Equal(t, 1, n)
	})

	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		svc, _ := newCounterService(t)
		err := svc.Do(ctx, "k", func(c *counter) error { c.N = 7; panic("oops") })
		require.ErrorIs(t, err, ErrPanicked)
		got, err := svc.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, 0, got.N)
	})
}

// bag holds a map, so it needs a deep copy to keep failed mutations out.
type bag struct{ M map[string]int }

func (b bag) Clone() bag { return bag{M: maps.Clone(b.M)} }

func (b *bag) Set(k string, v int) {
	if b.M == nil {
		b.M = map[string]int{}
	}
	b.M[k] = v
}

func TestFailingStoreSurfacesErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	down := errors.New("database down")
	var broken atomic.Bool
	store := &hookStore[string, counter]{Store: CreateIfMissing[string, counter](NewMemoryStore[string, counter](), nil)}
	fail := func(context.Context, string) error {
		if broken.Load() {
			return down
		}
		return nil
	}
	store.onLoad = fail
	store.onSave = func(ctx context.Context, k string, _ counter, _ Version) error { return fail(ctx, k) }
	svc := New[string, counter](store)
	defer shutdown(t, svc)

	require.NoError(t, svc.Do(ctx, "live", incr))
	broken.Store(true)

	err := svc.Do(ctx, "live", incr) // instance live: the save fails
	require.ErrorIs(t, err, down)
	err = svc.Do(ctx, "cold", incr) // no instance: the load fails
	require.ErrorIs(t, err, down)
	_, err = svc.Get(ctx, "cold")
	require.ErrorIs(t, err, down)

	broken.Store(false)
	got, err := svc.Get(ctx, "live")
	require.NoError(t, err)
	assert.Equal(t, 1, got.N, "the failed save changed nothing")
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := NewMemoryStore[string, counter]()
	svc := New[string, counter](mem)
	defer shutdown(t, svc)

	err := svc.Do(ctx, "nobody", incr)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = svc.Get(ctx, "nobody")
	require.ErrorIs(t, err, ErrNotFound)

	_, err = mem.Save(ctx, "somebody", counter{N: 10}, 0)
	require.NoError(t, err)
	got, err := svc.Update(ctx, "somebody", incr)
	require.NoError(t, err)
	assert.Equal(t, 11, got.N)

	// CreateIfMissing writes nothing until a mutation succeeds.
	svc2 := New(CreateIfMissing[string, counter](mem, func(string) counter { return counter{N: 100} }))
	defer shutdown(t, svc2)
	require.Error(t, svc2.Do(ctx, "new", func(*counter) error { return errors.New("no") }))
	_, _, err = mem.Load(ctx, "new")
	require.ErrorIs(t, err, ErrNotFound)
	got, err = svc2.Update(ctx, "new", incr)
	require.NoError(t, err)
	assert.Equal(t, 101, got.N)
}

func TestContextCancellation(t *testing.T) {
	t.Parallel()
	svc, mem := newCounterService(t)

	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, svc.Do(ctx, "k", incr), context.Canceled)
	})

	t.Run("while queued: never runs", func(t *testing.T) {
		ctx := context.Background()
		started, release := make(chan struct{}), make(chan struct{})
		blocked := make(chan error, 1)
		go func() {
			blocked <- svc.Do(ctx, "q", func(c *counter) error {
				close(started)
				<-release
				c.N++
				return nil
			})
		}()
		<-started

		qctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		var ran atomic.Bool
		err := svc.Do(qctx, "q", func(c *counter) error { ran.Store(true); c.N += 100; return nil })
		require.ErrorIs(t, err, context.DeadlineExceeded)

		close(release)
		require.NoError(t, <-blocked)
		got, err := svc.Get(ctx, "q")
		require.NoError(t, err)
		assert.Equal(t, 1, got.N)
		assert.False(t, ran.Load(), "a mutation whose caller left before it started never runs")
	})

	t.Run("while running: may still apply", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		started, release := make(chan struct{}), make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			errc <- svc.Do(ctx, "r", func(c *counter) error {
				close(started)
				<-release
				c.N++
				return nil
			})
		}()
		<-started
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		close(release)
		require.Eventually(t, func() bool {
			c, _, err := mem.Load(context.Background(), "r")
			return err == nil && c.N == 1
		}, 2*time.Second, time.Millisecond, "the started mutation completes and is saved")
	})
}

func TestConflictRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("reloads and reruns", func(t *testing.T) {
		t.Parallel()
		mem := NewMemoryStore[string, counter]()
		_, err := mem.Save(ctx, "k", counter{N: 1}, 0)
		require.NoError(t, err)
		store := &hookStore[string, counter]{Store: mem}
		var once sync.Once
		store.onSave = func(ctx context.Context, k string, _ counter, _ Version) error {
			// Another process writes between our load and our save.
			once.Do(func() {
				c, v, _ := mem.Load(ctx, k)
				c.N += 10
				_, err := mem.Save(ctx, k, c, v)
				assert.NoError(t, err) // not require: this runs on the owner goroutine
			})
			return nil
		}
		svc := New[string, counter](store)
		defer shutdown(t, svc)

		var runs atomic.Int64
		got, err := svc.Update(ctx, "k", func(c *counter) error { runs.Add(1); c.N++; return nil })
		require.NoError(t, err)
		assert.Equal(t, 12, got.N, "the mutation ran again on fresh state")
		assert.EqualValues(t, 2, runs.Load())
		assert.EqualValues(t, 2, store.loads.Load())
		n, _ := stored(t, mem, "k")
		assert.Equal(t, 12, n)
	})

	t.Run("gives up with ErrConflict", func(t *testing.T) {
		t.Parallel()
		store := &hookStore[string, counter]{Store: CreateIfMissing[string, counter](NewMemoryStore[string, counter](), nil)}
		store.onSave = func(context.Context, string, counter, Version) error {
			return fmt.Errorf("always stale: %w", ErrConflict)
		}
		svc := New[string, counter](store, WithConflictRetries(3))
		defer shutdown(t, svc)
		err := svc.Do(ctx, "k", incr)
		require.ErrorIs(t, err, ErrConflict)
		assert.EqualValues(t, 4, store.saves.Load(), "1 attempt + 3 retries")
	})
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := New(CreateIfMissing[string, counter](NewMemoryStore[string, counter](), nil))
	for i := range 10 {
		require.NoError(t, svc.Do(ctx, fmt.Sprint(i), incr))
	}
	assert.EqualValues(t, 10, svc.live.Load())
	require.NoError(t, svc.Shutdown(ctx))
	assert.EqualValues(t, 0, svc.live.Load())
	require.ErrorIs(t, svc.Do(ctx, "0", incr), ErrClosed)
	_, err := svc.Get(ctx, "0")
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, svc.Shutdown(ctx), "second Shutdown is harmless")
}

func TestWriteBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	newStore := func() (*hookStore[string, counter], *MemoryStore[string, counter]) {
		mem := NewMemoryStore[string, counter]()
		return &hookStore[string, counter]{Store: CreateIfMissing[string, counter](mem, nil)}, mem
	}

	t.Run("flushes on shutdown", func(t *testing.T) {
		t.Parallel()
		store, mem := newStore()
		svc := New[string, counter](store, WithWriteBehind(time.Hour))
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() { assert.NoError(t, svc.Do(ctx, "k", incr)) })
		}
		wg.Wait()
		got, err := svc.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, 100, got.N, "applied in memory")
		assert.Zero(t, store.saves.Load(), "nothing saved before the interval")

		require.NoError(t, svc.Shutdown(ctx))
		n, v := stored(t, mem, "k")
		assert.Equal(t, 100, n)
		assert.Equal(t, Version(1), v)
		assert.EqualValues(t, 1, store.saves.Load(), "coalesced into one save")
	})

	t.Run("coalesces per interval", func(t *testing.T) {
		t.Parallel()
		store, mem := newStore()
		svc := New[string, counter](store, WithWriteBehind(30*time.Millisecond))
		defer shutdown(t, svc)
		for range 200 {
			require.NoError(t, svc.Do(ctx, "k", incr))
		}
		require.Eventually(t, func() bool { return peek(mem, "k") == 200 }, 2*time.Second, 5*time.Millisecond)
		assert.LessOrEqual(t, store.saves.Load(), int64(5))
	})

	t.Run("flushes on expiry", func(t *testing.T) {
		t.Parallel()
		store, mem := newStore()
		svc := New[string, counter](store, WithWriteBehind(time.Hour), WithIdleTimeout(20*time.Millisecond))
		defer shutdown(t, svc)
		require.NoError(t, svc.Do(ctx, "k", incr))
		require.NoError(t, svc.Do(ctx, "k", incr))
		require.Eventually(t, func() bool { return svc.live.Load() == 0 }, 2*time.Second, 5*time.Millisecond)
		n, _ := stored(t, mem, "k")
		assert.Equal(t, 2, n)
	})

	t.Run("retries with backoff and reports", func(t *testing.T) {
		t.Parallel()
		store, mem := newStore()
		var fails atomic.Int64
		fails.Store(2)
		down := errors.New("database down")
		store.onSave = func(context.Context, string, counter, Version) error {
			if fails.Add(-1) >= 0 {
				return down
			}
			return nil
		}
		reports := make(chan error, 10)
		svc := New[string, counter](store, WithWriteBehind(0), WithSaveRetries(5, time.Millisecond),
			WithErrorHandler(func(err error) { reports <- err }))
		defer shutdown(t, svc)

		require.NoError(t, svc.Do(ctx, "k", incr))
		require.Eventually(t, func() bool { return peek(mem, "k") == 1 }, 2*time.Second, time.Millisecond)
		require.Len(t, reports, 2)
		for i := 1; i <= 2; i++ {
			err := <-reports
			require.ErrorIs(t, err, down)
			var fe *FlushError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "k", fe.Key)
			assert.Equal(t, i, fe.Attempt)
			assert.False(t, fe.Final)
			assert.Equal(t, 1, fe.Pending)
		}
	})

	t.Run("final failure is reported, never silent", func(t *testing.T) {
		t.Parallel()
		store, _ := newStore()
		down := errors.New("database down")
		store.onSave = func(context.Context, string, counter, Version) error { return down }
		var mu sync.Mutex
		var reports []*FlushError
		svc := New[string, counter](store, WithWriteBehind(0), WithSaveRetries(3, time.Millisecond),
			WithErrorHandler(func(err error) {
				var fe *FlushError
				if !assert.ErrorAs(t, err, &fe) {
					return
				}
				mu.Lock()
				reports = append(reports, fe)
				mu.Unlock()
			}))
		defer shutdown(t, svc)
		require.NoError(t, svc.Do(ctx, "k", incr))
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(reports) == 3
		}, 2*time.Second, time.Millisecond)
		mu.Lock()
		last := reports[2]
		mu.Unlock()
		assert.True(t, last.Final)
		assert.Equal(t, 1, last.Pending)
		require.ErrorIs(t, last, down)

		// The discarded change is gone from memory too: memory matches the store.
		store.onSave = nil // (owner is idle: no concurrent read)
		_, err := svc.Get(ctx, "k")
		require.NoError(t, err)
	})

	t.Run("conflict replays pending changes on fresh state", func(t *testing.T) {
		t.Parallel()
		store, mem := newStore()
		svc := New[string, counter](store, WithWriteBehind(time.Hour))
		require.NoError(t, svc.Do(ctx, "k", incr))
		require.NoError(t, svc.Do(ctx, "k", func(c *counter) error { c.N *= 10; return nil }))
		// Another process writes the key meanwhile.
		_, err := mem.Save(ctx, "k", counter{N: 5}, 0)
		require.NoError(t, err)

		require.NoError(t, svc.Shutdown(ctx))
		n, v := stored(t, mem, "k")
		assert.Equal(t, (5+1)*10, n, "both changes re-applied in order on the other writer's state")
		assert.Equal(t, Version(2), v)
	})

	t.Run("shutdown deadline reports unsaved changes", func(t *testing.T) {
		t.Parallel()
		store, _ := newStore()
		store.onSave = func(ctx context.Context, _ string, _ counter, _ Version) error {
			<-ctx.Done() // a store that hangs until cancelled
			return ctx.Err()
		}
		reports := make(chan *FlushError, 10)
		svc := New[string, counter](store, WithWriteBehind(time.Hour),
			WithErrorHandler(func(err error) {
				var fe *FlushError
				if errors.As(err, &fe) {
					reports <- fe
				}
			}))
		require.NoError(t, svc.Do(ctx, "k", incr))
		sctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, svc.Shutdown(sctx), context.DeadlineExceeded)
		assert.EqualValues(t, 0, svc.live.Load())
		require.NotEmpty(t, reports)
		fe := <-reports
		assert.True(t, fe.Final)
		assert.Equal(t, 1, fe.Pending)
	})
}
