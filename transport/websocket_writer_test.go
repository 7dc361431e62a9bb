package transport

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A client's ping gets a pong through wsConn's own writer (coder/websocket
// is told not to send one), including while the server is parked in Wait.
func TestWebSocketPingPong(t *testing.T) {
	defer goleak.VerifyNone(t)
	url, stop := wsServer(t, func(c Conn) {
		defer c.CloseNow()
		ic := c.(IdleConn)
		for {
			if ic.Idle() {
				ic.Wait()
			}
			if _, _, err := c.ReadFrame(context.Background()); err != nil {
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
	rctx := ws.CloseRead(ctx) // the client must read to see pongs
	for i := range 5 {
		require.NoError(t, ws.Ping(ctx), "ping %d", i)
	}
	require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
	<-rctx.Done()
}

// A server Close while its reader is parked in Wait interrupts the wait,
// runs the closing handshake (the client gets the code and reason) and
// lets the reader see the end.
func TestWebSocketCloseWhileWaiting(t *testing.T) {
	defer goleak.VerifyNone(t)
	parked := make(chan Conn, 1)
	readerDone := make(chan error, 1)
	url, stop := wsServer(t, func(c Conn) {
		ic := c.(IdleConn)
		require.True(t, ic.Idle())
		parked <- c
		ic.Wait()
		_, _, err := c.ReadFrame(context.Background())
		readerDone <- err
	})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	c := <-parked
	time.Sleep(20 * time.Millisecond) // let the reader reach Peek
	closed := make(chan error, 1)
	go func() { closed <- c.Close(StatusServiceRestart, "restart") }()
	_, _, err = ws.Read(ctx)
	require.Equal(t, websocket.StatusCode(StatusServiceRestart), websocket.CloseStatus(err), "client read: %v", err)
	var ce websocket.CloseError
	require.True(t, errors.As(err, &ce))
	require.Equal(t, "restart", ce.Reason)
	require.NoError(t, <-closed)
	require.Error(t, <-readerDone)
}

// A frame sent while the server is parked in Wait wakes it, and ReadFrame
// returns exactly that frame; then the server parks again.
func TestWebSocketWaitWakesOnFrame(t *testing.T) {
	defer goleak.VerifyNone(t)
	got := make(chan string, 10)
	url, stop := wsServer(t, func(c Conn) {
		defer c.CloseNow()
		ic := c.(IdleConn)
		for {
			if ic.Idle() {
				ic.Wait()
			}
			data, _, err := c.ReadFrame(context.Background())
			if err != nil {
				close(got)
				return
			}
			got <- string(data)
		}
	})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	for i := range 3 {
		time.Sleep(10 * time.Millisecond)
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("m"+strconv.Itoa(i))))
		require.Equal(t, "m"+strconv.Itoa(i), <-got)
	}
	require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
	_, open := <-got
	require.False(t, open)
}

// Writers racing Close: every frame the client receives is whole (no
// interleaving with the closing frame), the close code arrives, and writes
// after Close fail with an error matching net.ErrClosed.
func TestWebSocketWritesRacingClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	const writers, frames = 4, 200
	conns := make(chan Conn, 1)
	url, stop := wsServer(t, func(c Conn) {
		conns <- c
		_, _, _ = c.ReadFrame(context.Background()) // runs the handshake's read side
	})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	c := <-conns
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range frames {
				if err := c.WriteFrame(ctx, payload, false); err != nil {
					require.ErrorIs(t, err, net.ErrClosed)
					return
				}
			}
		})
	}
	recv := make(chan error, 1)
	go func() {
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				recv <- err
				return
			}
			if string(data) != string(payload) {
				recv <- errors.New("torn frame")
				return
			}
		}
	}()
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, c.Close(StatusNormalClosure, "bye"))
	wg.Wait()
	err = <-recv
	require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err), "client: %v", err)
	require.ErrorIs(t, c.WriteFrame(ctx, []byte("late"), false), net.ErrClosed)
}
