package protocol_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/phxgo/phx/socket/protocol"
)

var frameV2 = []byte(`["3","42","room:lobby","new_msg",{"body":"hello world, this is a chat message","user":"alice"}]`)
var frameV1 = []byte(`{"join_ref":"3","ref":"42","topic":"room:lobby","event":"new_msg","payload":{"body":"hello world, this is a chat message","user":"alice"}}`)

func BenchmarkDecodeV2(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.V2.Decode(frameV2, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV1(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.V1.Decode(frameV1, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeReplyV2(b *testing.B) {
	p := protocol.JSONPayload(json.RawMessage(`{"body":"hello world"}`))
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = protocol.V2.EncodeReply(buf[:0], json.RawMessage(`"3"`), json.RawMessage(`"42"`), "room:lobby", "ok", p)
	}
}

func BenchmarkEncodeBroadcastV1(b *testing.B) {
	p := protocol.JSONPayload(json.RawMessage(`{"body":"hello world"}`))
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = protocol.V1.EncodeBroadcast(buf[:0], "room:lobby", "shout", p)
	}
}

func BenchmarkBinaryRoundTrip(b *testing.B) {
	payload := make([]byte, 1024)
	frame, _ := hexFrame()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.V2.Decode(frame, true); err != nil {
			b.Fatal(err)
		}
		buf, _, _ = protocol.V2.EncodeBroadcast(buf[:0], "room:1", "frame", protocol.BinaryPayload(payload))
	}
}

func hexFrame() ([]byte, error) {
	f := []byte{0, 1, 1, 6, 2, '1', '4', 'r', 'o', 'o', 'm', ':', '1', 'u', 'p'}
	return append(f, make([]byte, 1024)...), nil
}

// The server encodes every reply and push into a fresh slice (dst nil): the
// frame is queued and outlives the call.
func BenchmarkEncodeReplyV2Fresh(b *testing.B) {
	p := protocol.JSONPayload(json.RawMessage(`{"body":"hello world, this is a chat message","user":"alice"}`))
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = protocol.V2.EncodeReply(nil, json.RawMessage(`"3"`), json.RawMessage(`"42"`), "room:lobby", "ok", p)
	}
}

func BenchmarkEncodeBroadcastV2Fresh(b *testing.B) {
	p := protocol.JSONPayload(json.RawMessage(`{"seq":1,"ts":1700000000000000000,"pad":"` + strings.Repeat("x", 200) + `"}`))
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = protocol.V2.EncodeBroadcast(nil, "bench:fanout", "fanout", p)
	}
}

func BenchmarkEncodePushV1Fresh(b *testing.B) {
	p := protocol.JSONPayload(json.RawMessage(`{"body":"hello world, this is a chat message","user":"alice"}`))
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = protocol.V1.EncodePush(nil, nil, nil, "room:lobby", "new_msg", p)
	}
}

// Every socket sends one every 30 s: topic and event are the protocol's own.
func BenchmarkDecodeV2Heartbeat(b *testing.B) {
	frame := []byte(`[null,"17","phoenix","heartbeat",{}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.V2.Decode(frame, false); err != nil {
			b.Fatal(err)
		}
	}
}
