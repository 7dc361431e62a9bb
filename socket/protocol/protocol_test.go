package protocol_test

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/protocol"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		vsn     string
		present bool
		want    protocol.Serializer
	}{
		{"", false, protocol.V1},
		{"1.0.0", true, protocol.V1},
		{"1.0.7", true, protocol.V1},
		{"2.0.0", true, protocol.V2},
		{"2.0.3+build", true, protocol.V2},
		{"2.1.0", true, nil},
		{"3.0.0", true, nil},
		{"2.0", true, nil},
		{"abc", true, nil},
		{"", true, nil},
		{"2.0.0-rc.1", true, nil},
		{"02.0.0", true, nil},
	}
	for _, c := range cases {
		got, err := protocol.Negotiate(c.vsn, c.present)
		if c.want == nil {
			assert.ErrorIs(t, err, protocol.ErrBadVsn, c.vsn)
			continue
		}
		require.NoError(t, err, c.vsn)
		assert.Equal(t, c.want.ID(), got.ID(), c.vsn)
	}
}

func TestV2DecodeKeepsRefsRaw(t *testing.T) {
	m, err := protocol.V2.Decode([]byte(` ["3", 7 ,"room:lobby","phx_join",{"a":[1,"]"]}, "extra"]`), false)
	require.NoError(t, err)
	assert.Equal(t, `"3"`, string(m.JoinRef))
	assert.Equal(t, `7`, string(m.Ref))
	assert.Equal(t, "room:lobby", m.Topic)
	assert.Equal(t, "phx_join", m.Event)
	assert.JSONEq(t, `{"a":[1,"]"]}`, string(m.Payload.JSON()))

	m, err = protocol.V2.Decode([]byte(`[null,null,"r\u00e9","e\"v",[1,2]]`), false)
	require.NoError(t, err)
	assert.Nil(t, m.JoinRef)
	assert.Nil(t, m.Ref)
	assert.Equal(t, "ré", m.Topic)
	assert.Equal(t, `e"v`, m.Event)
}

func TestV2DecodeRejectsMalformed(t *testing.T) {
	for _, in := range []string{``, `{}`, `[1,2,3,4]`, `["1","1",3,"e",{}]`, `["1","1","t",null,{}]`, `[1,2,3`, `garbage`, `"str"`} {
		_, err := protocol.V2.Decode([]byte(in), false)
		assert.ErrorIs(t, err, protocol.ErrMalformed, in)
	}
}

