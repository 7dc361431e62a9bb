package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

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
	ao := &websocket.AcceptOptions{
		// Origins are checked by the socket package with Phoenix's rules.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	}
	if offersPhoenix(r.Header) {
		ao.Subprotocols = []string{Subprotocol}
	}
	if hj, ok := w.(http.Hijacker); ok {
		// Otherwise Accept refuses w itself (501), before writing the 101.
		w = smallBuffers{w, hj}
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
	return &wsConn{c: c}, nil
}

// Buffer sizes of an upgraded connection. net/http hands over its 4 KiB
// read and 4 KiB write buffers, which the WebSocket keeps for life: at
// 15,000 idle sockets that is 40 % of their memory. Client frames are small
// (heartbeats, pushes), so 1 KiB reads them in one go; 2 KiB holds a frame
// header and a typical broadcast, which then leave in one write (a larger
// frame costs one more write, as a frame over 4 KiB already did).
const (
	wsReadBuffer  = 1 << 10
	wsWriteBuffer = 2 << 10
)

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack
// swaps the server's buffers for smaller ones.
type smallBuffers struct {
	http.ResponseWriter
	hj http.Hijacker
}

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := s.hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("transport: hijack: %w", err)
	}
	br := brw.Reader
	if br.Buffered() == 0 {
		// Nothing read ahead (a client waits for the 101 before sending):
		// the server's buffer can go.
		br = bufio.NewReaderSize(c, wsReadBuffer)
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, wsWriteBuffer)), nil
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

type wsConn struct {
	c *websocket.Conn
}

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

func (w *wsConn) WriteFrame(ctx context.Context, data []byte, binary bool) error {
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	return w.c.Write(ctx, typ, data)
}

func (w *wsConn) Close(code StatusCode, reason string) error {
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
