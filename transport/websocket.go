package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Subprotocol is the WebSocket subprotocol phoenix.js 1.8 offers with an
// authToken; the server must echo it or clients abort the handshake.
const Subprotocol = "phoenix"

// authTokenPrefix starts the subprotocol entry carrying phoenix.js's
// authToken: base64url.bearer.phx.<standard base64 without padding>.
const authTokenPrefix = "base64url.bearer.phx."

// WebSocketOptions configures AcceptWebSocket.
type WebSocketOptions struct {
	// MaxFrameSize is the largest frame a client may send; larger frames close
	// the connection with 1009. Zero means no limit.
	MaxFrameSize int64
}

// AcceptWebSocket upgrades the request. The caller has already checked the
// origin and authenticated the client. On failure the response has been
// written (400 for an invalid upgrade).
func AcceptWebSocket(w http.ResponseWriter, r *http.Request, opts WebSocketOptions) (Conn, error) {
	wc := &wsConn{resume: make(chan struct{}), woke: make(chan struct{})}
	ao := &websocket.AcceptOptions{
		// Origins are checked by the socket package with Phoenix's rules.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
		// Pongs go out through the connection's own frame writer, which
		// then is the only one writing (see wsConn).
		OnPingReceived: wc.onPing,
	}
	if offersPhoenix(r.Header) {
		ao.Subprotocols = []string{Subprotocol}
	}
	if hj, ok := w.(http.Hijacker); ok {
		// Otherwise Accept refuses w itself (501), before writing the 101.
		w = hijacker{w, hj, wc}
	}
	c, err := websocket.Accept(w, r, ao)
	if err != nil {
		return nil, fmt.Errorf("transport: websocket upgrade: %w", err)
	}
	limit := opts.MaxFrameSize
	if limit <= 0 {
		limit = -1
	}
	c.SetReadLimit(limit)
	wc.c = c
	return wc, nil
}

// The buffers of an upgraded connection. net/http hands over its 4 KiB
// read and 4 KiB write buffers, which a WebSocket keeps for life: at 15,000
// idle sockets that was 40 % of their memory.
//
// Client frames are small (heartbeats, pushes): a 256-byte reader takes a
// heartbeat or a join in one read, and a larger frame's payload is read
// straight into its own slice. Server frames do not go through a buffer at
// all: wsConn writes each as one writev of its header and the payload bytes,
// which a broadcast shares among all its subscribers. coder/websocket's own
// writer only ever sends the closing frame (at most 127 bytes), so its
// buffer is tiny.
const (
	wsReadBuffer    = 256
	wsControlBuffer = 160
)

// hijacker is the ResponseWriter given to websocket.Accept: its Hijack
// swaps the server's buffers for small ones and gives wsConn the raw
// connection.
type hijacker struct {
	http.ResponseWriter
	hj http.Hijacker
	wc *wsConn
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := h.hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("transport: hijack: %w", err)
	}
	br := brw.Reader
	if br.Buffered() == 0 {
		// Nothing read ahead (a client waits for the 101 before sending):
		// the server's buffer can go.
		br = bufio.NewReaderSize(c, wsReadBuffer)
	}
	h.wc.nc, h.wc.br = c, br
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		h.wc.writev = true
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, wsControlBuffer)), nil
}

func offersPhoenix(h http.Header) bool {
	for _, p := range subprotocols(h) {
		if p == Subprotocol {
			return true
		}
	}
	return false
}

func subprotocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// AuthToken extracts the token phoenix.js 1.8 sends in Sec-WebSocket-Protocol
// (option authToken). It accepts the standard and URL-safe base64 alphabets
// with or without padding; exactly one token entry must be present, as in
// Phoenix. A malformed entry yields "" rather than failing the handshake.
func AuthToken(h http.Header) string {
	var found []string
	for _, p := range subprotocols(h) {
		if strings.HasPrefix(p, authTokenPrefix) {
			found = append(found, strings.TrimPrefix(p, authTokenPrefix))
		}
	}
	if len(found) != 1 {
		return ""
	}
	tok, err := decodeBase64Lenient(found[0])
	if err != nil {
		return ""
	}
	return string(tok)
}

// wsConn is a server WebSocket connection. coder/websocket reads client
// frames and runs the closing handshake; wsConn writes the data frames and
// pongs itself, each as one write call on the raw connection, so that no
// write buffer is kept per connection and a broadcast's bytes go to the
// kernel without a copy. Frames cannot interleave on the wire: every frame
// is a single write (the net.Conn serializes writes), and coder/websocket's
// writer sends only the closing frame, after Close has stopped wsConn's.
type wsConn struct {
	c      *websocket.Conn
	nc     net.Conn
	br     *bufio.Reader
	writev bool // nc writes net.Buffers with one writev

	// wmu orders wsConn's frames; closed, once Close began, stops them.
	wmu    sync.Mutex
	closed bool
	hdr    [maxFrameHeader]byte
	vec    [2][]byte
	bufs   net.Buffers

	// Waiting for the next frame happens outside coder/websocket's read
	// lock, so Close first interrupts a Wait (a read deadline in the past),
	// then lets it go on once the handshake may read.
	pmu       sync.Mutex
	waiting   bool
	closing   bool
	interrupt sync.Once
	woke      chan struct{} // closed by an interrupted Wait
	resume    chan struct{} // closed by Close: reads may go on
}

