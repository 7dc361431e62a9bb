package transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"sync"
	"time"
)

// MaxLongPollLines is the most frames one LongPoll POST may carry: phoenix.js
// (1.7.24+, 1.8.9+) splits larger batches into POSTs of 100 lines, and
// Phoenix ignores the lines after the 100th, so does ParseLongPollBody.
const MaxLongPollLines = 100

// DefaultLongPollBuffer is the default of LongPollOptions.MaxBuffered.
const DefaultLongPollBuffer = 4096

// Errors of LongPoll sessions.
var (
	// ErrLongPollTimeout is returned by Deliver when the session did not take
	// a frame in time (Phoenix answers such a POST with {"status":408}).
	ErrLongPollTimeout = errors.New("transport: longpoll frame not acknowledged in time")
	// ErrPollSuperseded is returned by Poll when a newer poll of the same
	// session replaced it, so that a flood of polls holds one request at most.
	ErrPollSuperseded = errors.New("transport: longpoll poll superseded by a newer one")
	// ErrBadLongPollLine is wrapped by ParseLongPollBody for a line that is
	// neither a JSON text frame nor valid base64.
	ErrBadLongPollLine = errors.New("transport: malformed longpoll line")
)

// Frame is one client or server frame.
type Frame struct {
	Data   []byte
	Binary bool
}

// LongPollOptions configures a LongPoll session.
type LongPollOptions struct {
	// MaxBuffered caps the frames buffered for the client between polls
	// (default DefaultLongPollBuffer). A client that stops polling while
	// frames keep coming would otherwise grow the buffer without bound, as it
	// does in Phoenix; overflow closes the session instead.
	MaxBuffered int
	// OnClose, when set, is called once when the session closes, on the
	// goroutine that closed it. It must not block.
	OnClose func(code StatusCode, reason string)
	// OnDropBinary, when set, is told of every binary frame WriteFrame drops:
	// a LongPoll response is JSON text, so phoenix.js cannot receive binary.
	OnDropBinary func(data []byte)
}

// LongPoll is the server side of one LongPoll session as a Conn: ReadFrame
// returns the frames that POST requests hand in with Deliver, WriteFrame
// buffers frames until a GET request collects them with Poll. The socket
// package runs the same protocol machinery over it as over a WebSocket.
//
// A LongPoll has no network connection of its own; it lives until Close,
// CloseNow, or a buffer overflow, and its owner decides when it has expired.
type LongPoll struct {
	opts LongPollOptions

	in         chan inFrame  // unbuffered: a hand-off is the reader taking the frame
	deliverSem chan struct{} // one POST at a time keeps each batch contiguous
	pendingAck chan struct{} // owned by the reader goroutine
	done       chan struct{}

	mu        sync.Mutex
	out       [][]byte
	avail     chan struct{} // closed when out becomes non-empty; nil when nobody waits
	poll      chan struct{} // closed to supersede the poll in progress
	closed    bool
	closeCode StatusCode
	reason    string
}

type inFrame struct {
	Frame
	ack chan struct{}
}

// NewLongPoll returns an open LongPoll session.
func NewLongPoll(opts LongPollOptions) *LongPoll {
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultLongPollBuffer
	}
	return &LongPoll{
		opts:       opts,
		in:         make(chan inFrame),
		deliverSem: make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
}

// Done is closed when the session has closed.
func (l *LongPoll) Done() <-chan struct{} { return l.done }

// CloseStatus returns the code and reason the session closed with (0 while open).
func (l *LongPoll) CloseStatus() (StatusCode, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeCode, l.reason
}

