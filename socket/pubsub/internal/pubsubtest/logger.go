package pubsubtest

import (
	"log/slog"
	"sync"
	"testing"
)

// Logger returns a logger writing to the test's output while the test runs.
// Broker clients report outages from their own goroutines, sometimes after
// the test has ended; writing to a finished test's output is a data race, so
// those late lines are dropped. Create it before the adapter, so that its
// cleanup runs after the adapter's Close.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, nil))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.t.Output().Write(p)
}
