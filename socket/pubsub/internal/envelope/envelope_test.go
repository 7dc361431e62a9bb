package envelope

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

func TestRoundTrip(t *testing.T) {
	for _, p := range []protocol.Payload{
		protocol.JSONPayload([]byte(`{"a":"é"}`)),
		protocol.BinaryPayload([]byte{0, 1, 2, 255}),
		protocol.BinaryPayload(nil),
	} {
		in := &pubsub.Message{Topic: "room:1", Event: "shout", From: "sock-7", Payload: p}
		m, err := Decode(Append(nil, "node-a", in))
		require.NoError(t, err)
		assert.Equal(t, "node-a", m.Node)
		assert.Equal(t, "room:1", m.Topic)
		assert.Equal(t, "shout", m.Event)
		assert.Equal(t, "sock-7", m.From)
		assert.Equal(t, p.IsBinary(), m.Payload.IsBinary())
		assert.Equal(t, p.Bytes(), m.Payload.Bytes())
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := Append(nil, "n", &pubsub.Message{Topic: "t", Event: "e"})
	for _, b := range [][]byte{nil, {1}, {2, 0}, {1, 0x80}, good[:4], {1, 0, 200, 1}} {
		_, err := Decode(b)
		assert.True(t, errors.Is(err, ErrInvalid), "%v: %v", b, err)
	}
}
