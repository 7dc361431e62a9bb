package protocol

import (
	"encoding/json"
)

// v1 is the JSON-object serializer (vsn 1.0.x). It never sends join_ref and
// cannot carry binary payloads.
type v1 struct{}

func (v1) ID() int        { return 0 }
func (v1) Vsn() string    { return "1.0.0" }
func (v1) String() string { return "V1" }

func (v1) Decode(data []byte, binary bool) (Message, error) {
	if binary {
		return Message{}, malformed("binary frames need vsn 2.0.0")
	}
	if !json.Valid(data) {
		return Message{}, malformed("invalid JSON")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return Message{}, malformed("V1 frame is not a JSON object")
	}
	for _, k := range [...]string{"topic", "event", "payload", "ref"} {
		if _, ok := obj[k]; !ok {
			return Message{}, malformed("V1 frame lacks %q", k)
		}
	}
	topic, err := decodeString(obj["topic"], "topic")
	if err != nil {
		return Message{}, err
	}
	event, err := decodeString(obj["event"], "event")
	if err != nil {
		return Message{}, err
	}
	return Message{
		JoinRef: refValue(obj["join_ref"]),
		Ref:     refValue(obj["ref"]),
		Topic:   topic,
		Event:   event,
		Payload: JSONPayload(obj["payload"]),
	}, nil
}

func (v1) EncodePush(dst []byte, _, ref json.RawMessage, topic, event string, p Payload) ([]byte, bool, error) {
	return encodeV1(dst, ref, topic, event, p)
}

func (v1) EncodeReply(dst []byte, _, ref json.RawMessage, topic, status string, response Payload) ([]byte, bool, error) {
	if response.IsBinary() {
		return dst, false, ErrBinaryUnsupported
	}
	dst = grow(dst, frameSize(nil, ref, topic, status, len(response.json))+64)
	dst = append(dst, `{"topic":`...)
	dst = appendString(dst, topic)
	dst = append(dst, `,"event":"phx_reply","payload":{"status":`...)
	dst = appendString(dst, status)
	dst = append(dst, `,"response":`...)
	dst = append(dst, response.JSON()...)
	dst = append(dst, `},"ref":`...)
	dst = appendRef(dst, ref)
	return append(dst, '}'), false, nil
}

func (v1) EncodeBroadcast(dst []byte, topic, event string, p Payload) ([]byte, bool, error) {
	return encodeV1(dst, nil, topic, event, p)
}

func encodeV1(dst []byte, ref json.RawMessage, topic, event string, p Payload) ([]byte, bool, error) {
	if p.IsBinary() {
		return dst, false, ErrBinaryUnsupported
	}
	dst = grow(dst, frameSize(nil, ref, topic, event, len(p.json))+32)
	dst = append(dst, `{"topic":`...)
	dst = appendString(dst, topic)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, event)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, p.JSON()...)
	dst = append(dst, `,"ref":`...)
	dst = appendRef(dst, ref)
	return append(dst, '}'), false, nil
}
