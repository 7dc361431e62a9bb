package channel

import (
	"strconv"
	"testing"
)

// BenchmarkRouterLookup resolves a join's topic on a router shaped like a
// real app's: a few exact routes, then wildcards, the match near the end.
func BenchmarkRouterLookup(b *testing.B) {
	r := NewRouter[struct{}]()
	h := func() Handler[struct{}] { return nil }
	for i := range 8 {
		r.Handle("lobby:"+strconv.Itoa(i), h)
	}
	for _, p := range []string{"room:*", "user:*", "game:*", "bench:*"} {
		r.Handle(p, h)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r.lookup("bench:fanout-1234") == nil {
			b.Fatal("no route")
		}
	}
}
