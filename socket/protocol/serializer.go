package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Serializer turns logical messages into frames and back. A connection uses
// one serializer for its whole life, chosen by Negotiate.
//
// Encode methods append to dst and report whether the frame is binary.
type Serializer interface {
	// ID is a small dense index (0 for V1, 1 for V2) so that a broadcast can
	// cache its encoded frame per serializer in a fixed array.
	ID() int
	// Vsn is the protocol version the serializer speaks.
	Vsn() string
	// Decode parses one client frame.
	Decode(data []byte, binary bool) (Message, error)
	// EncodePush encodes a message to one client (push, phx_close, phx_error).
	EncodePush(dst []byte, joinRef, ref json.RawMessage, topic, event string, p Payload) ([]byte, bool, error)
	// EncodeReply encodes a phx_reply with a status and a response.
	EncodeReply(dst []byte, joinRef, ref json.RawMessage, topic, status string, response Payload) ([]byte, bool, error)
	// EncodeBroadcast encodes a fastlane broadcast (no refs), identical for
	// every subscriber using this serializer.
	EncodeBroadcast(dst []byte, topic, event string, p Payload) ([]byte, bool, error)
}

// NumSerializers is the number of serializer IDs.
const NumSerializers = 2

// The serializers, stateless and safe for concurrent use.
var (
	V1 Serializer = v1{}
	V2 Serializer = v2{}
)

// ErrBadVsn is returned by Negotiate for a vsn Phoenix would refuse.
var ErrBadVsn = fmt.Errorf("protocol: unsupported vsn")

// Negotiate picks the serializer for a vsn query value, as Phoenix does: absent
// means 1.0.0; 1.0.x is V1; 2.0.x is V2; anything else, including a version
// that is not a full semver or a pre-release of 2.0.0, is refused.
func Negotiate(vsn string, present bool) (Serializer, error) {
	if !present {
		return V1, nil
	}
	major, minor, ok := parseSemver(vsn)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %q", ErrBadVsn, vsn)
	case major == 1 && minor == 0:
		return V1, nil
	case major == 2 && minor == 0:
		return V2, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrBadVsn, vsn)
}

// parseSemver accepts MAJOR.MINOR.PATCH[+build]; a pre-release suffix sorts
// below the release, so it can never satisfy ~> X.Y.0 and is refused.
func parseSemver(v string) (major, minor int, ok bool) {
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i]
	}
	if strings.IndexByte(v, '-') >= 0 {
		return 0, 0, false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0, 0, false
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return 0, 0, false
		}
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return 0, 0, false
		}
		n[i] = x
	}
	return n[0], n[1], true
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
