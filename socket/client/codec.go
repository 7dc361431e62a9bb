package client

import (
	"encoding/json"
	"fmt"

	"github.com/phxgo/phx/socket/protocol"
)

// outMsg is one client→server message before encoding. Empty refs are sent
// as null (or as empty strings in binary frames, which Phoenix reads the same).
type outMsg struct {
	joinRef, ref, topic, event string
	payload                    Payload
}

// inMsg is one decoded server→client frame. Replies carry their status apart
// from the response, whatever the frame layout (JSON or binary kind 1).
type inMsg struct {
	joinRef, ref, topic, event string
	payload                    Payload // the response for replies
	status                     string  // replies only
}

// codec is the client side of a serializer: protocol.V1/V2 implement the
// opposite directions (decode client frames, encode server frames), so the
// client needs its own small mirror image of them.
type codec interface {
	encode(m outMsg) (data []byte, binary bool, err error)
	decode(data []byte, binary bool) (inMsg, error)
}

func codecFor(vsn string) (codec, error) {
	s, err := protocol.Negotiate(vsn, true)
	if err != nil {
		return nil, fmt.Errorf("phx client: %w", err)
	}
	if s.ID() == protocol.V1.ID() {
		return v1Codec{}, nil
	}
	return v2Codec{}, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{protocol.ErrMalformed}, args...)...)
}

// appendRef writes a ref as a JSON string, or null when empty.
func appendRef(dst []byte, ref string) []byte {
	if ref == "" {
		return append(dst, "null"...)
	}
	return append(dst, protocol.StringRef(ref)...)
}

// v2Codec speaks vsn 2.0.x: JSON arrays, and binary frames for byte payloads.
type v2Codec struct{}

func (v2Codec) encode(m outMsg) ([]byte, bool, error) {
	if m.payload.IsBinary() {
		b, err := encodeBinaryPush(m)
		return b, true, err
	}
	b := make([]byte, 0, 64+len(m.payload.JSON()))
	b = append(b, '[')
	b = appendRef(b, m.joinRef)
	b = append(b, ',')
	b = appendRef(b, m.ref)
	b = append(b, ',')
	b = append(b, protocol.StringRef(m.topic)...)
	b = append(b, ',')
	b = append(b, protocol.StringRef(m.event)...)
	b = append(b, ',')
	b = append(b, m.payload.JSON()...)
	return append(b, ']'), false, nil
}

// encodeBinaryPush writes the client's kind-0 frame, which (unlike the
// server's) carries a ref: 0, four length bytes, join_ref, ref, topic, event,
// payload.
func encodeBinaryPush(m outMsg) ([]byte, error) {
	for _, f := range [...]string{m.joinRef, m.ref, m.topic, m.event} {
		if len(f) > 255 {
			return nil, malformed("binary frame field longer than 255 bytes")
		}
	}
	p := m.payload.Bytes()
	b := make([]byte, 0, 5+len(m.joinRef)+len(m.ref)+len(m.topic)+len(m.event)+len(p))
	b = append(b, 0, byte(len(m.joinRef)), byte(len(m.ref)), byte(len(m.topic)), byte(len(m.event)))
	b = append(b, m.joinRef...)
	b = append(b, m.ref...)
	b = append(b, m.topic...)
	b = append(b, m.event...)
	return append(b, p...), nil
}

func (v2Codec) decode(data []byte, binary bool) (inMsg, error) {
	if binary {
		return decodeBinary(data)
	}
	var el []json.RawMessage
	if err := json.Unmarshal(data, &el); err != nil {
		return inMsg{}, malformed("V2 frame is not a JSON array: %v", err)
	}
	if len(el) < 5 {
		return inMsg{}, malformed("V2 frame has %d elements, want 5", len(el))
	}
	return finish(el[0], el[1], el[2], el[3], el[4])
}

// finish builds an inMsg from the five JSON fields of a text frame.
func finish(joinRef, ref, topic, event, payload json.RawMessage) (inMsg, error) {
	m := inMsg{joinRef: protocol.RefString(joinRef), ref: protocol.RefString(ref)}
	if err := json.Unmarshal(topic, &m.topic); err != nil {
		return inMsg{}, malformed("topic must be a string")
	}
	if err := json.Unmarshal(event, &m.event); err != nil {
		return inMsg{}, malformed("event must be a string")
	}
	if m.event != protocol.EventReply {
		m.payload = protocol.JSONPayload(payload)
		return m, nil
	}
	var r struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return inMsg{}, malformed("reply payload: %v", err)
	}
	m.status = r.Status
	m.payload = protocol.JSONPayload(r.Response)
	return m, nil
}

// decodeBinary parses the three server kinds (phoenix-protocol.md 2.4).
func decodeBinary(b []byte) (inMsg, error) {
	if len(b) == 0 {
		return inMsg{}, malformed("empty binary frame")
	}
	var n int // number of length bytes
	switch b[0] {
	case 0: // push: join_ref, topic, event
		n = 3
	case 1: // reply: join_ref, ref, topic, status
		n = 4
	case 2: // broadcast: topic, event
		n = 2
	default:
		return inMsg{}, malformed("binary frame kind %d", b[0])
	}
	if len(b) < 1+n {
		return inMsg{}, malformed("binary frame shorter than its header")
	}
	fields := make([]string, n)
	p := 1 + n
	for i := range n {
		l := int(b[1+i])
		if p+l > len(b) {
			return inMsg{}, malformed("binary frame lengths exceed the frame")
		}
		fields[i] = string(b[p : p+l])
		p += l
	}
	payload := protocol.BinaryPayload(b[p:])
	switch b[0] {
	case 0:
		return inMsg{joinRef: fields[0], topic: fields[1], event: fields[2], payload: payload}, nil
	case 1:
		return inMsg{joinRef: fields[0], ref: fields[1], topic: fields[2], event: protocol.EventReply, status: fields[3], payload: payload}, nil
	default:
		return inMsg{topic: fields[0], event: fields[1], payload: payload}, nil
	}
}

// v1Codec speaks vsn 1.0.x: JSON objects, no binary, no join_ref from the
// server. The client still sends join_ref, which Phoenix accepts as optional.
type v1Codec struct{}

func (v1Codec) encode(m outMsg) ([]byte, bool, error) {
	if m.payload.IsBinary() {
		return nil, false, protocol.ErrBinaryUnsupported
	}
	b := make([]byte, 0, 80+len(m.payload.JSON()))
	b = append(b, `{"topic":`...)
	b = append(b, protocol.StringRef(m.topic)...)
	b = append(b, `,"event":`...)
	b = append(b, protocol.StringRef(m.event)...)
	b = append(b, `,"payload":`...)
	b = append(b, m.payload.JSON()...)
	b = append(b, `,"ref":`...)
	b = appendRef(b, m.ref)
	if m.joinRef != "" {
		b = append(b, `,"join_ref":`...)
		b = appendRef(b, m.joinRef)
	}
	return append(b, '}'), false, nil
}

func (v1Codec) decode(data []byte, binary bool) (inMsg, error) {
	if binary {
		return inMsg{}, malformed("binary frame on a V1 connection")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return inMsg{}, malformed("V1 frame is not a JSON object: %v", err)
	}
	return finish(obj["join_ref"], obj["ref"], obj["topic"], obj["event"], obj["payload"])
}
