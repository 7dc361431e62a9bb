package presence

import (
	"encoding/json"
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

// BenchmarkTransfer100k is the transfer a restarted node asks of one peer in
// a 6-node, 100,000-presence cluster: extract the 83,335 presences of the
// other five replicas, split them into messages, and merge those into a new
// replica's state. bytes/op is the JSON sent, messages/op how many messages
// carried it.
func BenchmarkTransfer100k(b *testing.B) {
	src := stateFor("n0", "n1", "n2", "n3", "n4", "n5")
	for r := range 5 {
		peer := stateFor(fmt.Sprintf("n%d", r+1), "n0")
		for i := range 16_667 {
			addLocal(peer, fmt.Sprintf("presence:%d", i%10), fmt.Sprintf("w%d-%d", r, i))
		}
		src.merge(peer.takeDelta())
	}
	src.takeChanges()
	for _, max := range []int{0, DefaultMaxMessageBytes} {
		b.Run(fmt.Sprintf("max=%d", max), func(b *testing.B) {
			var bytes, msgs int
			b.ReportAllocs()
			for b.Loop() {
				dst := stateFor("n6", "n0", "n1", "n2", "n3", "n4", "n5")
				parts := split(src.extract(dst.self, dst.clock()), max, nil)
				for _, p := range parts {
					buf, err := json.Marshal(wireMsg{From: src.self, State: p})
					if err != nil {
						b.Fatal(err)
					}
					var w wireMsg
					if err := json.Unmarshal(buf, &w); err != nil {
						b.Fatal(err)
					}
					dst.merge(w.State)
					bytes += len(buf)
				}
				msgs += len(parts)
				if got := len(dst.list("presence:0")); got != 8_335 {
					b.Fatalf("presence:0 has %d presences, want 8,335", got)
				}
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes/op")
			b.ReportMetric(float64(msgs)/float64(b.N), "messages/op")
		})
	}
}
