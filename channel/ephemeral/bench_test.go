package ephemeral

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkDoHotKey measures a write-through Do on a key whose instance is
// already live: enqueue, hand-off to the owner goroutine, mutate a copy,
// save to a MemoryStore, reply.
func BenchmarkDoHotKey(b *testing.B) {
	svc := New(CreateIfMissing[string, counter](NewMemoryStore[string, counter](), nil))
	defer svc.Shutdown(context.Background())
	ctx := context.Background()
	if err := svc.Do(ctx, "hot", incr); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := svc.Do(ctx, "hot", incr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDoColdKey measures a Do on a key never seen before: starting
// the owner goroutine, loading (absent, so the default state), saving.
func BenchmarkDoColdKey(b *testing.B) {
	svc := New(CreateIfMissing[string, counter](NewMemoryStore[string, counter](), nil))
	defer svc.Shutdown(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := svc.Do(ctx, strconv.Itoa(i), incr); err != nil {
			b.Fatal(err)
		}
	}
}
