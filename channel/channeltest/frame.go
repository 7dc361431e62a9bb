package channeltest

import (
	"fmt"

	"github.com/phxgo/phx/socket/protocol"
)

// decodeFrame parses a server→client V2 frame. Text frames have the same
// array shape in both directions; binary frames are kind 0 (push, no ref),
// 1 (reply, status in the event slot) or 2 (broadcast).
func decodeFrame(data []byte, binary bool) (Frame, error) {
	if !binary {
		m, err := protocol.V2.Decode(data, false)
		if err != nil {
			return Frame{}, err
		}
		return Frame{JoinRef: protocol.RefString(m.JoinRef), Ref: protocol.RefString(m.Ref), Topic: m.Topic, Event: m.Event, Payload: m.Payload}, nil
	}
	if len(data) < 1 {
		return Frame{}, fmt.Errorf("empty binary frame")
	}
	var lens []int
	switch data[0] {
	case 0:
		lens = make([]int, 3)
	case 1:
		lens = make([]int, 4)
	case 2:
		lens = make([]int, 2)
	default:
		return Frame{}, fmt.Errorf("binary frame kind %d", data[0])
	}
	if len(data) < 1+len(lens) {
		return Frame{}, fmt.Errorf("short binary frame")
	}
	p := 1 + len(lens)
	fields := make([]string, len(lens))
	for i := range lens {
		n := int(data[1+i])
		if p+n > len(data) {
			return Frame{}, fmt.Errorf("binary frame lengths exceed the frame")
		}
		fields[i] = string(data[p : p+n])
		p += n
	}
	payload := protocol.BinaryPayload(data[p:])
	switch data[0] {
	case 0:
		return Frame{JoinRef: fields[0], Topic: fields[1], Event: fields[2], Payload: payload}, nil
	case 1:
		return Frame{JoinRef: fields[0], Ref: fields[1], Topic: fields[2], Event: protocol.EventReply, Payload: payload, status: fields[3]}, nil
	}
	return Frame{Topic: fields[0], Event: fields[1], Payload: payload}, nil
}

func (f Frame) binaryStatus() string { return f.status }
