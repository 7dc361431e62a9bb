package protocol

import (
	"encoding/json"
	"errors"
)

// Message is one decoded client frame.
type Message struct {
	JoinRef json.RawMessage // raw JSON value; nil when absent or null
	Ref     json.RawMessage // raw JSON value; nil when absent or null
	Topic   string
	Event   string
	Payload Payload
}

// Reserved topics and events of the protocol.
const (
	TopicPhoenix   = "phoenix"
	EventJoin      = "phx_join"
	EventLeave     = "phx_leave"
	EventReply     = "phx_reply"
	EventError     = "phx_error"
	EventClose     = "phx_close"
	EventHeartbeat = "heartbeat"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("protocol: malformed frame")

// ErrBinaryUnsupported is returned when a binary payload must be encoded by a
// serializer (V1) or a transport (LongPoll) that cannot carry it.
var ErrBinaryUnsupported = errors.New("protocol: binary payloads are not supported by this serializer")

// RefString returns a ref as a plain string: the unquoted text of a JSON
// string, the literal text of any other value, "" for null. Binary frames
// carry refs this way.
func RefString(ref json.RawMessage) string {
	if len(ref) == 0 || string(ref) == "null" {
		return ""
	}
	if ref[0] == '"' {
		var s string
		if json.Unmarshal(ref, &s) == nil {
			return s
		}
	}
	return string(ref)
}

// StringRef turns a plain string into a JSON string ref.
func StringRef(s string) json.RawMessage {
	return appendString(nil, s)
}

// SameRef reports whether two raw refs denote the same JSON value. It treats
// "3" and 3 as different, as Phoenix does.
func SameRef(a, b json.RawMessage) bool {
	return string(normRef(a)) == string(normRef(b))
}

func normRef(r json.RawMessage) json.RawMessage {
	if string(r) == "null" {
		return nil
	}
	return r
}
