package token

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzVerify checks that no token makes Verify panic or return an error
// outside its contract. Since random tokens almost never carry a valid MAC,
// it also seals the input as a payload, which sends the fuzzer's bytes
// through the ETF decoder and the age checks.
func FuzzVerify(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.token)
	}
	f.Add("")
	f.Add("SFMyNTY..")
	f.Add("\x83h\x03a*n\x06\x00\x00h\xe5ϋ\x01b\x00\x01Q\x80")
	f.Add("\x83h\x02a*n\x06\x00\x00h\xe5ϋ\x01")
	f.Add("\x83t\x00\x00\x00\x02w\x04dataa*w\x06signedn\x06\x00\x00h\xe5ϋ\x01")

	s, err := NewSigner(vecSecret, vecSalt, WithNow(func() time.Time { return vecSignedAt }))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		v, err := s.Verify(tok)
		switch {
		case tok == "":
			if !errors.Is(err, ErrMissing) {
				t.Fatalf("empty token: %v", err)
			}
		case err != nil:
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unexpected error class: %v", err)
			}
			// Short inputs may occur in any message by chance.
			if len(tok) >= 12 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error echoes the token")
			}
		default:
			if _, err := encodeTerm(v); err != nil {
				t.Fatalf("verified data does not re-encode: %v", err)
			}
		}

		v, err = s.Verify(s.seal(HS256, []byte(tok)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if _, err := encodeTerm(v); err != nil {
			t.Fatalf("verified data does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeTerm checks that the decoder never panics, reports every
// failure as ErrInvalid, and that whatever it accepts survives an
// encode/decode round trip unchanged.
func FuzzDecodeTerm(f *testing.F) {
	for _, v := range []any{
		Tuple{42, vecSignedAt.UnixMilli(), int64(86400)},
		map[string]any{"id": 7, "tags": []any{"a", 1.5, nil, true}},
		map[Atom]any{"user_id": int64(1) << 40},
		map[any]any{int64(1): Atom("x"), "k": Tuple{}},
		[]any{1, 2, 3},
		[]any{1000, "x"},
		Atom("infinity"),
		-3.25,
	} {
		b, err := encodeTerm(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{131, 100, 0, 4, 'c', 'a', 'f', 0xe9})
	f.Add(zlibTerm(f, 10, []byte{109, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}))

	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeTerm(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		enc, err := encodeTerm(v)
		if err != nil {
			t.Fatalf("decoded term does not encode: %v", err)
		}
		v2, err := decodeTerm(enc)
		if err != nil {
			t.Fatalf("re-encoded term does not decode: %v", err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed the term:\n%#v\n%#v", v, v2)
		}
	})
}
