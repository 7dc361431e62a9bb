package protocol

import (
	"encoding/json"
	"slices"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string without HTML escaping (as Jason
// does). Invalid UTF-8 is replaced by U+FFFD, as encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON; Jason leaves them alone too.
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendRef appends a raw ref, or null when absent.
func appendRef(dst []byte, ref json.RawMessage) []byte {
	if len(ref) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, ref...)
}

// decodeString decodes a JSON string element; any other JSON value is an error.
func decodeString(raw json.RawMessage, field string) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", malformed("%s must be a string", field)
	}
	// Fast path: no escapes.
	if s := raw[1 : len(raw)-1]; len(raw) >= 2 && !hasEscapeOrQuote(s) && utf8.Valid(s) {
		if k := known(s); k != "" {
			return k, nil
		}
		return string(s), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", malformed("%s: %v", field, err)
	}
	return s, nil
}

// known returns the protocol's own names without allocating: every
// heartbeat is topic "phoenix", event "heartbeat", and every socket joins.
func known(b []byte) string {
	switch string(b) {
	case TopicPhoenix:
		return TopicPhoenix
	case EventHeartbeat:
		return EventHeartbeat
	case EventJoin:
		return EventJoin
	case EventLeave:
		return EventLeave
	}
	return ""
}

// grow makes room for a frame of about n more bytes at once. The server
// encodes each frame into a fresh slice (it is queued and outlives the
// call), which appending piece by piece would regrow and copy several times.
func grow(dst []byte, n int) []byte {
	return slices.Grow(dst, n)
}

// frameSize estimates an encoded frame: its variable parts plus room for
// the fixed JSON around them (escapes may still grow it).
func frameSize(joinRef, ref json.RawMessage, topic, event string, payload int) int {
	return len(joinRef) + len(ref) + len(topic) + len(event) + payload + 64
}

func hasEscapeOrQuote(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c == '"' || c < 0x20 {
			return true
		}
	}
	return false
}

// refValue normalises a decoded ref: null becomes nil; strings and numbers are
// kept as raw JSON; objects, arrays and booleans are accepted as opaque too,
// since Phoenix echoes whatever it got.
func refValue(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}
