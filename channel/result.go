package channel

import (
	"errors"
	"fmt"

	"github.com/phxgo/phx/socket/protocol"
)

// Payload is the body of a client message or of a push: JSON, or raw bytes
// from a binary frame. Use Decode to unmarshal JSON payloads.
type Payload = protocol.Payload

// Binary marks a byte slice as a binary payload when passed where a payload of
// type any is expected (Push, Broadcast, OK, ...). V2 clients receive it in a
// binary frame.
type Binary = protocol.Binary

// Result tells the channel what to do after a callback: reply or not, and
// stop or not. The zero Result is NoReply.
type Result struct {
	reply  bool
	status string
	resp   any
	stop   bool
	reason error
}

// OK replies {"status":"ok","response":resp}. A nil resp is sent as {}.
func OK(resp any) Result { return Reply("ok", resp) }

// Error replies {"status":"error","response":resp}. From Join it refuses the
// join with that response, e.g. Error(map[string]string{"reason": "unauthorized"}).
func Error(resp any) Result { return Reply("error", resp) }

// Reply replies with a free-form status; phoenix.js dispatches
// push.receive(status, ...) by exact name.
func Reply(status string, resp any) Result {
	return Result{reply: true, status: status, resp: resp}
}

// NoReply sends nothing back. The client's push, if it waits for a reply,
// times out on its side.
func NoReply() Result { return Result{} }

// Stop ends the channel without a reply. A reason of nil, Normal or Shutdown
// (or one wrapping them) closes it cleanly (phx_close, phoenix.js does not
// rejoin); any other reason is reported as an error (phx_error, phoenix.js
// rejoins).
func Stop(reason error) Result { return Result{stop: true, reason: reason} }

// Stop returns r followed by stopping the channel: the reply goes out first,
// then phx_close or phx_error by reason as in the package-level Stop.
func (r Result) Stop(reason error) Result {
	r.stop = true
	r.reason = reason
	return r
}

// Reasons a channel ends with, given to Terminator.Terminate. Compare with
// errors.Is.
var (
	// Normal is a clean stop asked for by the channel itself.
	Normal = errors.New("channel: normal")
	// Shutdown is a clean stop for a server shutdown or drain.
	Shutdown = errors.New("channel: shutdown")
	// Left means the client sent phx_leave.
	Left = errors.New("channel: left")
	// Closed means the connection ended.
	Closed = errors.New("channel: connection closed")
	// Inactive means a LongPoll session expired without polls.
	Inactive = errors.New("channel: session inactive")
	// Crashed is wrapped by every CrashError.
	Crashed = errors.New("channel: crashed")
)

// CrashError is the reason of a channel whose callback panicked or returned an
// error.
type CrashError struct {
	Callback string // "Join", "HandleIn", ...
	Err      error  // the returned error, or the panic value as an error
	Panic    any    // the panic value, nil if the callback returned an error
	Stack    []byte // the goroutine stack at the panic
}

func (e *CrashError) Error() string {
	return fmt.Sprintf("channel: %s crashed: %v", e.Callback, e.Err)
}

// Unwrap lets errors.Is match both Crashed and the underlying error.
func (e *CrashError) Unwrap() []error { return []error{Crashed, e.Err} }

// isClean reports whether a stop reason closes the channel (phx_close)
// rather than reporting an error (phx_error).
func isClean(reason error) bool {
	return reason == nil || errors.Is(reason, Normal) || errors.Is(reason, Shutdown) ||
		errors.Is(reason, Left) || errors.Is(reason, Closed) || errors.Is(reason, Inactive) ||
		errors.Is(reason, Expired)
}
