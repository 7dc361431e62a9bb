package transport

import (
	"encoding/base64"
	"strings"
)

// decodeBase64Lenient decodes standard or URL-safe base64, padded or not.
// phoenix.js labels its token "base64url" but encodes it with btoa (the
// standard alphabet) and strips the padding.
func decodeBase64Lenient(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	return base64.RawStdEncoding.DecodeString(s)
}
