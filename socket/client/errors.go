package client

import (
	"errors"
	"fmt"
)

// Errors returned by the client. Compare with errors.Is; errors may wrap
// several of them (a timed-out push wraps both ErrTimeout and the context's
// error).
var (
	// ErrClosed means the Client was closed, by Close or for good by the
	// server (see Client.Err).
	ErrClosed = errors.New("phx client: client closed")
	// ErrChannelClosed means the channel was left, or closed by the server
	// with phx_close. A closed channel cannot be joined again; create a new
	// one with Client.Channel.
	ErrChannelClosed = errors.New("phx client: channel closed")
	// ErrTimeout means no reply arrived in time (Options.Timeout or the
	// caller's context deadline, whichever is first).
	ErrTimeout = errors.New("phx client: timeout")
	// ErrNotJoined is returned for a push on a channel that was never joined,
	// which phoenix.js refuses too.
	ErrNotJoined = errors.New("phx client: push before join")
	// ErrAlreadyJoined is returned by a second Join of the same Channel.
	// Rejoins after errors are automatic.
	ErrAlreadyJoined = errors.New("phx client: channel already joined")
	// ErrConnectionLost means the connection dropped after a push was sent
	// and before its reply arrived. The server may or may not have handled it.
	ErrConnectionLost = errors.New("phx client: connection lost before the reply")
)

// ReplyError is returned for a reply whose status is not "ok", including a
// refused join. Use errors.As to read the server's response.
type ReplyError struct {
	Topic    string
	Event    string // the pushed event; phx_join for joins
	Status   string // "error", or any status the server chose
	Response Payload
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("phx client: %s %s: reply %s %s", e.Topic, e.Event, e.Status, e.Response)
}

// DialError is returned when a connection attempt fails. StatusCode is the
// HTTP status of a refused handshake (403 when the server's connect callback
// refused), or 0 for network errors.
type DialError struct {
	URL        string
	StatusCode int
	Err        error
}

func (e *DialError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("phx client: dial %s: HTTP %d: %v", e.URL, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("phx client: dial %s: %v", e.URL, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// CloseError describes a connection close. The Client ends for good, with a
// CloseError as Err, when the server closes with code 1000: like phoenix.js,
// it takes that as "do not reconnect".
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("phx client: connection closed with code %d %q", e.Code, e.Reason)
}

// timeoutError wraps ErrTimeout together with the context's error, so that
// both errors.Is(err, ErrTimeout) and errors.Is(err, context.DeadlineExceeded)
// (or context.Canceled) hold.
func timeoutError(what string, ctxErr error) error {
	return fmt.Errorf("%w: %s: %w", ErrTimeout, what, ctxErr)
}
