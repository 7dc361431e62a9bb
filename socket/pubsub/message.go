package pubsub

import (
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

	mu     sync.Mutex
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
		f.data, f.binary, f.err = s.EncodeBroadcast(nil, m.Topic, m.Event, m.Payload)
		f.done = true
	}
	data, bin, err := f.data, f.binary, f.err
	m.mu.Unlock()
	return data, bin, err
}