func TestV1Decode(t *testing.T) {
	m, err := protocol.V1.Decode([]byte(`{"topic":"room:a","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`), false)
	require.NoError(t, err)
	assert.Equal(t, `"1"`, string(m.JoinRef))
	m, err = protocol.V1.Decode([]byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}`), false)
	require.NoError(t, err)
	assert.Nil(t, m.Ref)
	for _, in := range []string{`{"topic":"a","event":"b","payload":{}}`, `[]`, `{"topic":1,"event":"b","payload":{},"ref":null}`} {
		_, err := protocol.V1.Decode([]byte(in), false)
		assert.ErrorIs(t, err, protocol.ErrMalformed, in)
	}
	_, err = protocol.V1.Decode([]byte{0, 1}, true)
	assert.ErrorIs(t, err, protocol.ErrMalformed)
}

func TestEncodeV2(t *testing.T) {
	ref := json.RawMessage(`"7"`)
	jr := json.RawMessage(`"3"`)
	out, bin, err := protocol.V2.EncodeReply(nil, jr, ref, "room:lobby", "ok", protocol.JSONPayload(json.RawMessage(`{"x":1}`)))
	require.NoError(t, err)
	assert.False(t, bin)
	assert.Equal(t, `["3","7","room:lobby","phx_reply",{"status":"ok","response":{"x":1}}]`, string(out))

	out, _, err = protocol.V2.EncodePush(nil, jr, nil, "room:lobby", "new<msg>", protocol.Payload{})
	require.NoError(t, err)
	assert.Equal(t, `["3",null,"room:lobby","new<msg>",{}]`, string(out), "no HTML escaping, like Jason")

	out, _, err = protocol.V2.EncodeBroadcast(nil, "room:lobby", "shout", protocol.JSONPayload(json.RawMessage(`{"body":"hi"}`)))
	require.NoError(t, err)
	assert.Equal(t, `[null,null,"room:lobby","shout",{"body":"hi"}]`, string(out))

	// A numeric ref stays a number.
	out, _, err = protocol.V2.EncodeReply(nil, nil, json.RawMessage(`12`), "phoenix", "ok", protocol.Payload{})
	require.NoError(t, err)
	assert.Equal(t, `[null,12,"phoenix","phx_reply",{"status":"ok","response":{}}]`, string(out))
}

func TestEncodeV1(t *testing.T) {
	out, _, err := protocol.V1.EncodeReply(nil, json.RawMessage(`"1"`), json.RawMessage(`"2"`), "room:a", "ok", protocol.Payload{})
	require.NoError(t, err)
	assert.JSONEq(t, `{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}`, string(out))
	assert.NotContains(t, string(out), "join_ref")

	out, _, err = protocol.V1.EncodeBroadcast(nil, "room:a", "shout", protocol.JSONPayload(json.RawMessage(`{"a":1}`)))
	require.NoError(t, err)
	assert.JSONEq(t, `{"topic":"room:a","event":"shout","payload":{"a":1},"ref":null}`, string(out))

	_, _, err = protocol.V1.EncodePush(nil, nil, nil, "t", "e", protocol.BinaryPayload([]byte{1}))
	assert.ErrorIs(t, err, protocol.ErrBinaryUnsupported)
}

// The hex vectors of phoenix-protocol.md 2.4.
func TestBinaryFrames(t *testing.T) {
	c2s, _ := hex.DecodeString("00010106023134726f6f6d3a3175700102" + "03")
	m, err := protocol.V2.Decode(c2s, true)
	require.NoError(t, err)
	assert.Equal(t, `"1"`, string(m.JoinRef))
	assert.Equal(t, `"4"`, string(m.Ref))
	assert.Equal(t, "room:1", m.Topic)
	assert.Equal(t, "up", m.Event)
	assert.True(t, m.Payload.IsBinary())
	assert.Equal(t, []byte{1, 2, 3}, m.Payload.Bytes())

	out, bin, err := protocol.V2.EncodePush(nil, json.RawMessage(`"12"`), nil, "room:1", "img", protocol.BinaryPayload([]byte{1, 2, 3}))
	require.NoError(t, err)
	assert.True(t, bin)
	assert.Equal(t, "000206033132726f6f6d3a31696d67010203", hex.EncodeToString(out))

	out, _, err = protocol.V2.EncodeReply(nil, json.RawMessage(`"12"`), json.RawMessage(`"7"`), "room:1", "ok", protocol.BinaryPayload([]byte{0x0a, 0x0b}))
	require.NoError(t, err)
	assert.Equal(t, "0102010602313237726f6f6d3a316f6b0a0b", hex.EncodeToString(out))

	out, _, err = protocol.V2.EncodeBroadcast(nil, "room:1", "frame", protocol.BinaryPayload([]byte{0xff}))
	require.NoError(t, err)
	assert.Equal(t, "020605726f6f6d3a316672616d65ff", hex.EncodeToString(out))
}

func TestBinaryRejectsBadFrames(t *testing.T) {
	for _, h := range []string{"", "00", "0001010101", "01010106023134726f6f6d3a3175700102", "00ff0000007878"} {
		b, _ := hex.DecodeString(h)
		_, err := protocol.V2.Decode(b, true)
		assert.ErrorIs(t, err, protocol.ErrMalformed, h)
	}
	long := make([]byte, 256)
	_, _, err := protocol.V2.EncodeBroadcast(nil, string(long), "e", protocol.BinaryPayload(nil))
	assert.ErrorIs(t, err, protocol.ErrMalformed)
}

func TestMarshal(t *testing.T) {
	p, err := protocol.Marshal(map[string]string{"a": "<b>&"})
	require.NoError(t, err)
	assert.Equal(t, `{"a":"<b>&"}`, string(p.JSON()))
	assert.True(t, p.IsObject())
	p, err = protocol.Marshal(nil)
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(p.JSON()))
	p, err = protocol.Marshal(protocol.Binary{1})
	require.NoError(t, err)
	assert.True(t, p.IsBinary())
	_, err = protocol.Marshal(json.RawMessage(`{bad`))
	assert.Error(t, err)
	p, _ = protocol.Marshal([]int{1})
	assert.False(t, p.IsObject())
}

func TestRefString(t *testing.T) {
	assert.Equal(t, "3", protocol.RefString(json.RawMessage(`"3"`)))
	assert.Equal(t, "12", protocol.RefString(json.RawMessage(`12`)))
	assert.Equal(t, "", protocol.RefString(nil))
	assert.True(t, protocol.SameRef(json.RawMessage(`"3"`), json.RawMessage(`"3"`)))
	assert.False(t, protocol.SameRef(json.RawMessage(`"3"`), json.RawMessage(`3`)))
}

func FuzzV2Decode(f *testing.F) {
	f.Add([]byte(`["1","2","room:a","e",{}]`), false)
	f.Add([]byte{0, 1, 1, 1, 1, 'a', 'b', 'c', 'd'}, true)
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		m, err := protocol.V2.Decode(data, binary)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode without error.
		if _, _, err := protocol.V2.EncodeReply(nil, m.JoinRef, m.Ref, m.Topic, "ok", protocol.Payload{}); err != nil && !binary {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func FuzzV1Decode(f *testing.F) {
	f.Add([]byte(`{"topic":"a","event":"b","payload":{},"ref":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = protocol.V1.Decode(data, false)
	})
}