const maxFrameHeader = 10

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opPong   = 0xA
)

// closeWait bounds how long Close waits for a frame being written.
const closeWait = 5 * time.Second

// aLongTimeAgo is a deadline in the past: it fails pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

func (w *wsConn) ReadFrame(ctx context.Context) ([]byte, bool, error) {
	typ, r, err := w.c.Reader(ctx)
	if err != nil {
		return nil, false, err
	}
	// A fresh slice per frame: frames outlive the read (payloads are handed
	// to channel goroutines), and idle connections keep no buffer.
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, false, err
	}
	return data, typ == websocket.MessageBinary, nil
}

// Idle implements IdleConn.
func (w *wsConn) Idle() bool {
	w.pmu.Lock()
	defer w.pmu.Unlock()
	// Once closing, coder/websocket's handshake may be reading: leave the
	// buffer to it.
	return !w.closing && w.br != nil && w.br.Buffered() == 0
}

// Wait implements IdleConn.
func (w *wsConn) Wait() {
	w.pmu.Lock()
	if w.closing || w.br == nil {
		w.pmu.Unlock()
		return
	}
	w.waiting = true
	w.pmu.Unlock()
	_, _ = w.br.Peek(1) // an error is the next read's to report
	w.pmu.Lock()
	w.waiting = false
	interrupted := w.closing
	w.pmu.Unlock()
	if interrupted {
		close(w.woke)
		<-w.resume
	}
}

// stopWaiting interrupts a Wait in progress and returns once it is over and
// the connection reads normally again.
func (w *wsConn) stopWaiting() {
	w.interrupt.Do(func() {
		w.pmu.Lock()
		w.closing = true
		waiting := w.waiting
		w.pmu.Unlock()
		if waiting {
			_ = w.nc.SetReadDeadline(aLongTimeAgo)
			<-w.woke
			_ = w.nc.SetReadDeadline(time.Time{})
		}
		close(w.resume)
	})
}

func (w *wsConn) WriteFrame(ctx context.Context, data []byte, binary bool) error {
	op := byte(opText)
	if binary {
		op = opBinary
	}
	return w.writeFrame(ctx, op, data)
}

// errWriteClosed is returned by writes after Close.
var errWriteClosed = fmt.Errorf("transport: websocket closing: %w", net.ErrClosed)

func (w *wsConn) writeFrame(ctx context.Context, op byte, data []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed || w.nc == nil {
		return errWriteClosed
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = w.nc.SetWriteDeadline(aLongTimeAgo) })
		defer func() {
			if !stop() {
				_ = w.nc.SetWriteDeadline(time.Time{})
			}
		}()
	}
	hdr := appendFrameHeader(w.hdr[:0], op, len(data))
	var err error
	if w.writev {
		w.vec[0], w.vec[1] = hdr, data
		w.bufs = w.vec[:]
		_, err = w.bufs.WriteTo(w.nc)
		w.vec, w.bufs = [2][]byte{}, nil // keep no reference to the payload
	} else {
		// TLS and other wrapped connections: one Write, so one record.
		bp := frameBufs.Get().(*[]byte)
		b := append(append((*bp)[:0], hdr...), data...)
		_, err = w.nc.Write(b)
		if cap(b) <= maxPooledFrame {
			*bp = b[:0]
			frameBufs.Put(bp)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("transport: websocket write: %w", ctx.Err())
		}
		return fmt.Errorf("transport: websocket write: %w", err)
	}
	return nil
}

// frameBufs holds the copy buffers of connections that cannot writev.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledFrame = 64 << 10

// appendFrameHeader appends an unmasked, final frame header (servers never
// mask, RFC 6455 section 5.1).
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// onPing answers a client's ping through writeFrame and tells
// coder/websocket not to send its own pong.
func (w *wsConn) onPing(ctx context.Context, payload []byte) bool {
	_ = w.writeFrame(ctx, opPong, payload)
	return false
}

func (w *wsConn) Close(code StatusCode, reason string) error {
	w.stopWaiting()
	// Stop wsConn's writer: wait for a frame being written (a stuck one
	// fails after closeWait), and refuse later ones, so that the closing
	// frame coder/websocket writes is alone on the wire.
	if w.nc != nil {
		_ = w.nc.SetWriteDeadline(time.Now().Add(closeWait))
	}
	w.wmu.Lock()
	w.closed = true
	w.wmu.Unlock()
	if w.nc != nil {
		_ = w.nc.SetWriteDeadline(time.Time{})
	}
	err := w.c.Close(websocket.StatusCode(code), reason)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (w *wsConn) CloseNow() error { return w.c.CloseNow() }

// CloseStatus returns the close code in err, or -1 if err is not a close.
func CloseStatus(err error) StatusCode { return StatusCode(websocket.CloseStatus(err)) }

// IsMessageTooBig reports whether err is a read over the frame size limit.
func IsMessageTooBig(err error) bool { return errors.Is(err, websocket.ErrMessageTooBig) }
