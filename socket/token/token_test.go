package token

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vector of phoenix-protocol.md section 8.1, computed with
// Erlang/OTP.
var (
	vecSecret   = strings.Repeat("abcdefghij", 7)
	vecSalt     = "user socket"
	vecSignedAt = time.UnixMilli(1_700_000_000_000)
	vecKey      = "25af3cea2f85f91ac39b0f0adb4dcae82c895d091e33374ed15e1dff83d136c2"
	vectors     = []struct {
		name  string
		data  any
		want  any
		token string
	}{
		{"int", 42, int64(42), "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.x5ePTXG_GeWPvCofqyQJFuhseqnWQpkVSWmpIKaq01Y"},
		{"string", "user-42", "user-42", "SFMyNTY.g2gDbQAAAAd1c2VyLTQybgYAAGjlz4sBYgABUYA.vztYnec9znzhqAIrJLPVp6xsklj8GiNZM14WfW0no6I"},
		{"map", map[string]any{"id": 7}, map[string]any{"id": int64(7)}, "SFMyNTY.g2gDdAAAAAFtAAAAAmlkYQduBgAAaOXPiwFiAAFRgA.qnk8RkvYmAYt2kmeO2-kckrT2TJ8vTH2NTc6-1EIioI"},
	}
)

func at(t time.Time) Option { return WithNow(func() time.Time { return t }) }

func vecSigner(t testing.TB, opts ...SignerOption) *Signer {
	t.Helper()
	s, err := NewSigner(vecSecret, vecSalt, append([]SignerOption{at(vecSignedAt)}, opts...)...)
	require.NoError(t, err)
	return s
}

func TestDerivedKey(t *testing.T) {
	s := vecSigner(t)
	assert.Equal(t, vecKey, hex.EncodeToString(s.key))
}

func TestVectorPayload(t *testing.T) {
	b, err := encodeTerm(Tuple{42, vecSignedAt.UnixMilli(), int64(86400)})
	require.NoError(t, err)
	want, _ := hex.DecodeString("836803612a6e06000068e5cf8b0162000151" + "80")
	assert.Equal(t, want, b)
}

func TestVectors(t *testing.T) {
	s := vecSigner(t)
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			tok, err := s.Sign(v.data)
			require.NoError(t, err)
			assert.Equal(t, v.token, tok, "Sign must match Phoenix byte for byte")

			got, err := s.Verify(v.token)
			require.NoError(t, err)
			assert.Equal(t, v.want, got)

			// With the real clock the vectors are long expired...
			_, err = s.Verify(v.token, WithNow(time.Now))
			assert.ErrorIs(t, err, ErrExpired)
			// ...unless the caller waives the age check, as with
			// max_age: :infinity.
			got, err = s.Verify(v.token, WithNow(time.Now), WithMaxAge(Infinity))
			require.NoError(t, err)
			assert.Equal(t, v.want, got)
		})
	}
}

