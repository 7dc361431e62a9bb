package client

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
)

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// Hex examples from phoenix-protocol.md 2.4.
func TestBinaryFrames(t *testing.T) {
	data, bin, err := v2Codec{}.encode(outMsg{joinRef: "1", ref: "4", topic: "room:1", event: "up", payload: protocol.BinaryPayload([]byte{1, 2, 3})})
	require.NoError(t, err)
	assert.True(t, bin)
	assert.Equal(t, unhex(t, "00 01 01 06 02 31 34 72 6f 6f 6d 3a 31 75 70 01 02 03"), data)

	m, err := v2Codec{}.decode(unhex(t, "00 02 06 03 31 32 72 6f 6f 6d 3a 31 69 6d 67 01 02 03"), true)
	require.NoError(t, err)
	assert.Equal(t, inMsg{joinRef: "12", topic: "room:1", event: "img", payload: protocol.BinaryPayload([]byte{1, 2, 3})}, m)

	m, err = v2Codec{}.decode(unhex(t, "01 02 01 06 02 31 32 37 72 6f 6f 6d 3a 31 6f 6b 0a 0b"), true)
	require.NoError(t, err)
	assert.Equal(t, inMsg{joinRef: "12", ref: "7", topic: "room:1", event: "phx_reply", status: "ok", payload: protocol.BinaryPayload([]byte{0xa, 0xb})}, m)

	m, err = v2Codec{}.decode(unhex(t, "02 06 05 72 6f 6f 6d 3a 31 66 72 61 6d 65 ff"), true)
	require.NoError(t, err)
	assert.Equal(t, inMsg{topic: "room:1", event: "frame", payload: protocol.BinaryPayload([]byte{0xff})}, m)

	for _, bad := range []string{"", "03", "00 05 00 00 31", "01 01"} {
		_, err := v2Codec{}.decode(unhex(t, bad), true)
		assert.ErrorIs(t, err, protocol.ErrMalformed, bad)
	}
	_, _, err = v2Codec{}.encode(outMsg{topic: strings.Repeat("x", 256), payload: protocol.BinaryPayload(nil)})
	assert.ErrorIs(t, err, protocol.ErrMalformed)
}

func TestTextFrames(t *testing.T) {
	data, bin, err := v2Codec{}.encode(outMsg{ref: "6", topic: "phoenix", event: "heartbeat"})
	require.NoError(t, err)
	assert.False(t, bin)
	assert.Equal(t, `[null,"6","phoenix","heartbeat",{}]`, string(data))

	data, _, err = v2Codec{}.encode(outMsg{joinRef: "3", ref: "3", topic: "room:<lobby>", event: "phx_join", payload: protocol.JSONPayload([]byte(`{"a":1}`))})
	require.NoError(t, err)
	assert.Equal(t, `["3","3","room:<lobby>","phx_join",{"a":1}]`, string(data))

	data, _, err = v1Codec{}.encode(outMsg{joinRef: "1", ref: "2", topic: "room:lobby", event: "new_msg"})
	require.NoError(t, err)
	assert.Equal(t, `{"topic":"room:lobby","event":"new_msg","payload":{},"ref":"2","join_ref":"1"}`, string(data))

	m, err := v2Codec{}.decode([]byte(`["3",7,"room:lobby","phx_reply",{"status":"ok","response":{"x":1}}]`), false)
	require.NoError(t, err)
	assert.Equal(t, "3", m.joinRef)
	assert.Equal(t, "7", m.ref, "numeric refs are kept as their text")
	assert.Equal(t, "ok", m.status)
	assert.JSONEq(t, `{"x":1}`, m.payload.String())

	m, err = v1Codec{}.decode([]byte(`{"event":"phx_error","payload":{"reason":"channel_crash"},"ref":null,"topic":"room:lobby"}`), false)
	require.NoError(t, err)
	assert.Equal(t, inMsg{topic: "room:lobby", event: "phx_error", payload: protocol.JSONPayload([]byte(`{"reason":"channel_crash"}`))}, m)

	for _, bad := range []string{`[1,2,3]`, `{}`, `["a","b",1,"e",{}]`, `nope`} {
		_, err := v2Codec{}.decode([]byte(bad), false)
		assert.ErrorIs(t, err, protocol.ErrMalformed, bad)
	}
}

func TestConnectURL(t *testing.T) {
	u, err := endpointURL("http://example.com:4000/socket/")
	require.NoError(t, err)
	c := &Client{endpoint: u, opts: Options{Params: map[string]string{"token": "a b&c", "user": "é"}, Vsn: "2.0.0"}}
	assert.Equal(t, "ws://example.com:4000/socket/websocket?token=a%20b%26c&user=%C3%A9&vsn=2.0.0", c.connectURL("websocket"))
	assert.Equal(t, "http://example.com:4000/socket/longpoll?token=a%20b%26c&user=%C3%A9&vsn=2.0.0", c.connectURL("longpoll"))
	assert.Equal(t, "base64url.bearer.phx.YWJj", authSubprotocol("abc"), "padding removed")
	assert.Equal(t, "!'()*-._~", encodeURIComponent("!'()*-._~"))
}

func TestBackoffTables(t *testing.T) {
	var got []int64
	for n := 1; n <= 11; n++ {
		got = append(got, DefaultReconnectAfter(n).Milliseconds())
	}
	assert.Equal(t, []int64{10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000, 5000}, got)
	got = nil
	for n := 1; n <= 5; n++ {
		got = append(got, DefaultRejoinAfter(n).Milliseconds())
	}
	assert.Equal(t, []int64{1000, 2000, 5000, 10000, 10000}, got)
}
