package socket

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/transport"
)

// scriptConn is a transport that reads the frames a test feeds it and
// counts every frame written, accepting each at once.
type scriptConn struct {
	in      chan []byte
	written *atomic.Int64
	once    sync.Once
	closed  chan struct{}
}

func newScriptConn(written *atomic.Int64) *scriptConn {
	return &scriptConn{in: make(chan []byte, 1), written: written, closed: make(chan struct{})}
}

func (s *scriptConn) ReadFrame(context.Context) ([]byte, bool, error) {
	select {
	case f := <-s.in:
		return f, false, nil
	case <-s.closed:
		return nil, false, transport.ErrClosed
	}
}

func (s *scriptConn) WriteFrame(context.Context, []byte, bool) error {
	s.written.Add(1)
	return nil
}

func (s *scriptConn) Close(transport.StatusCode, string) error { return s.CloseNow() }

func (s *scriptConn) CloseNow() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

type benchFeed struct{}

func (benchFeed) Join(*channel.Context[struct{}], channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

func (benchFeed) HandleIn(*channel.Context[struct{}], string, channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// feedServer is a server whose feed:* route is recoverable when rec is set.
type feedServer struct {
	srv     *Server[struct{}]
	ps      *pubsub.Local
	rec     *channel.Recovery
	store   history.Store
	written atomic.Int64
}

func newFeedServer(recoverable bool) *feedServer {
	f := &feedServer{ps: pubsub.NewLocal("n1")}
	router := channel.NewRouter[struct{}]()
	var opts []channel.RouteOption
	if recoverable {
		f.store = history.NewMemory(history.Options{})
		f.rec = channel.NewRecovery(f.store, channel.RecoveryOptions{})
		opts = append(opts, channel.Recoverable(f.rec))
	}
	router.Handle("feed:*", func() channel.Handler[struct{}] { return benchFeed{} }, opts...)
	f.srv = New(Config[struct{}]{
		Authenticator: AuthenticatorFunc[struct{}](func(context.Context, *ConnectRequest) (struct{}, error) { return struct{}{}, nil }),
		Router:        router,
		PubSub:        f.ps,
	})
	return f
}

// join connects n sockets and joins each to topic with the join payload,
// returning once every reply is written.
func (f *feedServer) join(tb testing.TB, n int, topic, payload string) {
	start := f.written.Load()
	frame := []byte(`["1","1",` + strconv.Quote(topic) + `,"phx_join",` + payload + `]`)
	for range n {
		sc := newScriptConn(&f.written)
		c := f.srv.newConn(sc, connected[struct{}]{serializer: protocol.V2}, "websocket")
		go c.readLoop()
		sc.in <- frame
	}
	f.await(tb, start+int64(n))
}

func (f *feedServer) await(tb testing.TB, want int64) {
	deadline := time.Now().Add(30 * time.Second)
	for f.written.Load() < want {
		if time.Now().After(deadline) {
			tb.Fatalf("%d frames written, want %d", f.written.Load(), want)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func (f *feedServer) broadcast(tb testing.TB, topic string, n int) {
	ctx := context.Background()
	payload := protocol.JSONPayload([]byte(`{"n":` + strconv.Itoa(n) + `,"body":"hello, recoverable world"}`))
	var err error
	if f.rec != nil {
		err = f.rec.Broadcast(ctx, f.ps, topic, "post", payload)
	} else {
		err = f.ps.Broadcast(ctx, &pubsub.Message{Topic: topic, Event: "post", Payload: payload})
	}
	if err != nil {
		tb.Fatal(err)
	}
}

func (f *feedServer) shutdown(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkFeedFanout is one broadcast to 1,000 sockets joined to one
// topic, through the whole server path but the network write (encode once,
// queue, writer goroutine), with the topic's history off (a plain route)
// and on (a recoverable route on the in-memory store: number, record, add
// the position to the payload). p99-µs/broadcast is the 99th percentile of
// the time from Broadcast to its last subscriber's write. cpu-ns/delivery is the process's CPU time
// per delivery, the figure the "under 10%" target is about.
func BenchmarkFeedFanout(b *testing.B) {
	const subs = 1000
	for _, mode := range []struct {
		name string
		on   bool
	}{{"history=off", false}, {"history=on", true}} {
		b.Run(mode.name, func(b *testing.B) {
			f := newFeedServer(mode.on)
			f.join(b, subs, "feed:1", "{}")
			want := f.written.Load()
			n := 0
			var lat []time.Duration
			b.ReportAllocs()
			cpu := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				n++
				t0 := time.Now()
				f.broadcast(b, "feed:1", n)
				want += subs
				f.await(b, want)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs/broadcast")
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(n*subs), "cpu-ns/delivery")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*subs), "ns/delivery")
			f.shutdown(b)
		})
	}
}

// BenchmarkMassRecovery is 1,000 sockets joining at once, each naming a
// position 1,000 broadcasts back in a recoverable topic's history: one op
// is every join answered and all 1,000,000 replayed broadcasts written.
// The store is queried once per distinct position (shared flights), so the
// cost is the replay's encoding and queueing.
func BenchmarkMassRecovery(b *testing.B) {
	const clients, missed = 1000, 1000
	f := newFeedServer(true)
	for n := 1; n <= missed; n++ {
		f.broadcast(b, "feed:1", n)
	}
	res, err := f.store.Since(context.Background(), "feed:1", history.Position{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	since := `{"since":{"offset":0,"epoch":"` + res.Top.Epoch + `"}}`
	cpu := cpuTime()
	ops := 0
	b.ResetTimer()
	for b.Loop() {
		ops++
		start := f.written.Load()
		f.join(b, clients, "feed:1", since)
		f.await(b, start+clients*(missed+1))
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(ops)/1e6, "cpu-ms/op")
	f.shutdown(b)
}
