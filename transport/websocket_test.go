package transport

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// wsServer upgrades every request and hands the connection to serve.
func wsServer(t testing.TB, serve func(Conn)) (string, func()) {
	var wg sync.WaitGroup
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := AcceptWebSocket(w, r, WebSocketOptions{})
		if err != nil {
			return
		}
		wg.Go(func() { serve(c) })
	}))
	return "ws" + strings.TrimPrefix(hs.URL, "http"), func() { hs.Close(); wg.Wait() }
}

// Frames larger than the trimmed buffers must cross intact both ways.
func TestWebSocketFramesLargerThanBuffers(t *testing.T) {
	defer goleak.VerifyNone(t)
	url, stop := wsServer(t, func(c Conn) {
		defer c.CloseNow()
		for {
			data, bin, err := c.ReadFrame(context.Background())
			if err != nil {
				return
			}
			if err := c.WriteFrame(context.Background(), data, bin); err != nil {
				return
			}
		}
	})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	for _, n := range []int{1, wsReadBuffer - 1, wsReadBuffer + 7, 125, 126, 0xFFFF, 0x10000, 100_000} {
		msg := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		require.NoError(t, ws.Write(ctx, websocket.MessageBinary, msg))
		typ, got, err := ws.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, websocket.MessageBinary, typ)
		require.Equal(t, msg, got, "frame of %d bytes", n)
	}
	require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
}

// BenchmarkIdleWebSocket reports the heap and stack an idle upgraded
// connection keeps, both ends included (client and server share the
// process), after a collection: the server's buffers are a large share.
func BenchmarkIdleWebSocket(b *testing.B) {
	const n = 500
	var live atomic.Int64
	url, stop := wsServer(b, func(c Conn) {
		defer c.CloseNow()
		live.Add(1)
		defer live.Add(-1)
		_, _, _ = c.ReadFrame(context.Background())
	})
	defer stop()
	ctx := context.Background()
	waitLive := func(want int64) {
		for deadline := time.Now().Add(10 * time.Second); live.Load() != want; {
			if time.Now().After(deadline) {
				b.Fatalf("%d server connections, want %d", live.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var total float64
	iters := 0
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			ws, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = ws
		}
		waitLive(n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		total += float64(after.HeapAlloc+after.StackInuse-before.HeapAlloc-before.StackInuse) / n
		iters++
		for _, ws := range conns {
			ws.CloseNow()
		}
		waitLive(0)
	}
	b.ReportMetric(total/float64(iters), "B/idle-conn")
}
