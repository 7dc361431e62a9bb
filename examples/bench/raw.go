package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// rawConn is the lean driver used where thousands of sockets share one
// generator (scenario conns): a coder/websocket connection speaking V2
// frames by hand, with one reader goroutine and no timers. socket/client
// runs a reader, a writer and a heartbeat goroutine per connection, plus a
// timer, which at 15,000 sockets costs the generator more memory and
// scheduler time than the server under test spends.
type rawConn struct {
	ws  *websocket.Conn
	ref atomic.Uint64
}

// httpClientFrom returns an HTTP client whose connections leave from src
// (nil: the kernel's choice), so that sockets can be spread over 127.0.0.x
// source addresses, each with its own range of ephemeral ports.
func httpClientFrom(src net.IP) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// dialRaw opens a V2 socket at wsURL (already ending in /websocket).
func dialRaw(ctx context.Context, hc *http.Client, wsURL string) (*rawConn, error) {
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient:      hc,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(16 << 20)
	return &rawConn{ws: ws}, nil
}

// join joins topic and waits for the reply, reading nothing else (the
// socket is fresh, so nothing else can arrive first).
func (c *rawConn) join(ctx context.Context, topic string) error {
	ref := strconv.FormatUint(c.ref.Add(1), 10)
	frame := `["` + ref + `","` + ref + `","` + topic + `","phx_join",{}]`
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		return fmt.Errorf("join %s: %w", topic, err)
	}
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("join %s: %w", topic, err)
		}
		if !bytes.Contains(data, []byte(`"phx_reply"`)) || !bytes.HasPrefix(data, []byte(`["`+ref+`","`+ref+`"`)) {
			continue
		}
		if !bytes.Contains(data, []byte(`"status":"ok"`)) {
			return fmt.Errorf("join %s refused: %s", topic, data)
		}
		return nil
	}
}

// heartbeat sends one phoenix heartbeat; the reply is consumed by drain.
func (c *rawConn) heartbeat(ctx context.Context) error {
	ref := strconv.FormatUint(c.ref.Add(1), 10)
	return c.ws.Write(ctx, websocket.MessageText, []byte(`[null,"`+ref+`","phoenix","heartbeat",{}]`))
}

// readInto appends the next message to buf, reusing its storage.
func (c *rawConn) readInto(buf []byte) ([]byte, error) {
	_, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return buf, err
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(512, cap(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// drain reads and discards frames until the connection ends, so that
// control frames are answered and the server's writes never back up.
func (c *rawConn) drain() error {
	var buf []byte
	for {
		var err error
		if buf, err = c.readInto(buf[:0]); err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

func (c *rawConn) close() { _ = c.ws.CloseNow() }
