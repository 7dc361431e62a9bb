package pubsub

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/phxgo/phx/socket/protocol"
)

func TestWithPosition(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                `{"p":{"offset":7,"epoch":"e\"1"}}`,
		` { } `:             ` {"p":{"offset":7,"epoch":"e\"1"}}`,
		`{"a":1}`:           `{"a":1,"p":{"offset":7,"epoch":"e\"1"}}`,
		"{\"a\":[1,{}]}\n ": `{"a":[1,{}],"p":{"offset":7,"epoch":"e\"1"}}`,
	} {
		got := string(WithPosition(nil, []byte(in), "p", 7, `e"1`))
		assert.Equal(t, want, got, in)
		assert.JSONEq(t, want, got)
	}
}

func TestDeliveredAddsThePositionOnce(t *testing.T) {
	m := &Message{Topic: "t", Event: "e", Payload: protocol.JSONPayload([]byte(`{"x":1}`))}
	assert.Equal(t, `{"x":1}`, string(m.Delivered().JSON()), "no position without PosKey")
	m.PosKey, m.Offset, m.Epoch = "phx_pos", 3, "ab"
	assert.Equal(t, `{"x":1,"phx_pos":{"offset":3,"epoch":"ab"}}`, string(m.Delivered().JSON()))
	data, _, err := m.Frame(protocol.V2)
	assert.NoError(t, err)
	assert.Equal(t, `[null,null,"t","e",{"x":1,"phx_pos":{"offset":3,"epoch":"ab"}}]`, string(data))
	bin := &Message{Topic: "t", Event: "e", Payload: protocol.BinaryPayload([]byte{1}), PosKey: "p", Offset: 1}
	assert.True(t, bin.Delivered().IsBinary(), "binary payloads are left alone")
}