// realtime-js (vsn 2.0.0) sends channel.send({type: "broadcast"}) as its own
// binary kind 3; it decodes to the push it stands for.
func TestDecodeUserBroadcastPush(t *testing.T) {
	frame := func(enc byte, joinRef, ref, topic, event, meta, payload string) []byte {
		b := []byte{3, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)), byte(len(meta)), enc}
		return append(append(b, joinRef+ref+topic+event+meta...), payload...)
	}
	m, err := protocol.V2.Decode(frame(1, "1", "7", "realtime:room", "cursor", "", `{"x":1}`), true)
	require.NoError(t, err)
	assert.Equal(t, "realtime:room", m.Topic)
	assert.Equal(t, "broadcast", m.Event)
	assert.Equal(t, `"7"`, string(m.Ref))
	assert.JSONEq(t, `{"type":"broadcast","event":"cursor","payload":{"x":1}}`, string(m.Payload.JSON()))
	m, err = protocol.V2.Decode(frame(1, "1", "8", "t", "e", `{"id":"a"}`, `[1]`), true)
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"broadcast","event":"e","payload":[1],"meta":{"id":"a"}}`, string(m.Payload.JSON()))
	m, err = protocol.V2.Decode(frame(0, "1", "9", "t", "e", "", "\x00\x01"), true)
	require.NoError(t, err)
	assert.True(t, m.Payload.IsBinary())
	for _, bad := range [][]byte{{3, 1}, frame(1, "1", "2", "t", "e", "", `{nope`), frame(7, "1", "2", "t", "e", "", `{}`), {3, 9, 9, 9, 9, 9, 1}} {
		_, err := protocol.V2.Decode(bad, true)
		assert.ErrorIs(t, err, protocol.ErrMalformed, "%q", bad)
	}
}
