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

func TestHistoryFields(t *testing.T) {
	in := &pubsub.Message{Topic: "room:1", Event: "shout", Payload: protocol.JSONPayload([]byte(`{"a":1}`)), Offset: 42, Epoch: "beef", PosKey: "phx_pos"}
	m, err := Decode(Append(nil, "node-a", in))
	require.NoError(t, err)
	assert.Equal(t, uint64(42), m.Offset)
	assert.Equal(t, "beef", m.Epoch)
	assert.Equal(t, "phx_pos", m.PosKey)
	assert.Equal(t, `{"a":1}`, string(m.Payload.JSON()))

	// Head + offset + epoch + tail, as a Redis script assembles it.
	b := AppendHistoryHead(nil, "node-a", in)
	b = append(b, 2, '4', '2', 4, 'b', 'e', 'e', 'f')
	b = AppendHistoryTail(b, in)
	m2, err := Decode(b)
	require.NoError(t, err)
	assert.Equal(t, m, m2)

	plain, err := Decode(Append(nil, "n", &pubsub.Message{Topic: "t", Event: "e"}))
	require.NoError(t, err)
	assert.Zero(t, plain.Offset)

	bad := AppendHistoryHead(nil, "n", in)
	bad = append(bad, 1, 'x', 0)
	bad = AppendHistoryTail(bad, in)
	_, err = Decode(bad)
	assert.True(t, errors.Is(err, ErrInvalid))
}
