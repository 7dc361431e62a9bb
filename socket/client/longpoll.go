package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// LongPoll emulates a connection with HTTP requests to M/longpoll
// (phoenix-protocol.md section 6): a GET opens a session (status 410 with a
// session token), then a goroutine polls with GETs while writes go out as
// NDJSON POSTs of at most 100 frames. Every body is HTTP 200; the outcome is
// its "status" field.

const (
	lpRequestTimeout = 20 * time.Second // phoenix.js longpollerTimeout
	lpMaxBatch       = 100              // lines per POST that Phoenix reads
)

type lpResponse struct {
	Status   int      `json:"status"`
	Token    string   `json:"token"`
	Messages []string `json:"messages"`
}

type lpConn struct {
	c         *Client
	base      string // M/longpoll?<params>&vsn=...
	authToken string

	ctx    context.Context // ends the poll loop
	cancel context.CancelFunc
	msgs   chan frame
	done   chan struct{} // closed when the poll loop has exited

	mu    sync.Mutex
	token string
	err   error // how the session ended
}

func (c *Client) dialLongPoll(ctx context.Context) (transportConn, error) {
	lp := &lpConn{c: c, base: c.connectURL("longpoll"), authToken: c.authToken()}
	res, err := lp.request(ctx, http.MethodGet, nil)
	if err != nil {
		return nil, &DialError{URL: lp.base, Err: err}
	}
	if res.Status != http.StatusGone || res.Token == "" {
		return nil, &DialError{URL: lp.base, StatusCode: res.Status, Err: fmt.Errorf("longpoll session refused")}
	}
	lp.token = res.Token
	lp.ctx, lp.cancel = context.WithCancel(context.Background())
	lp.msgs = make(chan frame, 64)
	lp.done = make(chan struct{})
	go lp.poll()
	return lp, nil
}

// request sends one GET or POST and decodes the JSON status body.
func (lp *lpConn) request(ctx context.Context, method string, body []byte) (lpResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, lpRequestTimeout)
	defer cancel()
	lp.mu.Lock()
	u, tok := lp.base, lp.token
	lp.mu.Unlock()
	if tok != "" {
		// The session token goes last, so it wins over a user param
		// named token (servers read the last value), and in the header
		// newer servers prefer.
		u += "&token=" + encodeURIComponent(tok)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return lpResponse{}, err
	}
	for k, v := range lp.c.opts.Header {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("X-Phoenix-Longpoll-Token", tok)
	}
	if method == http.MethodGet && lp.authToken != "" {
		req.Header.Set("X-Phoenix-AuthToken", lp.authToken)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := lp.c.opts.HTTPClient.Do(req)
	if err != nil {
		return lpResponse{}, err
	}
	defer resp.Body.Close()
	var res lpResponse
	if resp.StatusCode != http.StatusOK {
		return lpResponse{Status: resp.StatusCode}, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, lp.c.opts.ReadLimit)).Decode(&res); err != nil {
		return lpResponse{}, fmt.Errorf("longpoll response: %w", err)
	}
	return res, nil
}

// poll is the GET loop; it maps statuses to close codes as phoenix.js does.
func (lp *lpConn) poll() {
	defer close(lp.done)
	for {
		res, err := lp.request(lp.ctx, http.MethodGet, nil)
		if lp.ctx.Err() != nil {
			lp.fail(&CloseError{Code: 1000, Reason: "closed"})
			return
		}
		switch {
		case err != nil:
			lp.fail(&CloseError{Code: 1011, Reason: err.Error()})
			return
		case res.Status == http.StatusOK || res.Status == http.StatusNoContent:
			lp.mu.Lock()
			if res.Token != "" {
				lp.token = res.Token
			}
			lp.mu.Unlock()
			for _, m := range res.Messages {
				select {
				case lp.msgs <- frame{data: []byte(m)}:
				case <-lp.ctx.Done():
					lp.fail(&CloseError{Code: 1000, Reason: "closed"})
					return
				}
			}
		case res.Status == http.StatusGone:
			lp.fail(&CloseError{Code: 3410, Reason: "session_gone"})
			return
		case res.Status == http.StatusForbidden:
			lp.fail(&CloseError{Code: 1008, Reason: "forbidden"})
			return
		default:
			lp.fail(&CloseError{Code: 1011, Reason: fmt.Sprintf("poll status %d", res.Status)})
			return
		}
	}
}

func (lp *lpConn) fail(err error) {
	lp.mu.Lock()
	if lp.err == nil {
		lp.err = err
	}
	lp.mu.Unlock()
}

func (lp *lpConn) read(ctx context.Context) (frame, error) {
	select {
	case f := <-lp.msgs:
		return f, nil
	case <-lp.done:
	case <-ctx.Done():
		lp.abort()
	}
	// Deliver what was polled before the end, then the reason.
	select {
	case f := <-lp.msgs:
		return f, nil
	default:
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return frame{}, lp.err
}

// write POSTs frames as NDJSON: text frames as they are, binary frames in
// standard base64, at most 100 lines per request.
func (lp *lpConn) write(ctx context.Context, frames []frame) error {
	for len(frames) > 0 {
		n := min(len(frames), lpMaxBatch)
		var body bytes.Buffer
		for i, f := range frames[:n] {
			if i > 0 {
				body.WriteByte('\n')
			}
			if f.binary {
				body.WriteString(base64.StdEncoding.EncodeToString(f.data))
			} else {
				body.Write(f.data)
			}
		}
		frames = frames[n:]
		res, err := lp.request(ctx, http.MethodPost, body.Bytes())
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			return &CloseError{Code: 1011, Reason: fmt.Sprintf("post status %d", res.Status)}
		}
	}
	return nil
}

// close ends the poll loop; the server expires the session by itself.
func (lp *lpConn) close(code int, reason string) error {
	lp.fail(&CloseError{Code: code, Reason: reason})
	lp.abort()
	return nil
}

func (lp *lpConn) abort() {
	lp.cancel()
	<-lp.done
}
