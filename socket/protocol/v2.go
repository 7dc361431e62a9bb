package protocol

import (
	"encoding/json"
)

// v2 is the JSON-array serializer (vsn 2.0.x) with binary frames.
type v2 struct{}

func (v2) ID() int        { return 1 }
func (v2) Vsn() string    { return "2.0.0" }
func (v2) String() string { return "V2" }

func (v2) Decode(data []byte, binary bool) (Message, error) {
	if binary {
		return decodeBinaryPush(data)
	}
	var el [5]json.RawMessage
	n, err := splitArray(data, el[:])
	if err != nil {
		return Message{}, err
	}
	if n < 5 {
		return Message{}, malformed("V2 frame has %d elements, want 5", n)
	}
	topic, err := decodeString(el[2], "topic")
	if err != nil {
		return Message{}, err
	}
	event, err := decodeString(el[3], "event")
	if err != nil {
		return Message{}, err
	}
	return Message{
		JoinRef: refValue(el[0]),
		Ref:     refValue(el[1]),
		Topic:   topic,
		Event:   event,
		Payload: JSONPayload(el[4]),
	}, nil
}

func (v2) EncodePush(dst []byte, joinRef, ref json.RawMessage, topic, event string, p Payload) ([]byte, bool, error) {
	if p.IsBinary() {
		out, err := encodeBinaryPush(dst, RefString(joinRef), topic, event, p.binary)
		return out, true, err
	}
	dst = grow(dst, frameSize(joinRef, ref, topic, event, len(p.json)))
	dst = append(dst, '[')
	dst = appendRef(dst, joinRef)
	dst = append(dst, ',')
	dst = appendRef(dst, ref)
	dst = append(dst, ',')
	dst = appendString(dst, topic)
	dst = append(dst, ',')
	dst = appendString(dst, event)
	dst = append(dst, ',')
	dst = append(dst, p.JSON()...)
	return append(dst, ']'), false, nil
}

func (v2) EncodeReply(dst []byte, joinRef, ref json.RawMessage, topic, status string, response Payload) ([]byte, bool, error) {
	if response.IsBinary() {
		out, err := encodeBinaryReply(dst, RefString(joinRef), RefString(ref), topic, status, response.binary)
		return out, true, err
	}
	dst = grow(dst, frameSize(joinRef, ref, topic, status, len(response.json))+32)
	dst = append(dst, '[')
	dst = appendRef(dst, joinRef)
	dst = append(dst, ',')
	dst = appendRef(dst, ref)
	dst = append(dst, ',')
	dst = appendString(dst, topic)
	dst = append(dst, `,"phx_reply",{"status":`...)
	dst = appendString(dst, status)
	dst = append(dst, `,"response":`...)
	dst = append(dst, response.JSON()...)
	return append(dst, "}]"...), false, nil
}

func (v2) EncodeBroadcast(dst []byte, topic, event string, p Payload) ([]byte, bool, error) {
	if p.IsBinary() {
		out, err := encodeBinaryBroadcast(dst, topic, event, p.binary)
		return out, true, err
	}
	dst = grow(dst, frameSize(nil, nil, topic, event, len(p.json)))
	dst = append(dst, "[null,null,"...)
	dst = appendString(dst, topic)
	dst = append(dst, ',')
	dst = appendString(dst, event)
	dst = append(dst, ',')
	dst = append(dst, p.JSON()...)
	return append(dst, ']'), false, nil
}

// splitArray validates data as JSON and, if it is an array, stores its first
// len(out) elements in out, returning the number of elements.
func splitArray(data []byte, out []json.RawMessage) (int, error) {
	if !json.Valid(data) {
		return 0, malformed("invalid JSON")
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return 0, malformed("V2 frame is not a JSON array")
	}
	i++
	n := 0
	for {
		i = skipSpace(data, i)
		if data[i] == ']' {
			return n, nil
		}
		end := skipValue(data, i)
		if n < len(out) {
			out[n] = data[i:end]
		}
		n++
		i = skipSpace(data, end)
		if data[i] == ',' {
			i++
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at i. The input is
// known to be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) && b[i] != ',' && b[i] != ']' && b[i] != '}' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

func skipString(b []byte, i int) int {
	i++ // opening quote
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
			continue
		case '"':
			return i + 1
		}
		i++
	}
	return i
}
