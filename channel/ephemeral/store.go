package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Version identifies one stored revision of a key's state. Stores choose
// the numbering; the service only hands back what Load returned. The zero
// Version means "nothing stored yet": a Save with expected == 0 must insert
// and must fail with ErrConflict if the key already exists.
type Version uint64

var (
	// ErrConflict reports that a Save was based on a version that is no
	// longer the stored one. Stores return it (wrapped with %w is fine);
	// the service reacts by reloading and re-running the mutation.
	ErrConflict = errors.New("ephemeral: version conflict")

	// ErrNotFound is what a Store's Load returns for a key it does not
	// hold. The service passes it to the caller (wrapped) and does not
	// create anything; wrap the store with CreateIfMissing to start
	// absent keys from a default state instead.
	ErrNotFound = errors.New("ephemeral: not found")

	// ErrClosed is returned by Do, Update and Get once Shutdown has begun.
	ErrClosed = errors.New("ephemeral: service closed")

	// ErrPanicked wraps the value of a mutation that panicked. The panic
	// is recovered so that one bad mutation fails its caller instead of
	// the owner goroutine and every other caller of the key.
	ErrPanicked = errors.New("ephemeral: mutation panicked")
)

// Store loads and saves the state of one key with optimistic concurrency.
// It is the only component that talks to the database, and it must be safe
// for concurrent use: the service calls it from one goroutine per key.
//
// Load returns the current state and its version, or an error wrapping
// ErrNotFound when the key does not exist.
//
// Save stores state if the stored version still equals expected and
// returns the new version. When it does not (someone else saved in between,
// or the key already exists while expected is 0) Save must return an error
// wrapping ErrConflict and change nothing. Save must not keep a reference
// to state after it returns.
//
// Both methods should honour ctx: it is cancelled when Service.Shutdown
// runs out of time, and the owner goroutine cannot end before they return.
type Store[K comparable, S any] interface {
	Load(ctx context.Context, key K) (S, Version, error)
	Save(ctx context.Context, key K, state S, expected Version) (Version, error)
}

// Cloner is implemented by state types that need a deep copy, typically
// because they hold maps or slices that mutations change in place. When S
// (or *S) implements Cloner[S], the service and MemoryStore use Clone
// wherever they would otherwise copy by assignment.
type Cloner[S any] interface {
	Clone() S
}

// cloneFunc returns a deep copy function for S, or nil when S has no Clone
// method and plain assignment is all we can do.
func cloneFunc[S any]() func(S) S {
	var zero S
	if _, ok := any(zero).(Cloner[S]); ok {
		return func(s S) S { return any(s).(Cloner[S]).Clone() }
	}
	if _, ok := any(&zero).(Cloner[S]); ok {
		return func(s S) S { return any(&s).(Cloner[S]).Clone() }
	}
	return nil
}

// CreateIfMissing wraps store so that a Load reporting ErrNotFound yields
// newState(key) at version 0 instead of an error. Nothing is written until
// the first successful mutation saves it, so a failed first mutation leaves
// the key absent. A nil newState starts from the zero value of S.
func CreateIfMissing[K comparable, S any](store Store[K, S], newState func(key K) S) Store[K, S] {
	return &createIfMissing[K, S]{Store: store, newState: newState}
}

type createIfMissing[K comparable, S any] struct {
	Store[K, S]
	newState func(K) S
}

func (c *createIfMissing[K, S]) Load(ctx context.Context, key K) (S, Version, error) {
	s, v, err := c.Store.Load(ctx, key)
	if errors.Is(err, ErrNotFound) {
		var fresh S
		if c.newState != nil {
			fresh = c.newState(key)
		}
		return fresh, 0, nil
	}
	return s, v, err
}

// MemoryStore is a Store kept in a map, for tests, examples and state that
// need not outlive the process. The zero value is not usable; call
// NewMemoryStore. It copies state on the way in and out (deeply when S
// implements Cloner), so callers never share memory with it.
type MemoryStore[K comparable, S any] struct {
	clone func(S) S

	mu   sync.Mutex
	data map[K]memEntry[S]
}

type memEntry[S any] struct {
	state   S
	version Version
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore[K comparable, S any]() *MemoryStore[K, S] {
	return &MemoryStore[K, S]{clone: cloneFunc[S](), data: make(map[K]memEntry[S])}
}

func (m *MemoryStore[K, S]) copy(s S) S {
	if m.clone != nil {
		return m.clone(s)
	}
	return s
}

// Load returns a copy of the stored state, or ErrNotFound.
func (m *MemoryStore[K, S]) Load(ctx context.Context, key K) (S, Version, error) {
	m.mu.Lock()
	e, ok := m.data[key]
	m.mu.Unlock()
	if !ok {
		var zero S
		return zero, 0, fmt.Errorf("key %v: %w", key, ErrNotFound)
	}
	return m.copy(e.state), e.version, nil
}

// Save stores a copy of state if expected matches the stored version
// (0 for an absent key) and returns expected+1.
func (m *MemoryStore[K, S]) Save(ctx context.Context, key K, state S, expected Version) (Version, error) {
	state = m.copy(state)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.data[key].version
	if cur != expected {
		return 0, fmt.Errorf("key %v: stored version %d, expected %d: %w", key, cur, expected, ErrConflict)
	}
	m.data[key] = memEntry[S]{state: state, version: expected + 1}
	return expected + 1, nil
}
