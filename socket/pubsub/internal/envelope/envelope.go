// Package envelope is the wire format the cluster adapters publish to their
// broker: one message per broadcast per node, carrying everything a remote
// node needs to rebuild the pubsub.Message and to drop its own echoes.
//
// The layout is deliberately tiny and binary so the payload is embedded once,
// verbatim, with no base64 or JSON re-escaping:
//
//	version byte (1)
//	flags   byte (bit 0: payload is binary; bit 1: history fields follow)
//	node, topic, event, from: uvarint length + bytes each
//	[offset (decimal), epoch, position key: uvarint length + bytes each]
//	payload: the rest of the message
//
// The history fields carry a recoverable broadcast's position (package
// history). The offset is decimal text so that a Redis script, which
// assigns it, can splice it between a head and a tail built here.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

const (
	version  = 1
	flagBin  = 1 << 0
	flagHist = 1 << 1
	knownFlg = flagBin | flagHist
)

// ErrInvalid is wrapped by every Decode error.
var ErrInvalid = errors.New("envelope: invalid")

// Append encodes m, published by node, onto dst and returns the extended
// slice. A message with an Offset carries its position.
func Append(dst []byte, node string, m *pubsub.Message) []byte {
	if m.Offset == 0 {
		dst = appendHead(dst, node, m, 0)
		return append(dst, m.Payload.Bytes()...)
	}
	dst = appendHead(dst, node, m, flagHist)
	dst = appendString(dst, strconv.FormatUint(m.Offset, 10))
	dst = appendString(dst, m.Epoch)
	return AppendHistoryTail(dst, m)
}

// AppendHistoryHead encodes the part of a recoverable broadcast's envelope
// that comes before its offset and epoch; AppendHistoryTail the part after.
// Whoever assigns the position puts between them the offset and the epoch,
// each as one length byte (both are shorter than 128 bytes) and the text.
func AppendHistoryHead(dst []byte, node string, m *pubsub.Message) []byte {
	return appendHead(dst, node, m, flagHist)
}

// AppendHistoryTail: see AppendHistoryHead.
func AppendHistoryTail(dst []byte, m *pubsub.Message) []byte {
	dst = appendString(dst, m.PosKey)
	return append(dst, m.Payload.Bytes()...)
}

func appendHead(dst []byte, node string, m *pubsub.Message, flags byte) []byte {
	if m.Payload.IsBinary() {
		flags |= flagBin
	}
	dst = append(dst, version, flags)
	for _, s := range [...]string{node, m.Topic, m.Event, m.From} {
		dst = appendString(dst, s)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
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
	n := 4
	if flags&flagHist != 0 {
		n = 7
	}
	var fields [7]string
	for i := range fields[:n] {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: field %d length", ErrInvalid, i)
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	m := &pubsub.Message{Node: fields[0], Topic: fields[1], Event: fields[2], From: fields[3]}
	if flags&flagHist != 0 {
		off, err := strconv.ParseUint(fields[4], 10, 64)
		if err != nil || off == 0 {
			return nil, fmt.Errorf("%w: offset %q", ErrInvalid, fields[4])
		}
		m.Offset, m.Epoch, m.PosKey = off, fields[5], fields[6]
	}
	if flags&flagBin != 0 {
		m.Payload = protocol.BinaryPayload(b)
	} else {
		m.Payload = protocol.JSONPayload(b)
	}
	return m, nil
}
