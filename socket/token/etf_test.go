package token

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"math"
	"math/big"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	s := vecSigner(t)
	huge := new(big.Int).Lsh(big.NewInt(1), 100)
	longList := make([]any, 300)
	wantLongList := make([]any, 300)
	for i := range longList {
		longList[i] = "x"
		wantLongList[i] = "x"
	}
	longTuple := make(Tuple, 300)
	for i := range longTuple {
		longTuple[i] = int64(i)
	}
	veryBig := new(big.Int).Lsh(big.NewInt(1), 8*300) // LARGE_BIG

	tests := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"true", true, true},
		{"false", false, false},
		{"atom", Atom("ok"), Atom("ok")},
		{"utf8 atom", Atom("été"), Atom("été")},
		{"long atom", Atom(strings.Repeat("é", 255)), Atom(strings.Repeat("é", 255))},
		{"atom named true", Atom("true"), true},
		{"zero", 0, int64(0)},
		{"small int", 255, int64(255)},
		{"int", 256, int64(256)},
		{"negative", -1, int64(-1)},
		{"max int32", math.MaxInt32, int64(math.MaxInt32)},
		{"min int32", math.MinInt32, int64(math.MinInt32)},
		{"past int32", int64(math.MaxInt32) + 1, int64(math.MaxInt32) + 1},
		{"below int32", int64(math.MinInt32) - 1, int64(math.MinInt32) - 1},
		{"max int64", int64(math.MaxInt64), int64(math.MaxInt64)},
		{"min int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"int8", int8(-5), int64(-5)},
		{"uint16", uint16(65535), int64(65535)},
		{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32)},
		{"uint", uint(7), int64(7)},
		{"max uint64", uint64(math.MaxUint64), new(big.Int).SetUint64(math.MaxUint64)},
		{"big", huge, huge},
		{"negative big", new(big.Int).Neg(huge), new(big.Int).Neg(huge)},
		{"big that fits", big.NewInt(-3), int64(-3)},
		{"large big", veryBig, veryBig},
		{"float", 1.5, 1.5},
		{"negative float", -2.25e-300, -2.25e-300},
		{"float32", float32(0.5), 0.5},
		{"empty string", "", ""},
		{"string", "héllo\x00", "héllo\x00"},
		{"bytes", []byte{0, 1, 255}, "\x00\x01\xff"},
		{"empty list", []any{}, []any{}},
		{"nil slice", []any(nil), []any{}},
		{"list", []any{int64(1000), "a", nil, []any{true}}, []any{int64(1000), "a", nil, []any{true}}},
		{"charlist", []any{1, 2, 255}, []any{int64(1), int64(2), int64(255)}},
		{"typed slice", []string{"a", "b"}, []any{"a", "b"}},
		{"typed int slice", []int{1, 300}, []any{int64(1), int64(300)}},
		{"array", [2]bool{true, false}, []any{true, false}},
		{"long list", longList, wantLongList},
		{"tuple", Tuple{Atom("ok"), 1}, Tuple{Atom("ok"), int64(1)}},
		{"empty tuple", Tuple{}, Tuple{}},
		{"large tuple", longTuple, longTuple},
		{"string map", map[string]any{"id": 7, "name": "x", "tags": []any{"a"}}, map[string]any{"id": int64(7), "name": "x", "tags": []any{"a"}}},
		{"empty map", map[string]any{}, map[string]any{}},
		{"nested map", map[string]any{"a": map[string]any{"b": map[string]any{}}}, map[string]any{"a": map[string]any{"b": map[string]any{}}}},
		{"atom map", map[Atom]any{"user_id": 1}, map[Atom]any{"user_id": int64(1)}},
		{"mixed map", map[any]any{int64(1): "a", Atom("b"): 2, "c": nil, true: 1.5}, map[any]any{int64(1): "a", Atom("b"): int64(2), "c": nil, true: 1.5}},
		{"typed map", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"int-keyed map", map[int]string{2: "b", 1: "a"}, map[any]any{int64(1): "a", int64(2): "b"}},
		{"named string", myString("s"), "s"},
		{"named int", myInt(9), int64(9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeTerm(tt.in)
			require.NoError(t, err)
			got, err := decodeTerm(b)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			// Encoding what we decoded is stable, so Verify then Sign
			// reproduces the payload.
			b2, err := encodeTerm(got)
			require.NoError(t, err)
			assert.Equal(t, b, b2)

			tok, err := s.Sign(tt.in)
			require.NoError(t, err)
			got, err = s.Verify(tok)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

type (
	myString string
	myInt    int
)

// TestEncodeMatchesErlang checks encodings against term_to_binary/1 output
// (OTP 26+).
func TestEncodeMatchesErlang(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want []byte
	}{
		// term_to_binary(1700000000000)
		{"timestamp", int64(1_700_000_000_000), []byte{131, 110, 6, 0, 0, 0x68, 0xe5, 0xcf, 0x8b, 0x01}},
		// term_to_binary(-1)
		{"negative", -1, []byte{131, 98, 255, 255, 255, 255}},
		// term_to_binary(-(1 bsl 40))
		{"negative big", -(int64(1) << 40), []byte{131, 110, 6, 1, 0, 0, 0, 0, 0, 1}},
		// term_to_binary(:infinity)
		{"atom", Atom("infinity"), append([]byte{131, 119, 8}, "infinity"...)},
		// term_to_binary(nil)
		{"nil", nil, []byte{131, 119, 3, 'n', 'i', 'l'}},
		// term_to_binary([])
		{"empty list", []any{}, []byte{131, 106}},
		// term_to_binary([1, 2])
		{"charlist", []int{1, 2}, []byte{131, 107, 0, 2, 1, 2}},
		// term_to_binary([1000])
		{"list", []any{1000}, []byte{131, 108, 0, 0, 0, 1, 98, 0, 0, 3, 232, 106}},
		// term_to_binary(1.5)
		{"float", 1.5, []byte{131, 70, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}},
		// term_to_binary({})
		{"tuple", Tuple{}, []byte{131, 104, 0}},
		// term_to_binary(%{"b" => 1, "aa" => 2, "a" => 3}): binaries in byte order.
		{"map order", map[string]any{"b": 1, "aa": 2, "a": 3}, []byte{
			131, 116, 0, 0, 0, 3,
			109, 0, 0, 0, 1, 'a', 97, 3,
			109, 0, 0, 0, 2, 'a', 'a', 97, 2,
			109, 0, 0, 0, 1, 'b', 97, 1,
		}},
		// term_to_binary(%{"a" => 1, :b => 2, 3 => 4}): numbers < atoms < binaries.
		{"mixed map order", map[any]any{"a": 1, Atom("b"): 2, 3: 4}, []byte{
			131, 116, 0, 0, 0, 3,
			97, 3, 97, 4,
			119, 1, 'b', 97, 2,
			109, 0, 0, 0, 1, 'a', 97, 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeTerm(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func zlibTerm(t testing.TB, size uint32, body []byte) []byte {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	_, err := w.Write(body)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	out := binary.BigEndian.AppendUint32([]byte{131, 80}, size)
	return append(out, z.Bytes()...)
}

func TestDecode(t *testing.T) {
	u32 := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	deep := func(n int) []byte {
		b := []byte{131}
		for range n {
			b = append(b, 108, 0, 0, 0, 1)
		}
		b = append(b, 106)
		for range n {
			b = append(b, 106)
		}
		return b
	}
	floatExt := func(s string) []byte {
		b := make([]byte, 31)
		copy(b, s)
		return append([]byte{131, 99}, b...)
	}
	nested := []any{}
	for range maxDepth - 1 {
		nested = []any{nested}
	}
	hello := []byte{109, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}

	ok := []struct {
		name string
		in   []byte
		want any
	}{
		{"ATOM latin-1", []byte{131, 100, 0, 4, 'c', 'a', 'f', 0xe9}, Atom("café")},
		{"SMALL_ATOM latin-1", []byte{131, 115, 2, 'o', 'k'}, Atom("ok")},
		{"ATOM_UTF8", []byte{131, 118, 0, 2, 'o', 'k'}, Atom("ok")},
		{"ATOM true", []byte{131, 100, 0, 4, 't', 'r', 'u', 'e'}, true},
		{"SMALL_ATOM_UTF8 false", []byte{131, 119, 5, 'f', 'a', 'l', 's', 'e'}, false},
		{"STRING", []byte{131, 107, 0, 3, 'a', 'b', 'c'}, []any{int64('a'), int64('b'), int64('c')}},
		{"empty STRING", []byte{131, 107, 0, 0}, []any{}},
		{"NIL", []byte{131, 106}, []any{}},
		{"LARGE_TUPLE", []byte{131, 105, 0, 0, 0, 1, 97, 1}, Tuple{int64(1)}},
		{"LARGE_BIG small value", []byte{131, 111, 0, 0, 0, 2, 1, 0, 1}, int64(-256)},
		{"SMALL_BIG non-normal", []byte{131, 110, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, int64(1)},
		{"SMALL_BIG negative zero", []byte{131, 110, 1, 1, 0}, int64(0)},
		{"SMALL_BIG min int64", []byte{131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0x80}, int64(math.MinInt64)},
		{"INTEGER negative", []byte{131, 98, 0x80, 0, 0, 0}, int64(math.MinInt32)},
		{"FLOAT_EXT", floatExt("1.50000000000000000000e+00"), 1.5},
		{"compressed", zlibTerm(t, 10, hello), "hello"},
		{"list of maps", []byte{131, 108, 0, 0, 0, 1, 116, 0, 0, 0, 0, 106}, []any{map[string]any{}}},
		{"max depth", deep(maxDepth - 1), nested},
		{"map nil key", []byte{131, 116, 0, 0, 0, 1, 119, 3, 'n', 'i', 'l', 97, 1}, map[any]any{nil: int64(1)}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeTerm(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version only", []byte{131}},
		{"wrong version", []byte{130, 97, 1}},
		{"trailing", []byte{131, 97, 1, 0}},
		{"truncated INTEGER", []byte{131, 98, 0, 0}},
		{"truncated binary", []byte{131, 109, 0, 0, 0, 5, 'a'}},
		{"huge binary length", cat([]byte{131, 109}, u32(math.MaxUint32))},
		{"huge list length", cat([]byte{131, 108}, u32(math.MaxUint32), []byte{106})},
		{"huge map length", cat([]byte{131, 116}, u32(math.MaxUint32))},
		{"huge tuple length", cat([]byte{131, 105}, u32(math.MaxUint32))},
		{"map length counts pairs", []byte{131, 116, 0, 0, 0, 2, 97, 1, 97, 2}},
		{"huge bignum", cat([]byte{131, 111}, u32(math.MaxUint32), []byte{0})},
		{"bignum over limit", cat([]byte{131, 111}, u32(maxBigBytes+1), []byte{0}, make([]byte, maxBigBytes+1))},
		{"bad bignum sign", []byte{131, 110, 1, 2, 1}},
		{"improper list", []byte{131, 108, 0, 0, 0, 1, 97, 1, 97, 2}},
		{"list without tail", []byte{131, 108, 0, 0, 0, 1, 97, 1}},
		{"too deep", deep(maxDepth)},
		{"duplicate keys", []byte{131, 116, 0, 0, 0, 2, 109, 0, 0, 0, 0, 97, 1, 109, 0, 0, 0, 0, 97, 2}},
		{"duplicate atom keys", []byte{131, 116, 0, 0, 0, 2, 119, 1, 'a', 97, 1, 100, 0, 1, 'a', 97, 2}},
		{"list key", []byte{131, 116, 0, 0, 0, 1, 106, 97, 1}},
		{"tuple key", []byte{131, 116, 0, 0, 0, 1, 104, 0, 97, 1}},
		{"bignum key", []byte{131, 116, 0, 0, 0, 1, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 97, 1}},
		{"NaN", []byte{131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}},
		{"Inf", []byte{131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}},
		{"FLOAT_EXT garbage", floatExt("one point five")},
		{"FLOAT_EXT inf", floatExt("inf")},
		{"bad UTF-8 atom", []byte{131, 119, 1, 0xff}},
		{"PID", []byte{131, 88, 119, 1, 'a', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"reference", []byte{131, 90, 0, 1, 119, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1}},
		{"bitstring", []byte{131, 77, 0, 0, 0, 1, 3, 0xe0}},
		{"fun", []byte{131, 113, 119, 1, 'm', 119, 1, 'f', 97, 1}},
		{"local", []byte{131, 121, 0}},
		{"nested compressed", cat([]byte{131, 104, 1, 80}, u32(2), []byte{0})},
		{"compressed size 0", zlibTerm(t, 0, nil)},
		{"compressed size short", zlibTerm(t, 9, hello)},
		{"compressed size long", zlibTerm(t, 11, hello)},
		{"compressed over limit", zlibTerm(t, maxInflated+1, make([]byte, maxInflated+1))},
		{"compressed not zlib", cat([]byte{131, 80}, u32(10), []byte("not zlib at all"))},
		{"compressed truncated", zlibTerm(t, 10, hello)[:12]},
		{"compressed header only", []byte{131, 80, 0, 0}},
		{"compressed bad term", zlibTerm(t, 2, []byte{98, 1})},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeTerm(tt.in)
			require.ErrorIs(t, err, ErrInvalid)
			assert.Nil(t, got)
		})
	}
}

// TestDecodeAllocations checks that a length prefix alone cannot make the
// decoder allocate: memory follows the bytes actually present.
func TestDecodeAllocations(t *testing.T) {
	for name, in := range map[string][]byte{
		"list":   binary.BigEndian.AppendUint32([]byte{131, 108}, math.MaxUint32),
		"map":    binary.BigEndian.AppendUint32([]byte{131, 116}, math.MaxUint32),
		"binary": binary.BigEndian.AppendUint32([]byte{131, 109}, math.MaxUint32),
		// A compressed term that lies about its size is rejected after
		// inflating only what the stream holds.
		"compressed": zlibTerm(t, maxInflated, []byte{97, 1}),
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decodeTerm(in)
			runtime.ReadMemStats(&after)
			assert.ErrorIs(t, err, ErrInvalid)
			// zlib's window and tables account for most of this.
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(128<<10))
		})
	}
}
