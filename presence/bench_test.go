package presence

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx/socket/pubsub"
)

type countingSub struct{ n *atomic.Int64 }

func (c countingSub) Deliver(*pubsub.Message) { c.n.Add(1) }

// BenchmarkJoinBurst tracks 10,000 presences on one topic (one op = the whole
// burst, until every diff has been delivered) with N local subscribers,
// with and without coalescing. diffs/op is the number of presence_diff
// broadcasts, deliveries/op the number of Deliver calls they caused.
func BenchmarkJoinBurst(b *testing.B) {
	const burst = 10_000
	for _, window := range []time.Duration{0, DefaultCoalesce} {
		for _, subs := range []int{1, 100} {
			name := fmt.Sprintf("coalesce=%v/subscribers=%d", window, subs)
			b.Run(name, func(b *testing.B) {
				chans := make([]*fakeChan, burst)
				for i := range chans {
					chans[i] = newChan("room:1")
				}
				meta := map[string]any{"online_at": 1700000000}
				var diffs, deliveries atomic.Int64
				diffCounter := countingSub{&diffs}
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					ps := pubsub.NewLocal("n1")
					tr := New(ps, WithLogger(quiet), WithCoalesce(window))
					ps.Subscribe("room:1", diffCounter)
					for range subs - 1 {
						ps.Subscribe("room:1", &countingSub{&deliveries})
					}
					b.StartTimer()
					for i, ch := range chans {
						if _, err := tr.Track(ch, fmt.Sprint("user", i), meta); err != nil {
							b.Fatal(err)
						}
					}
					tr.flush()
					b.StopTimer()
					_ = tr.Close()
					b.StartTimer()
				}
				n := float64(b.N)
				b.ReportMetric(float64(diffs.Load())/n, "diffs/op")
				b.ReportMetric(float64(diffs.Load()+deliveries.Load())/n, "deliveries/op")
			})
		}
	}
}
