package protocol

import "encoding/json"

// Binary frame kinds (phoenix-protocol.md 2.4). The push kind is asymmetric:
// a client push carries a ref, a server push does not.
const (
	kindPush      = 0
	kindReply     = 1
	kindBroadcast = 2
	// kindUserBroadcastPush is @supabase/realtime-js's own client frame for
	// channel.send({type: "broadcast", ...}) on vsn 2.0.0 (its serializer's
	// KINDS.userBroadcastPush). Phoenix has no such kind; accepting it costs
	// nothing to Phoenix clients, which never send it.
	kindUserBroadcastPush = 3
)

// decodeBinaryPush parses a client binary frame:
// 0, len(join_ref), len(ref), len(topic), len(event), the four strings, payload.
func decodeBinaryPush(b []byte) (Message, error) {
	if len(b) < 5 {
		return Message{}, malformed("binary frame shorter than its header")
	}
	if b[0] == kindUserBroadcastPush {
		return decodeUserBroadcastPush(b)
	}
	if b[0] != kindPush {
		return Message{}, malformed("binary frame kind %d from a client", b[0])
	}
	jl, rl, tl, el := int(b[1]), int(b[2]), int(b[3]), int(b[4])
	end := 5 + jl + rl + tl + el
	if end > len(b) {
		return Message{}, malformed("binary frame lengths exceed the frame")
	}
	p := 5
	joinRef := string(b[p : p+jl])
	p += jl
	ref := string(b[p : p+rl])
	p += rl
	topic := string(b[p : p+tl])
	p += tl
	event := string(b[p : p+el])
	m := Message{Topic: topic, Event: event, Payload: BinaryPayload(b[end:])}
	if jl > 0 {
		m.JoinRef = StringRef(joinRef)
	}
	if rl > 0 {
		m.Ref = StringRef(ref)
	}
	return m, nil
}

func fieldsFit(fields ...string) error {
	for _, f := range fields {
		if len(f) > 255 {
			return malformed("binary frame field longer than 255 bytes")
		}
	}
	return nil
}

func encodeBinaryPush(dst []byte, joinRef, topic, event string, payload []byte) ([]byte, error) {
	if err := fieldsFit(joinRef, topic, event); err != nil {
		return dst, err
	}
	dst = append(dst, kindPush, byte(len(joinRef)), byte(len(topic)), byte(len(event)))
	dst = append(dst, joinRef...)
	dst = append(dst, topic...)
	dst = append(dst, event...)
	return append(dst, payload...), nil
}

func encodeBinaryReply(dst []byte, joinRef, ref, topic, status string, payload []byte) ([]byte, error) {
	if err := fieldsFit(joinRef, ref, topic, status); err != nil {
		return dst, err
	}
	dst = append(dst, kindReply, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(status)))
	dst = append(dst, joinRef...)
	dst = append(dst, ref...)
	dst = append(dst, topic...)
	dst = append(dst, status...)
	return append(dst, payload...), nil
}

func encodeBinaryBroadcast(dst []byte, topic, event string, payload []byte) ([]byte, error) {
	if err := fieldsFit(topic, event); err != nil {
		return dst, err
	}
	dst = append(dst, kindBroadcast, byte(len(topic)), byte(len(event)))
	dst = append(dst, topic...)
	dst = append(dst, event...)
	return append(dst, payload...), nil
}

// decodeUserBroadcastPush parses realtime-js's user broadcast push:
// 3, len(join_ref), len(ref), len(topic), len(user event), len(metadata),
// encoding (0 binary, 1 JSON), the five strings, the user payload. It
// becomes the push realtime-js would send as JSON text: event "broadcast"
// with {"type":"broadcast","event":E,"payload":P} (and "meta" when
// present). A binary user payload stays binary, as the whole payload.
func decodeUserBroadcastPush(b []byte) (Message, error) {
	if len(b) < 7 {
		return Message{}, malformed("user broadcast frame shorter than its header")
	}
	jl, rl, tl, el, ml, enc := int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), b[6]
	end := 7 + jl + rl + tl + el + ml
	if end > len(b) {
		return Message{}, malformed("user broadcast frame lengths exceed the frame")
	}
	p := 7
	field := func(n int) string { s := string(b[p : p+n]); p += n; return s }
	joinRef, ref, topic, userEvent, meta := field(jl), field(rl), field(tl), field(el), field(ml)
	m := Message{Topic: topic, Event: "broadcast"}
	if jl > 0 {
		m.JoinRef = StringRef(joinRef)
	}
	if rl > 0 {
		m.Ref = StringRef(ref)
	}
	body := b[end:]
	switch enc {
	case 0:
		m.Payload = BinaryPayload(body)
		return m, nil
	case 1:
	default:
		return Message{}, malformed("user broadcast encoding %d", enc)
	}
	if !json.Valid(body) || (ml > 0 && !json.Valid([]byte(meta))) {
		return Message{}, malformed("user broadcast payload is not JSON")
	}
	ev, _ := json.Marshal(userEvent)
	out := make([]byte, 0, len(body)+len(meta)+len(ev)+48)
	out = append(out, `{"type":"broadcast","event":`...)
	out = append(out, ev...)
	out = append(out, `,"payload":`...)
	out = append(out, body...)
	if ml > 0 {
		out = append(out, `,"meta":`...)
		out = append(out, meta...)
	}
	out = append(out, '}')
	m.Payload = JSONPayload(out)
	return m, nil
}