func TestVerifyAs(t *testing.T) {
	s := vecSigner(t)
	id, err := VerifyAs[int](s, vectors[0].token)
	require.NoError(t, err)
	assert.Equal(t, 42, id)

	id64, err := VerifyAs[int64](s, vectors[0].token)
	require.NoError(t, err)
	assert.Equal(t, int64(42), id64)

	str, err := VerifyAs[string](s, vectors[1].token)
	require.NoError(t, err)
	assert.Equal(t, "user-42", str)

	m, err := VerifyAs[map[string]any](s, vectors[2].token)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"id": int64(7)}, m)

	_, err = VerifyAs[string](s, vectors[0].token)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = VerifyAs[int](s, vectors[1].token)
	assert.ErrorIs(t, err, ErrInvalid)

	_, err = VerifyAs[int](s, vectors[0].token, WithNow(time.Now))
	assert.ErrorIs(t, err, ErrExpired)
	_, err = VerifyAs[int](s, "")
	assert.ErrorIs(t, err, ErrMissing)

	nilTok, err := s.Sign(nil)
	require.NoError(t, err)
	v, err := VerifyAs[any](s, nilTok)
	require.NoError(t, err)
	assert.Nil(t, v)
	_, err = VerifyAs[string](s, nilTok)
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestVerifyErrors(t *testing.T) {
	s := vecSigner(t)
	good := vectors[0].token
	header, rest, _ := strings.Cut(good, ".")
	body, sig, _ := strings.Cut(rest, ".")
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	otherSalt, err := NewSigner(vecSecret, "other salt", at(vecSignedAt))
	require.NoError(t, err)
	otherSecret, err := NewSigner(strings.Repeat("0123456789", 7), vecSalt, at(vecSignedAt))
	require.NoError(t, err)
	ms := func(n int64) time.Time { return vecSignedAt.Add(time.Duration(n) * time.Millisecond) }

	tests := []struct {
		name   string
		signer *Signer
		tok    string
		opts   []Option
		want   error
	}{
		{"empty is missing", s, "", nil, ErrMissing},
		{"at signing time", s, good, nil, nil},
		{"exactly max age old", s, good, []Option{at(ms(86_400_000))}, nil},
		{"one ms past max age", s, good, []Option{at(ms(86_400_001))}, ErrExpired},
		{"signed in the future", s, good, []Option{at(ms(-1))}, ErrInvalid},
		{"future but infinite max age", s, good, []Option{at(ms(-1)), WithMaxAge(Infinity)}, nil},
		{"override shorter max age", s, good, []Option{at(ms(3_600_001)), WithMaxAge(time.Hour)}, ErrExpired},
		{"override longer max age", s, good, []Option{at(ms(86_400_001)), WithMaxAge(48 * time.Hour)}, nil},
		{"zero max age", s, good, []Option{WithMaxAge(0)}, ErrExpired},
		{"negative max age", s, good, []Option{WithMaxAge(-time.Second)}, ErrExpired},
		{"zero max age beats future", s, good, []Option{at(ms(-1)), WithMaxAge(0)}, ErrExpired},
		{"sub-millisecond max age, same ms", s, good, []Option{WithMaxAge(time.Microsecond)}, nil},
		{"sub-millisecond max age, next ms", s, good, []Option{at(ms(1)), WithMaxAge(time.Microsecond)}, ErrExpired},
		{"tampered MAC", s, header + "." + body + "." + flip(sig, 3), nil, ErrInvalid},
		{"truncated MAC", s, header + "." + body + "." + sig[:len(sig)-2], nil, ErrInvalid},
		{"tampered payload", s, header + "." + flip(body, 5) + "." + sig, nil, ErrInvalid},
		{"HS384 header on HS256 MAC", s, "SFMzODQ." + body + "." + sig, nil, ErrInvalid},
		{"wrong salt", otherSalt, good, nil, ErrInvalid},
		{"wrong secret", otherSecret, good, nil, ErrInvalid},
		{"garbage", s, "not a token", nil, ErrInvalid},
		{"one part", s, "SFMyNTY", nil, ErrInvalid},
		{"two parts", s, header + "." + body, nil, ErrInvalid},
		{"four parts", s, good + ".x", nil, ErrInvalid},
		{"empty parts", s, "SFMyNTY..", nil, ErrInvalid},
		{"unknown digest", s, "SFMyNTZ." + body + "." + sig, nil, ErrInvalid},
		{"JWT-style header", s, "eyJhbGciOiJIUzI1NiJ9." + body + "." + sig, nil, ErrInvalid},
		{"padded base64", s, header + "." + body + "=." + sig, nil, ErrInvalid},
		{"newline in payload", s, header + "." + body[:4] + "\n" + body[4:] + "." + sig, nil, ErrInvalid},
		{"standard base64 alphabet", s, header + "." + body + "." + strings.ReplaceAll(sig, "_", "/"), nil, ErrInvalid},
		{"encrypted token", s, "XCP.AAAA", nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.signer.Verify(tt.tok, tt.opts...)
			if tt.want == nil {
				require.NoError(t, err)
				assert.Equal(t, int64(42), got)
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, got)
			for _, other := range []error{ErrInvalid, ErrExpired, ErrMissing} {
				if other != tt.want {
					assert.NotErrorIs(t, err, other)
				}
			}
			assert.NotContains(t, err.Error(), body, "errors must not echo the token")
		})
	}
}

