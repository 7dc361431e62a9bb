// Package envelope is the wire format the cluster adapters publish to their
// broker: one message per broadcast per node, carrying everything a remote
// node needs to rebuild the pubsub.Message and to drop its own echoes.
//
// The layout is deliberately tiny and binary so the payload is embedded once,
// verbatim, with no base64 or JSON re-escaping:
//
//	version byte (1)
//	flags   byte (bit 0: payload is binary)
//	node, topic, event, from: uvarint length + bytes each
//	payload: the rest of the message
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

const (
	version  = 1
	flagBin  = 1 << 0
	knownFlg = flagBin
)

// ErrInvalid is wrapped by every Decode error.
var ErrInvalid = errors.New("envelope: invalid")

// Append encodes m, published by node, onto dst and returns the extended slice.
func Append(dst []byte, node string, m *pubsub.Message) []byte {
	var flags byte
	if m.Payload.IsBinary() {
		flags |= flagBin
	}
	dst = append(dst, version, flags)
	for _, s := range [...]string{node, m.Topic, m.Event, m.From} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, m.Payload.Bytes()...)
}

// Decode parses an envelope. The payload aliases b, so the caller hands b
// over and must not modify it afterwards.
func Decode(b []byte) (*pubsub.Message, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrInvalid, len(b))
	}
	if b[0] != version {
		return nil, fmt.Errorf("%w: version %d", ErrInvalid, b[0])
	}
	flags := b[1]
	if flags&^knownFlg != 0 {
		return nil, fmt.Errorf("%w: flags %#x", ErrInvalid, flags)
	}
	b = b[2:]
	var fields [4]string
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: field %d length", ErrInvalid, i)
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	m := &pubsub.Message{Node: fields[0], Topic: fields[1], Event: fields[2], From: fields[3]}
	if flags&flagBin != 0 {
		m.Payload = protocol.BinaryPayload(b)
	} else {
		m.Payload = protocol.JSONPayload(b)
	}
	return m, nil
}
