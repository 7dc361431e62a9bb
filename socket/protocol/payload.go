package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Payload is the body of a frame: raw JSON, or raw bytes for binary frames.
// The zero Payload is the empty JSON object.
type Payload struct {
	json   json.RawMessage
	binary []byte
	isBin  bool
}

var emptyObject = json.RawMessage("{}")

// JSONPayload wraps already encoded JSON. The caller promises it is valid.
func JSONPayload(raw json.RawMessage) Payload { return Payload{json: raw} }

// BinaryPayload wraps raw bytes to be sent in a binary frame.
func BinaryPayload(b []byte) Payload {
	if b == nil {
		b = []byte{}
	}
	return Payload{binary: b, isBin: true}
}

// IsBinary reports whether the payload is raw bytes rather than JSON.
func (p Payload) IsBinary() bool { return p.isBin }

// Bytes returns the raw bytes of a binary payload, or the JSON text otherwise.
func (p Payload) Bytes() []byte {
	if p.isBin {
		return p.binary
	}
	return p.JSON()
}

// JSON returns the JSON text of the payload ({} for the zero Payload, nil for
// a binary payload).
func (p Payload) JSON() json.RawMessage {
	if p.isBin {
		return nil
	}
	if len(p.json) == 0 {
		return emptyObject
	}
	return p.json
}

// IsObject reports whether the payload is a JSON object. Phoenix requires
// pushes and broadcasts to carry an object (or binary).
func (p Payload) IsObject() bool {
	if p.isBin {
		return false
	}
	b := bytes.TrimLeft(p.JSON(), " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// ErrBinaryPayload is returned when a binary payload is decoded as JSON.
var ErrBinaryPayload = errors.New("protocol: payload is binary, not JSON")

// Decode unmarshals a JSON payload into v.
func (p Payload) Decode(v any) error {
	if p.isBin {
		return ErrBinaryPayload
	}
	if err := json.Unmarshal(p.JSON(), v); err != nil {
		return fmt.Errorf("protocol: decode payload: %w", err)
	}
	return nil
}

// String renders the payload for logs and test failures.
func (p Payload) String() string {
	if p.isBin {
		return fmt.Sprintf("<binary %d bytes>", len(p.binary))
	}
	return string(p.JSON())
}

// Marshal encodes v as JSON the way Phoenix's Jason does: no HTML escaping.
// A Payload, a json.RawMessage or a Binary value is used as it is.
func Marshal(v any) (Payload, error) {
	switch x := v.(type) {
	case Payload:
		return x, nil
	case *Payload:
		return *x, nil
	case json.RawMessage:
		if !json.Valid(x) {
			return Payload{}, fmt.Errorf("protocol: invalid raw JSON payload")
		}
		return JSONPayload(x), nil
	case Binary:
		return BinaryPayload(x), nil
	case nil:
		return Payload{}, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return Payload{}, fmt.Errorf("protocol: encode payload: %w", err)
	}
	b := buf.Bytes()
	return JSONPayload(b[:len(b)-1]), nil // drop the encoder's newline
}

// Binary marks a byte slice as a binary payload for Marshal (and so for every
// push, reply and broadcast API that takes an `any` payload).
type Binary []byte
