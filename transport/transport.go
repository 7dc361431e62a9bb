// Package transport moves frames between a client and the server. It knows
// nothing of topics or channels: a Conn reads and writes whole frames (text
// or binary) and closes with a status code.
//
// Two transports speak to phoenix.js: WebSocket (this package, on
// github.com/coder/websocket) and LongPoll. The socket package runs the
// Phoenix protocol over either through the Conn interface.
package transport

import (
	"context"
	"errors"
)

// Conn is one client connection as a stream of frames.
type Conn interface {
	// ReadFrame blocks until the next client frame. It returns an error once
	// the connection is closed.
	ReadFrame(ctx context.Context) (data []byte, binary bool, err error)
	// WriteFrame writes one frame. Calls are made from one goroutine at a time.
	WriteFrame(ctx context.Context, data []byte, binary bool) error
	// Close closes the connection with a status code and reason, flushing
	// what it can. It may block for the closing handshake.
	Close(code StatusCode, reason string) error
	// CloseNow closes the connection at once.
	CloseNow() error
}

// An IdleConn is a Conn that can tell whether a frame is already buffered
// and wait for the next one without holding what a read holds. A reader
// that finds its connection idle parks in Wait on a fresh goroutine, so
// that an idle connection keeps the smallest goroutine stack (2 KiB)
// rather than one grown by handling its last frame.
type IdleConn interface {
	Conn
	// Idle reports that nothing is buffered: ReadFrame would block.
	Idle() bool
	// Wait blocks until the connection has bytes to read, or fails; the
	// error is the next ReadFrame's to report. Close interrupts it.
	Wait()
}

// StatusCode is a WebSocket close code (RFC 6455 section 7.4). LongPoll maps
// the codes to its own statuses.
type StatusCode int

// Close codes used by the server. phoenix.js reconnects after every close it
// did not ask for unless the code is 1000, so the server never sends 1000.
const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001 // disconnect by socket id, idle timeout
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003 // binary frame on a V1 connection
	StatusInvalidPayload  StatusCode = 1007 // undecodable frame, invalid UTF-8
	StatusPolicyViolation StatusCode = 1008 // rate limits
	StatusMessageTooBig   StatusCode = 1009 // frame over the size limit
	StatusInternalError   StatusCode = 1011
	StatusServiceRestart  StatusCode = 1012 // server shutdown: reconnect elsewhere
	StatusTryAgainLater   StatusCode = 1013 // slow consumer: outbound queue full
	// StatusTokenExpired (application range 4000-4999) closes a connection
	// whose token expired (socket.ConnectRequest.SetExpiry).
	StatusTokenExpired StatusCode = 4001
)

// ErrClosed is returned by operations on a closed connection.
var ErrClosed = errors.New("transport: connection closed")