// TestPayloadShapes feeds Verify validly signed payloads of every shape
// Plug.Crypto has produced, and some it never would.
func TestPayloadShapes(t *testing.T) {
	s := vecSigner(t)
	signed := vecSignedAt.UnixMilli()
	day := int64(86_400_000)
	enc := func(v any) []byte {
		b, err := encodeTerm(v)
		require.NoError(t, err)
		return b
	}
	compressed := func(term []byte) []byte {
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		w.Write(term[1:])
		w.Close()
		out := []byte{etfVersion, tagCompressed}
		out = binary.BigEndian.AppendUint32(out, uint32(len(term)-1))
		return append(out, z.Bytes()...)
	}
	big1 := new(big.Int).Lsh(big.NewInt(1), 70)

	tests := []struct {
		name    string
		payload []byte
		nowMs   int64
		want    any
		wantErr error
	}{
		{"3-tuple", enc(Tuple{"a", signed, int64(60)}), signed + 60_000, "a", nil},
		{"3-tuple expired", enc(Tuple{"a", signed, int64(60)}), signed + 60_001, nil, ErrExpired},
		{"float max age", enc(Tuple{"a", signed, 1.5}), signed + 1500, "a", nil},
		{"float max age expired", enc(Tuple{"a", signed, 1.5}), signed + 1501, nil, ErrExpired},
		{"infinity", enc(Tuple{"a", signed, Atom("infinity")}), signed + 100*day*365, "a", nil},
		{"zero max age", enc(Tuple{"a", signed, int64(0)}), signed, nil, ErrExpired},
		{"huge max age", enc(Tuple{"a", signed, int64(math.MaxInt64)}), math.MaxInt64, "a", nil},
		{"bignum max age", enc(Tuple{"a", signed, big1}), math.MaxInt64, "a", nil},
		{"negative bignum max age", enc(Tuple{"a", signed, new(big.Int).Neg(big1)}), signed, nil, ErrExpired},
		{"bignum signed_at in the future", enc(Tuple{"a", big1, int64(60)}), signed, nil, ErrInvalid},
		{"bignum signed_at in the past", enc(Tuple{"a", new(big.Int).Neg(big1), int64(60)}), signed, nil, ErrExpired},
		{"min int64 signed_at", enc(Tuple{"a", int64(math.MinInt64), int64(60)}), math.MaxInt64, nil, ErrExpired},
		{"2-tuple", enc(Tuple{"a", signed}), signed + day, "a", nil},
		{"2-tuple expired", enc(Tuple{"a", signed}), signed + day + 1, nil, ErrExpired},
		{"map", enc(map[Atom]any{"data": "a", "signed": signed}), signed + day, "a", nil},
		{"map with extra keys", enc(map[any]any{Atom("data"): "a", Atom("signed"): signed, "x": 1}), signed, "a", nil},
		{"map expired", enc(map[Atom]any{"data": "a", "signed": signed}), signed + day + 1, nil, ErrExpired},
		{"compressed", compressed(enc(Tuple{strings.Repeat("ab", 100), signed, int64(60)})), signed, strings.Repeat("ab", 100), nil},
		{"map without signed", enc(map[Atom]any{"data": "a"}), signed, nil, ErrInvalid},
		{"1-tuple", enc(Tuple{"a"}), signed, nil, ErrInvalid},
		{"4-tuple", enc(Tuple{"a", signed, int64(1), int64(1)}), signed, nil, ErrInvalid},
		{"bare data", enc("a"), signed, nil, ErrInvalid},
		{"float signed_at", enc(Tuple{"a", 1.0, int64(60)}), signed, nil, ErrInvalid},
		{"atom max age", enc(Tuple{"a", signed, Atom("forever")}), signed, nil, ErrInvalid},
		{"string max age", enc(Tuple{"a", signed, "60"}), signed, nil, ErrInvalid},
		{"trailing byte", append(enc(Tuple{"a", signed, int64(60)}), 0), signed, nil, ErrInvalid},
		{"empty", nil, signed, nil, ErrInvalid},
		{"local encoding", []byte{etfVersion, 121, 0, 0}, signed, nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []Digest{HS256, HS384, HS512} {
				tok := s.seal(d, tt.payload)
				got, err := s.Verify(tok, at(time.UnixMilli(tt.nowMs)))
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					continue
				}
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

func TestDigests(t *testing.T) {
	verifier := vecSigner(t) // signs HS256, verifies everything
	for _, tc := range []struct {
		d      Digest
		header string
		macLen int
	}{{HS256, "SFMyNTY", 32}, {HS384, "SFMzODQ", 48}, {HS512, "SFM1MTI", 64}} {
		t.Run(tc.d.String(), func(t *testing.T) {
			// Per call...
			tok, err := verifier.Sign("x", WithDigest(tc.d))
			require.NoError(t, err)
			// ...and per Signer.
			tok2, err := vecSigner(t, WithDigest(tc.d)).Sign("x")
			require.NoError(t, err)
			assert.Equal(t, tok, tok2)

			parts := strings.Split(tok, ".")
			require.Len(t, parts, 3)
			assert.Equal(t, tc.header, parts[0])
			mac, err := base64.RawURLEncoding.DecodeString(parts[2])
			require.NoError(t, err)
			assert.Len(t, mac, tc.macLen)

			got, err := verifier.Verify(tok)
			require.NoError(t, err)
			assert.Equal(t, "x", got)
		})
	}
	assert.Equal(t, "Digest(9)", Digest(9).String())
}

func TestSignMaxAge(t *testing.T) {
	s := vecSigner(t)
	for _, tc := range []struct {
		maxAge time.Duration
		want   any
	}{
		{time.Hour, int64(3600)},
		{0, int64(0)},
		{-time.Second, int64(-1)},
		{1500 * time.Millisecond, 1.5},
		{Infinity, Atom("infinity")},
	} {
		tok, err := s.Sign("x", WithMaxAge(tc.maxAge))
		require.NoError(t, err)
		payload, err := s.open(tok)
		require.NoError(t, err)
		term, err := decodeTerm(payload)
		require.NoError(t, err)
		assert.Equal(t, Tuple{"x", vecSignedAt.UnixMilli(), tc.want}, term)
	}

	// The Signer's max age applies to both ends.
	short := vecSigner(t, WithMaxAge(time.Minute))
	tok, err := short.Sign("x")
	require.NoError(t, err)
	_, err = s.Verify(tok, at(vecSignedAt.Add(time.Minute+time.Millisecond)))
	assert.ErrorIs(t, err, ErrExpired)
	_, err = short.Verify(vectors[0].token, at(vecSignedAt.Add(time.Minute+time.Millisecond)))
	assert.ErrorIs(t, err, ErrExpired)
}

func TestNewSignerErrors(t *testing.T) {
	_, err := NewSigner(strings.Repeat("x", 19), "salt")
	assert.Error(t, err)
	_, err = NewSigner(strings.Repeat("x", 20), "salt")
	assert.NoError(t, err)
	for _, opt := range []SignerOption{
		WithDigest(0), WithKeyDigest(7), WithKeyIterations(0), WithKeyLength(0), WithNow(nil),
	} {
		_, err = NewSigner(vecSecret, vecSalt, opt)
		assert.Error(t, err)
	}
	_, err = vecSigner(t).Sign("x", WithDigest(Digest(-1)))
	assert.Error(t, err)
	_, err = vecSigner(t).Verify(vectors[0].token, WithNow(nil))
	assert.Error(t, err)
}

// TestKeyOptions checks that the key options reach PBKDF2: tokens from a
// differently derived key must not verify.
func TestKeyOptions(t *testing.T) {
	base := vecSigner(t)
	for _, opts := range [][]SignerOption{
		{WithKeyIterations(1001)}, {WithKeyLength(64)}, {WithKeyDigest(HS512)},
	} {
		s := vecSigner(t, opts...)
		assert.NotEqual(t, base.key, s.key)
		tok, err := s.Sign(42)
		require.NoError(t, err)
		_, err = base.Verify(tok)
		assert.ErrorIs(t, err, ErrInvalid)
		got, err := s.Verify(tok)
		require.NoError(t, err)
		assert.Equal(t, int64(42), got)
	}
	assert.Len(t, vecSigner(t, WithKeyLength(64)).key, 64)
	// A longer key of the same PRF extends the shorter one.
	assert.Equal(t, base.key, vecSigner(t, WithKeyLength(64)).key[:32])
}

func TestSignErrors(t *testing.T) {
	s := vecSigner(t)
	cyclic := []any{nil}
	cyclic[0] = cyclic
	for _, v := range []any{
		make(chan int), func() {}, struct{}{}, math.NaN(), math.Inf(1), float32(math.Inf(-1)),
		(*big.Int)(nil), (*int)(nil), Atom("\xff"), Atom(strings.Repeat("a", 256)),
		[]any{make(chan int)}, map[string]any{"a": func() {}}, cyclic,
		new(big.Int).Lsh(big.NewInt(1), 8*maxBigBytes+1),
	} {
		_, err := s.Sign(v)
		assert.ErrorIs(t, err, errUnsupported, "%T", v)
	}
}

func TestSignerStringHidesKey(t *testing.T) {
	s := vecSigner(t)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		assert.NotContains(t, out, vecKey)
		assert.NotContains(t, out, fmt.Sprint(s.key))
		assert.Contains(t, out, "HS256")
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(ErrInvalid, ErrExpired))
	assert.False(t, errors.Is(ErrExpired, ErrMissing))
	assert.False(t, errors.Is(ErrMissing, ErrInvalid))
}
