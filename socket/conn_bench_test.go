package socket

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/transport"
)

// discardConn is a transport that accepts every write at once and reads
// nothing until closed.
type discardConn struct {
	written *atomic.Int64
	once    sync.Once
	closed  chan struct{}
}

func (d *discardConn) ReadFrame(ctx context.Context) ([]byte, bool, error) {
	<-d.closed
	return nil, false, transport.ErrClosed
}

func (d *discardConn) WriteFrame(context.Context, []byte, bool) error {
	d.written.Add(1)
	return nil
}

func (d *discardConn) Close(transport.StatusCode, string) error { return d.CloseNow() }

func (d *discardConn) CloseNow() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// BenchmarkConnFanout queues one shared frame on 1,000 connections, as a
// broadcast does, and waits until every writer has written it: the cost of
// the outbound path per delivery (queue, writer goroutine, batch), without
// the network. allocs/op is per broadcast of 1,000 deliveries.
func BenchmarkConnFanout(b *testing.B) {
	const n = 1000
	s := New(Config[struct{}]{
		Authenticator: AuthenticatorFunc[struct{}](func(context.Context, *ConnectRequest) (struct{}, error) { return struct{}{}, nil }),
		Router:        channel.NewRouter[struct{}](),
	})
	var written atomic.Int64
	conns := make([]*conn[struct{}], n)
	for i := range conns {
		c := s.newConn(&discardConn{written: &written, closed: make(chan struct{})}, connected[struct{}]{serializer: protocol.V2}, "websocket")
		go c.readLoop()
		conns[i] = c
	}
	frame := []byte(`[null,null,"bench:fanout","fanout",{"seq":1}]`)
	want := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range conns {
			c.Send(frame, false)
		}
		want += n
		for written.Load() < want {
			time.Sleep(10 * time.Microsecond)
		}
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
}