// ReadFrame implements Conn. Calling it again acknowledges the previous
// frame: the reader has finished with it, so the POST that delivered it may
// move on (Phoenix also answers a POST only after each frame was handled).
func (l *LongPoll) ReadFrame(ctx context.Context) ([]byte, bool, error) {
	if l.pendingAck != nil {
		close(l.pendingAck)
		l.pendingAck = nil
	}
	select {
	case f := <-l.in:
		l.pendingAck = f.ack
		return f.Data, f.Binary, nil
	case <-l.done:
		return nil, false, ErrClosed
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// Deliver hands frames to the reader in order and waits until each has been
// handled. It gives up after timeout in total (ErrLongPollTimeout) or when the
// session closes (ErrClosed); n is how many frames the reader took.
func (l *LongPoll) Deliver(ctx context.Context, frames []Frame, timeout time.Duration) (n int, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case l.deliverSem <- struct{}{}:
		defer func() { <-l.deliverSem }()
	case <-l.done:
		return 0, ErrClosed
	case <-timer.C:
		return 0, ErrLongPollTimeout
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	for i, f := range frames {
		ack := make(chan struct{})
		select {
		case l.in <- inFrame{f, ack}:
		case <-l.done:
			return i, ErrClosed
		case <-timer.C:
			return i, ErrLongPollTimeout
		case <-ctx.Done():
			return i, ctx.Err()
		}
		select {
		case <-ack:
		case <-l.done:
			return i + 1, ErrClosed
		case <-timer.C:
			return i + 1, ErrLongPollTimeout
		case <-ctx.Done():
			return i + 1, ctx.Err()
		}
	}
	return len(frames), nil
}

// WriteFrame implements Conn. It never blocks: text frames are buffered for
// the next poll; binary frames are dropped (see OnDropBinary) because a
// LongPoll response can only carry JSON strings. A full buffer closes the
// session with StatusTryAgainLater.
func (l *LongPoll) WriteFrame(_ context.Context, data []byte, binary bool) error {
	if binary {
		if l.opts.OnDropBinary != nil {
			l.opts.OnDropBinary(data)
		}
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if len(l.out) >= l.opts.MaxBuffered {
		l.mu.Unlock()
		l.close(StatusTryAgainLater, "longpoll buffer full")
		return ErrClosed
	}
	l.out = append(l.out, data)
	if l.avail != nil {
		close(l.avail)
		l.avail = nil
	}
	l.mu.Unlock()
	return nil
}

// Poll waits up to window for buffered frames and returns all of them. It
// returns at once if frames are buffered, with no frames when the window
// passes, ErrPollSuperseded when a newer Poll starts, and ErrClosed when the
// session has closed with nothing left to deliver.
func (l *LongPoll) Poll(ctx context.Context, window time.Duration) ([][]byte, error) {
	l.mu.Lock()
	if l.poll != nil {
		close(l.poll)
	}
	mine := make(chan struct{})
	l.poll = mine
	if frames := l.takeLocked(); frames != nil {
		l.poll = nil
		l.mu.Unlock()
		return frames, nil
	}
	if l.closed {
		l.poll = nil
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if l.avail == nil {
		l.avail = make(chan struct{})
	}
	avail := l.avail
	l.mu.Unlock()

	timer := time.NewTimer(window)
	defer timer.Stop()
	var err error
	select {
	case <-avail:
	case <-mine:
		err = ErrPollSuperseded
	case <-timer.C:
	case <-ctx.Done():
		err = ctx.Err()
	case <-l.done:
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.poll == mine {
		l.poll = nil
	}
	if err != nil {
		return nil, err
	}
	frames := l.takeLocked()
	if frames == nil && l.closed {
		return nil, ErrClosed
	}
	return frames, nil
}

func (l *LongPoll) takeLocked() [][]byte {
	if len(l.out) == 0 {
		return nil
	}
	frames := l.out
	l.out = nil
	return frames
}

// Close implements Conn. A LongPoll has no closing handshake: the client
// learns that the session is gone from its next request.
func (l *LongPoll) Close(code StatusCode, reason string) error {
	if !l.close(code, reason) {
		return ErrClosed
	}
	return nil
}

// CloseNow implements Conn.
func (l *LongPoll) CloseNow() error {
	l.close(StatusGoingAway, "closed")
	return nil
}

func (l *LongPoll) close(code StatusCode, reason string) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	l.closeCode, l.reason = code, reason
	close(l.done)
	l.mu.Unlock()
	if l.opts.OnClose != nil {
		l.opts.OnClose(code, reason)
	}
	return true
}

// ParseLongPollBody splits a POST body into frames as Phoenix does: with
// media type application/x-ndjson (parameters ignored, unlike Phoenix) one
// frame per line, where lines starting with '[' are text frames and other
// lines are binary frames in standard base64; blank lines are skipped and
// lines after the MaxLongPollLines-th ignored. Any other content type makes
// the whole body one text frame (old clients, V1 object frames).
//
// For a line that cannot be decoded it returns the frames before it and an
// error wrapping ErrBadLongPollLine: the caller hands those in, then treats
// the bad line like any undecodable frame.
func ParseLongPollBody(contentType string, body []byte) ([]Frame, error) {
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/x-ndjson" {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, nil
		}
		return []Frame{{Data: body}}, nil
	}
	var frames []Frame
	for len(body) > 0 && len(frames) < MaxLongPollLines {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
		case line[0] == '[':
			frames = append(frames, Frame{Data: line})
		default:
			data, err := decodeBase64Frame(line)
			if err != nil {
				return frames, fmt.Errorf("%w: line %d: %w", ErrBadLongPollLine, len(frames)+1, err)
			}
			frames = append(frames, Frame{Data: data, Binary: true})
		}
	}
	return frames, nil
}

// decodeBase64Frame decodes btoa's output (standard, padded) and, leniently,
// the unpadded form.
func decodeBase64Frame(line []byte) ([]byte, error) {
	line = bytes.TrimRight(line, "=")
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(line)))
	n, err := base64.RawStdEncoding.Decode(out, line)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}
