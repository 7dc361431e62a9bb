package pubsub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/phxgo/phx/socket/protocol"
)

// Message is one broadcast. Treat it as immutable once broadcast: every
// subscriber on every goroutine reads the same value.
type Message struct {
	Topic   string
	Event   string
	Payload protocol.Payload
	// From names the subscription that sent a broadcast_from; the subscriber
	// with that identity skips the message. Empty for a plain broadcast.
	From string
	// Node is the node the broadcast originated on; adapters set it.
	Node string
	// Offset and Epoch place a broadcast of a recoverable topic in its
	// topic's history (package history); both are zero otherwise. Adapters
	// carry them between nodes.
	Offset uint64
	Epoch  string
	// PosKey, when set on a message with an Offset, is the payload key under
	// which clients receive the message's position:
	// {"<PosKey>":{"offset":12,"epoch":"…"}, …}. Stock clients read it in
	// their event callbacks; package channel sets it from the route's
	// recovery options. Adapters carry it between nodes.
	PosKey string

	mu     sync.Mutex
	posed  bool
	posPay protocol.Payload
	frames [protocol.NumSerializers]frame
}

type frame struct {
	done   bool
	data   []byte
	binary bool
	err    error
}

// Frame returns the fastlane frame for serializer s, encoding it on first use
// and sharing the bytes afterwards. The returned slice must not be modified.
func (m *Message) Frame(s protocol.Serializer) ([]byte, bool, error) {
	id := s.ID()
	m.mu.Lock()
	f := &m.frames[id]
	if !f.done {
		f.data, f.binary, f.err = s.EncodeBroadcast(nil, m.Topic, m.Event, m.deliveredLocked())
		f.done = true
	}
	data, bin, err := f.data, f.binary, f.err
	m.mu.Unlock()
	return data, bin, err
}

// Delivered is the payload as clients receive it: Payload with the
// message's position added under PosKey when the message has one and the
// payload is a JSON object; Payload itself otherwise. It is computed once.
func (m *Message) Delivered() protocol.Payload {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deliveredLocked()
}

func (m *Message) deliveredLocked() protocol.Payload {
	if m.PosKey == "" || m.Offset == 0 || !m.Payload.IsObject() {
		return m.Payload
	}
	if !m.posed {
		m.posPay = protocol.JSONPayload(WithPosition(nil, m.Payload.JSON(), m.PosKey, m.Offset, m.Epoch))
		m.posed = true
	}
	return m.posPay
}

// WithPosition appends to dst the JSON object obj with the key
// {"offset":offset,"epoch":epoch} added last, so that it wins over a key of
// the same name in obj for decoders that keep the last occurrence (as
// JavaScript's JSON.parse does). obj must be a JSON object.
func WithPosition(dst []byte, obj json.RawMessage, key string, offset uint64, epoch string) []byte {
	body := bytes.TrimRight(obj, " \t\r\n")
	body = bytes.TrimRight(body[:len(body)-1], " \t\r\n") // before '}'
	dst = append(dst, body...)
	if body[len(body)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = appendJSONString(dst, key)
	dst = append(dst, `:{"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = appendJSONString(dst, epoch)
	return append(dst, "}}"...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}
