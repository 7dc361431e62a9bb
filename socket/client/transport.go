package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/coder/websocket"
)

// frame is one encoded message on the wire.
type frame struct {
	data   []byte
	binary bool
}

// transportConn is the seam between the protocol logic and a transport. A
// WebSocket is one; a LongPoll session emulates one. read is only called from
// one goroutine, write only from another.
type transportConn interface {
	// read returns the next frame. Its error, once the connection is gone,
	// says how it ended (see closeCode).
	read(ctx context.Context) (frame, error)
	// write sends frames in order; transports may batch them.
	write(ctx context.Context, frames []frame) error
	// close ends the connection cleanly with a close code.
	close(code int, reason string) error
	// abort drops the connection at once.
	abort()
}

// closeCode extracts the close code a connection ended with, or -1.
func closeCode(err error) (int, string) {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	var wce websocket.CloseError
	if errors.As(err, &wce) {
		return int(wce.Code), wce.Reason
	}
	return -1, ""
}

// authSubprotocol is how phoenix.js 1.8 carries authToken: btoa(token) with
// the padding removed, i.e. the standard alphabet despite the label.
func authSubprotocol(token string) string {
	return "base64url.bearer.phx." + base64.RawStdEncoding.EncodeToString([]byte(token))
}

// encodeURIComponent escapes like JavaScript's function of that name, so
// the query is byte-identical to phoenix.js's.
func encodeURIComponent(s string) string {
	const keep = "-_.!~*'()"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// endpointURL normalises the user's endpoint to the socket mount path
// ("ws://host/socket"), accepting http(s) schemes and an explicit
// /websocket or /longpoll suffix.
func endpointURL(endpoint string) (*url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("phx client: endpoint: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("phx client: endpoint %q: scheme must be ws, wss, http or https", endpoint)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/websocket"), "/longpoll")
	u.RawPath = ""
	return u, nil
}

// connectURL builds M/<transport>?<params>&vsn=<vsn> as phoenix.js does:
// the endpoint's own query first, then user params, then vsn.
func (c *Client) connectURL(transport string) string {
	u := *c.endpoint
	if transport == "longpoll" {
		u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	}
	u.Path += "/" + transport
	params := c.opts.Params
	if c.opts.ParamsFunc != nil {
		params = c.opts.ParamsFunc()
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys)+2)
	if u.RawQuery != "" {
		parts = append(parts, u.RawQuery)
	}
	for _, k := range keys {
		parts = append(parts, encodeURIComponent(k)+"="+encodeURIComponent(params[k]))
	}
	parts = append(parts, "vsn="+encodeURIComponent(c.opts.Vsn))
	u.RawQuery = strings.Join(parts, "&")
	return u.String()
}

func (c *Client) authToken() string {
	if c.opts.AuthTokenFunc != nil {
		return c.opts.AuthTokenFunc()
	}
	return c.opts.AuthToken
}

// dialTransport opens one connection with the configured transport.
func (c *Client) dialTransport(ctx context.Context) (transportConn, error) {
	if c.opts.Transport == LongPoll {
		return c.dialLongPoll(ctx)
	}
	return c.dialWebSocket(ctx)
}

func (c *Client) dialWebSocket(ctx context.Context) (transportConn, error) {
	u := c.connectURL("websocket")
	do := &websocket.DialOptions{
		HTTPClient:      c.opts.HTTPClient,
		HTTPHeader:      c.opts.Header.Clone(),
		CompressionMode: websocket.CompressionDisabled,
	}
	if tok := c.authToken(); tok != "" {
		do.Subprotocols = []string{"phoenix", authSubprotocol(tok)}
	}
	ws, resp, err := websocket.Dial(ctx, u, do)
	if err != nil {
		de := &DialError{URL: u, Err: err}
		if resp != nil {
			de.StatusCode = resp.StatusCode
		}
		return nil, de
	}
	ws.SetReadLimit(c.opts.ReadLimit)
	return &wsConn{ws: ws}, nil
}

type wsConn struct{ ws *websocket.Conn }

func (w *wsConn) read(ctx context.Context) (frame, error) {
	typ, data, err := w.ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	return frame{data: data, binary: typ == websocket.MessageBinary}, nil
}

func (w *wsConn) write(ctx context.Context, frames []frame) error {
	for _, f := range frames {
		typ := websocket.MessageText
		if f.binary {
			typ = websocket.MessageBinary
		}
		if err := w.ws.Write(ctx, typ, f.data); err != nil {
			return err
		}
	}
	return nil
}

func (w *wsConn) close(code int, reason string) error {
	return w.ws.Close(websocket.StatusCode(code), reason)
}

func (w *wsConn) abort() { _ = w.ws.CloseNow() }
