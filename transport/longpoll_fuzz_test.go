package transport_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"mime"
	"testing"

	"github.com/phxgo/phx/transport"
)

// FuzzParseLongPollBody feeds arbitrary POST bodies to the LongPoll parser, the
// first code that sees a LongPoll client's bytes. Besides never panicking, the
// result must be bounded, be made of the body's own lines, and be stable:
// re-encoding the frames the way phoenix.js does and parsing again gives the
// same frames, so what the parser accepts is exactly what a client could send.
func FuzzParseLongPollBody(f *testing.F) {
	f.Add("application/x-ndjson", []byte("[\"1\",\"1\",\"room:a\",\"phx_join\",{}]\n[null,\"2\",\"phoenix\",\"heartbeat\",{}]"))
	f.Add("application/x-ndjson; charset=utf-8", []byte("\r\n[1]\r\n\n  \naGkh\n[2]"))
	f.Add("application/x-ndjson", []byte("[1]\n!!!\n[2]"))
	f.Add("application/x-ndjson", []byte("AAEBAQFhYmNk\nAA==\n="))
	f.Add("application/json", []byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}`))
	f.Add("text/plain", []byte("  \n "))
	f.Add("", []byte(nil))
	f.Add("application/x-ndjson;;", []byte("[1]"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		frames, err := transport.ParseLongPollBody(contentType, body)
		if err != nil && !errors.Is(err, transport.ErrBadLongPollLine) {
			t.Fatalf("error %v does not wrap ErrBadLongPollLine", err)
		}
		if len(frames) > transport.MaxLongPollLines {
			t.Fatalf("%d frames, more than MaxLongPollLines", len(frames))
		}
		if mt, _, perr := mime.ParseMediaType(contentType); perr != nil || mt != "application/x-ndjson" {
			// Any other body is one text frame as it is (old clients, V1
			// objects), or nothing when blank.
			want := []transport.Frame{{Data: body}}
			if len(bytes.TrimSpace(body)) == 0 {
				want = nil
			}
			if err != nil || !sameFrames(frames, want) {
				t.Fatalf("non-NDJSON body: got %v, %v", frames, err)
			}
			return
		}
		var again bytes.Buffer
		var want []transport.Frame // what the re-encoded body must parse to
		for i, fr := range frames {
			if !fr.Binary {
				if len(fr.Data) == 0 || fr.Data[0] != '[' || bytes.IndexByte(fr.Data, '\n') >= 0 {
					t.Fatalf("text frame %d %q is not one JSON-array line", i, fr.Data)
				}
				if !bytes.Contains(body, fr.Data) {
					t.Fatalf("text frame %d %q is not in the body", i, fr.Data)
				}
				again.Write(fr.Data)
			} else {
				if len(fr.Data) == 0 {
					// A line of only "=" is an empty binary frame, which
					// btoa cannot produce (it would be a blank line, skipped);
					// the binary decoder refuses it later.
					continue
				}
				// btoa's output: standard, padded.
				again.WriteString(base64.StdEncoding.EncodeToString(fr.Data))
			}
			again.WriteByte('\n')
			want = append(want, fr)
		}
		reparsed, err := transport.ParseLongPollBody("application/x-ndjson", again.Bytes())
		if err != nil {
			t.Fatalf("re-encoded frames do not parse: %v\n%q", err, again.Bytes())
		}
		if !sameFrames(want, reparsed) {
			t.Fatalf("parse is not stable:\nfirst  %v\nsecond %v", want, reparsed)
		}
	})
}

func sameFrames(a, b []transport.Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Binary != b[i].Binary || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}
