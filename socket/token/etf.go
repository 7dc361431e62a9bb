package token

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// An Atom is an Erlang/Elixir atom such as :infinity or :user_id. The atoms
// true, false and nil are not Atoms: they decode to the Go values true, false
// and nil, and those Go values encode back to them.
type Atom string

// A Tuple is an Erlang/Elixir tuple such as {:ok, 42}. It is a slice rather
// than an array because arity is only known at run time.
type Tuple []any

// External Term Format tags (erts/emulator/beam/external.h); only the ones a
// token can sensibly carry are decoded.
const (
	etfVersion       = 131
	tagNewFloat      = 70
	tagCompressed    = 80
	tagSmallInteger  = 97
	tagInteger       = 98
	tagFloat         = 99
	tagAtom          = 100
	tagSmallTuple    = 104
	tagLargeTuple    = 105
	tagNil           = 106
	tagString        = 107
	tagList          = 108
	tagBinary        = 109
	tagSmallBig      = 110
	tagLargeBig      = 111
	tagSmallAtom     = 115
	tagMap           = 116
	tagAtomUTF8      = 118
	tagSmallAtomUTF8 = 119
)

const (
	// maxDepth bounds recursion so that a crafted term cannot exhaust the
	// stack; real tokens nest a handful of levels.
	maxDepth = 64
	// maxInflated bounds what a compressed term may expand to. Tokens travel
	// in URLs and headers, so anything near this is already absurd.
	maxInflated = 1 << 20
	// maxBigBytes bounds bignum magnitudes: Erlang itself refuses integers
	// much beyond this, and big.Int arithmetic on huge values is slow.
	maxBigBytes = 1 << 10
	// maxAtomChars is the longest atom Erlang allows.
	maxAtomChars = 255
)

// errMalformed reports undecodable ETF. It wraps ErrInvalid because, once the
// MAC has matched, a payload we cannot read is still a token we cannot accept.
func errMalformed(format string, args ...any) error {
	return fmt.Errorf("%w: etf: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// decodeTerm decodes one complete ETF value (version byte included). It never
// panics, rejects trailing bytes, and allocates at most in proportion to the
// input (or maxInflated for compressed input).
func decodeTerm(b []byte) (any, error) {
	if len(b) < 2 || b[0] != etfVersion {
		return nil, errMalformed("missing version byte")
	}
	b = b[1:]
	if b[0] == tagCompressed {
		var err error
		if b, err = inflate(b[1:]); err != nil {
			return nil, err
		}
	}
	d := decoder{b: b}
	v, err := d.term()
	if err != nil {
		return nil, err
	}
	if len(d.b) != 0 {
		return nil, errMalformed("%d trailing bytes", len(d.b))
	}
	return v, nil
}

// inflate expands a compressed term: a 4-byte uncompressed size followed by
// a zlib stream that must produce exactly that many bytes.
func inflate(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, errMalformed("truncated compressed term")
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || size > maxInflated {
		return nil, errMalformed("compressed size %d out of range", size)
	}
	zr, err := zlib.NewReader(bytes.NewReader(b[4:]))
	if err != nil {
		return nil, errMalformed("zlib: %v", err)
	}
	defer zr.Close()
	// ReadAll grows with what the stream really yields, so a lying size
	// header cannot make us allocate up front.
	out, err := io.ReadAll(io.LimitReader(zr, int64(size)+1))
	if err != nil {
		return nil, errMalformed("zlib: %v", err)
	}
	if uint64(len(out)) != uint64(size) {
		return nil, errMalformed("compressed size mismatch")
	}
	return out, nil
}

type decoder struct {
	b     []byte
	depth int
}

func (d *decoder) take(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)) {
		return nil, errMalformed("truncated")
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p, nil
}

func (d *decoder) u8() (byte, error) {
	p, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (d *decoder) u16() (uint64, error) {
	p, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint16(p)), nil
}

func (d *decoder) u32() (uint64, error) {
	p, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint32(p)), nil
}

// count reads a length prefix for n elements each at least minSize bytes
// long, so that preallocating n never exceeds what the input can back.
func (d *decoder) count(n, minSize uint64) (int, error) {
	if n*minSize > uint64(len(d.b)) {
		return 0, errMalformed("length %d exceeds input", n)
	}
	return int(n), nil
}

func (d *decoder) term() (any, error) {
	if d.depth >= maxDepth {
		return nil, errMalformed("nested deeper than %d", maxDepth)
	}
	d.depth++
	defer func() { d.depth-- }()

	tag, err := d.u8()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagSmallInteger:
		v, err := d.u8()
		return int64(v), err
	case tagInteger:
		v, err := d.u32()
		return int64(int32(uint32(v))), err
	case tagSmallBig:
		n, err := d.u8()
		if err != nil {
			return nil, err
		}
		return d.bignum(uint64(n))
	case tagLargeBig:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		return d.bignum(n)
	case tagNewFloat:
		p, err := d.take(8)
		if err != nil {
			return nil, err
		}
		return finite(math.Float64frombits(binary.BigEndian.Uint64(p)))
	case tagFloat:
		// Pre-R12 floats: 31 bytes of printf("%.20e") padded with NULs.
		p, err := d.take(31)
		if err != nil {
			return nil, err
		}
		s, _, _ := strings.Cut(string(p), "\x00")
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, errMalformed("bad float")
		}
		return finite(f)
	case tagAtom, tagAtomUTF8:
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		return d.atom(n, tag == tagAtomUTF8)
	case tagSmallAtom, tagSmallAtomUTF8:
		n, err := d.u8()
		if err != nil {
			return nil, err
		}
		return d.atom(uint64(n), tag == tagSmallAtomUTF8)
	case tagBinary:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		p, err := d.take(n)
		return string(p), err
	case tagSmallTuple:
		n, err := d.u8()
		if err != nil {
			return nil, err
		}
		return d.elems(uint64(n), true)
	case tagLargeTuple:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		return d.elems(n, true)
	case tagNil:
		return []any{}, nil
	case tagString:
		// A charlist such as 'abc': a list of small integers packed as bytes.
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		p, err := d.take(n)
		if err != nil {
			return nil, err
		}
		l := make([]any, len(p))
		for i, c := range p {
			l[i] = int64(c)
		}
		return l, nil
	case tagList:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		l, err := d.elems(n, false)
		if err != nil {
			return nil, err
		}
		// Improper lists ([a | b]) have no Go counterpart.
		if t, err := d.u8(); err != nil || t != tagNil {
			return nil, errMalformed("improper list")
		}
		return l, nil
	case tagMap:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		return d.mapTerm(n)
	default:
		// PIDs, references, funs, bitstrings and the like: nothing a Go
		// server could use, and Plug refuses funs anyway.
		return nil, errMalformed("unsupported tag %d", tag)
	}
}

func finite(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errMalformed("non-finite float")
	}
	return f, nil
}

// bignum decodes a sign byte and n little-endian magnitude bytes into an
// int64 when it fits, a *big.Int otherwise.
func (d *decoder) bignum(n uint64) (any, error) {
	if n > maxBigBytes {
		return nil, errMalformed("bignum of %d bytes", n)
	}
	sign, err := d.u8()
	if err != nil {
		return nil, err
	}
	if sign > 1 {
		return nil, errMalformed("bad bignum sign")
	}
	p, err := d.take(n)
	if err != nil {
		return nil, err
	}
	be := make([]byte, len(p))
	for i, c := range p {
		be[len(p)-1-i] = c
	}
	z := new(big.Int).SetBytes(be)
	if sign == 1 {
		z.Neg(z)
	}
	if z.IsInt64() {
		return z.Int64(), nil
	}
	return z, nil
}

func (d *decoder) atom(n uint64, utf bool) (any, error) {
	p, err := d.take(n)
	if err != nil {
		return nil, err
	}
	var s string
	if utf {
		if !utf8.Valid(p) {
			return nil, errMalformed("atom is not UTF-8")
		}
		// Erlang's own limit; also keeps every decoded atom encodable.
		if utf8.RuneCount(p) > maxAtomChars {
			return nil, errMalformed("atom longer than %d characters", maxAtomChars)
		}
		s = string(p)
	} else {
		if len(p) > maxAtomChars {
			return nil, errMalformed("atom longer than %d characters", maxAtomChars)
		}
		// Latin-1: every byte is the code point of the same value.
		var sb strings.Builder
		for _, c := range p {
			sb.WriteRune(rune(c))
		}
		s = sb.String()
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "nil":
		return nil, nil
	}
	return Atom(s), nil
}

func (d *decoder) elems(n uint64, tuple bool) (any, error) {
	k, err := d.count(n, 1)
	if err != nil {
		return nil, err
	}
	l := make([]any, k)
	for i := range l {
		if l[i], err = d.term(); err != nil {
			return nil, err
		}
	}
	if tuple {
		return Tuple(l), nil
	}
	return l, nil
}

// mapTerm decodes n key/value pairs into the most specific Go map that holds
// them: map[string]any when every key is a binary (the JSON-like shape),
// map[Atom]any when every key is an atom (%{user_id: 1}), map[any]any for a
// mix of scalar keys. Keys that Go cannot compare, and duplicates, are invalid.
func (d *decoder) mapTerm(n uint64) (any, error) {
	k, err := d.count(n, 2)
	if err != nil {
		return nil, err
	}
	keys := make([]any, k)
	vals := make([]any, k)
	allString, allAtom := true, true
	for i := range keys {
		if keys[i], err = d.term(); err != nil {
			return nil, err
		}
		if vals[i], err = d.term(); err != nil {
			return nil, err
		}
		switch keys[i].(type) {
		case string:
			allAtom = false
		case Atom:
			allString = false
		case nil, bool, int64, float64:
			allString, allAtom = false, false
		default:
			return nil, errMalformed("unsupported map key")
		}
	}
	switch {
	case allString:
		m := make(map[string]any, k)
		for i, key := range keys {
			m[key.(string)] = vals[i]
		}
		return m, dupCheck(len(m), k)
	case allAtom:
		m := make(map[Atom]any, k)
		for i, key := range keys {
			m[key.(Atom)] = vals[i]
		}
		return m, dupCheck(len(m), k)
	default:
		m := make(map[any]any, k)
		for i, key := range keys {
			m[key] = vals[i]
		}
		return m, dupCheck(len(m), k)
	}
}

func dupCheck(got, want int) error {
	if got != want {
		return errMalformed("duplicate map key")
	}
	return nil
}

// errUnsupported is returned by Sign for values with no ETF counterpart.
var errUnsupported = errors.New("token: cannot encode")

// encodeTerm encodes v as Erlang's term_to_binary/1 would (OTP 26+: UTF-8
// atoms, NEW_FLOAT, sorted keys for small maps), so that Sign reproduces
// Phoenix tokens byte for byte.
func encodeTerm(v any) ([]byte, error) {
	e := encoder{buf: []byte{etfVersion}}
	if err := e.term(v); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct {
	buf   []byte
	depth int
}

func (e *encoder) u8(b byte) { e.buf = append(e.buf, b) }

func (e *encoder) u16(n int) { e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n)) }

func (e *encoder) u32(n int) { e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n)) }

func (e *encoder) term(v any) error {
	// Besides bounding output, the depth check stops self-referencing
	// slices and maps from recursing forever.
	if e.depth >= maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", errUnsupported, maxDepth)
	}
	e.depth++
	defer func() { e.depth-- }()

	switch v := v.(type) {
	case nil:
		e.atom("nil")
	case bool:
		e.atom(strconv.FormatBool(v))
	case Atom:
		if !utf8.ValidString(string(v)) || utf8.RuneCountInString(string(v)) > maxAtomChars {
			return fmt.Errorf("%w: atom must be valid UTF-8 of at most 255 characters", errUnsupported)
		}
		e.atom(string(v))
	case string:
		return e.binary(v)
	case []byte:
		return e.binary(string(v))
	case int:
		e.int64(int64(v))
	case int8:
		e.int64(int64(v))
	case int16:
		e.int64(int64(v))
	case int32:
		e.int64(int64(v))
	case int64:
		e.int64(v)
	case uint:
		e.uint64(uint64(v))
	case uint8:
		e.int64(int64(v))
	case uint16:
		e.int64(int64(v))
	case uint32:
		e.int64(int64(v))
	case uint64:
		e.uint64(v)
	case *big.Int:
		if v == nil {
			return fmt.Errorf("%w: nil *big.Int", errUnsupported)
		}
		return e.bigInt(v)
	case float32:
		return e.float(float64(v))
	case float64:
		return e.float(v)
	case Tuple:
		return e.tuple(v)
	case []any:
		return e.list(len(v), func(i int) any { return v[i] })
	case map[string]any:
		return e.mapping(len(v), func(yield func(any, any) bool) {
			for k, x := range v {
				if !yield(k, x) {
					return
				}
			}
		})
	case map[Atom]any:
		return e.mapping(len(v), func(yield func(any, any) bool) {
			for k, x := range v {
				if !yield(k, x) {
					return
				}
			}
		})
	case map[any]any:
		return e.mapping(len(v), func(yield func(any, any) bool) {
			for k, x := range v {
				if !yield(k, x) {
					return
				}
			}
		})
	default:
		return e.reflect(reflect.ValueOf(v))
	}
	return nil
}

// reflect covers named scalar types and other slice and map types
// ([]string, map[string]int...) so callers need not convert to []any first.
func (e *encoder) reflect(rv reflect.Value) error {
	switch rv.Kind() {
	case reflect.Bool:
		return e.term(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return e.term(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return e.term(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return e.term(rv.Float())
	case reflect.String:
		return e.term(rv.String())
	case reflect.Slice, reflect.Array:
		return e.list(rv.Len(), func(i int) any { return rv.Index(i).Interface() })
	case reflect.Map:
		return e.mapping(rv.Len(), func(yield func(any, any) bool) {
			it := rv.MapRange()
			for it.Next() {
				if !yield(it.Key().Interface(), it.Value().Interface()) {
					return
				}
			}
		})
	}
	return fmt.Errorf("%w: %s", errUnsupported, rv.Type())
}

func (e *encoder) atom(s string) {
	if len(s) < 256 {
		e.u8(tagSmallAtomUTF8)
		e.u8(byte(len(s)))
	} else {
		e.u8(tagAtomUTF8)
		e.u16(len(s))
	}
	e.buf = append(e.buf, s...)
}

func (e *encoder) binary(s string) error {
	if uint64(len(s)) > math.MaxUint32 {
		return fmt.Errorf("%w: binary too long", errUnsupported)
	}
	e.u8(tagBinary)
	e.u32(len(s))
	e.buf = append(e.buf, s...)
	return nil
}

func (e *encoder) int64(i int64) {
	switch {
	case 0 <= i && i <= math.MaxUint8:
		e.u8(tagSmallInteger)
		e.u8(byte(i))
	case math.MinInt32 <= i && i <= math.MaxInt32:
		e.u8(tagInteger)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(int32(i)))
	default:
		var mag uint64
		var sign byte
		if i < 0 {
			sign, mag = 1, uint64(-(i+1))+1 // no overflow at MinInt64
		} else {
			mag = uint64(i)
		}
		e.smallBig(sign, mag)
	}
}

func (e *encoder) uint64(u uint64) {
	if u <= math.MaxInt64 {
		e.int64(int64(u))
		return
	}
	e.smallBig(0, u)
}

func (e *encoder) smallBig(sign byte, mag uint64) {
	var le []byte
	for ; mag > 0; mag >>= 8 {
		le = append(le, byte(mag))
	}
	e.u8(tagSmallBig)
	e.u8(byte(len(le)))
	e.u8(sign)
	e.buf = append(e.buf, le...)
}

func (e *encoder) bigInt(z *big.Int) error {
	if z.IsInt64() {
		e.int64(z.Int64())
		return nil
	}
	be := new(big.Int).Abs(z).Bytes()
	if len(be) > maxBigBytes {
		return fmt.Errorf("%w: integer too large", errUnsupported)
	}
	if len(be) < 256 {
		e.u8(tagSmallBig)
		e.u8(byte(len(be)))
	} else {
		e.u8(tagLargeBig)
		e.u32(len(be))
	}
	if z.Sign() < 0 {
		e.u8(1)
	} else {
		e.u8(0)
	}
	for i := len(be) - 1; i >= 0; i-- {
		e.u8(be[i])
	}
	return nil
}

func (e *encoder) float(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%w: non-finite float", errUnsupported)
	}
	e.u8(tagNewFloat)
	e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(f))
	return nil
}

func (e *encoder) tuple(t Tuple) error {
	if len(t) < 256 {
		e.u8(tagSmallTuple)
		e.u8(byte(len(t)))
	} else {
		if uint64(len(t)) > math.MaxUint32 {
			return fmt.Errorf("%w: tuple too long", errUnsupported)
		}
		e.u8(tagLargeTuple)
		e.u32(len(t))
	}
	for _, x := range t {
		if err := e.term(x); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) list(n int, at func(int) any) error {
	if n == 0 {
		e.u8(tagNil)
		return nil
	}
	if uint64(n) > math.MaxUint32 {
		return fmt.Errorf("%w: list too long", errUnsupported)
	}
	// term_to_binary packs lists of bytes as STRING_EXT; do the same so the
	// payload matches Erlang's byte for byte.
	if n <= math.MaxUint16 {
		packed := make([]byte, 0, n)
		for i := range n {
			c, ok := byteValue(at(i))
			if !ok {
				break
			}
			packed = append(packed, c)
		}
		if len(packed) == n {
			e.u8(tagString)
			e.u16(n)
			e.buf = append(e.buf, packed...)
			return nil
		}
	}
	e.u8(tagList)
	e.u32(n)
	for i := range n {
		if err := e.term(at(i)); err != nil {
			return err
		}
	}
	e.u8(tagNil)
	return nil
}

// byteValue reports whether v is an integer in 0..255, which Erlang cannot
// tell apart from a character.
func byteValue(v any) (byte, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i := rv.Int(); 0 <= i && i <= math.MaxUint8 {
			return byte(i), true
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxUint8 {
			return byte(u), true
		}
	}
	return 0, false
}

func (e *encoder) mapping(n int, pairs func(yield func(any, any) bool)) error {
	if uint64(n) > math.MaxUint32 {
		return fmt.Errorf("%w: map too large", errUnsupported)
	}
	type pair struct{ k, v any }
	ps := make([]pair, 0, n)
	for k, v := range pairs {
		ps = append(ps, pair{k, v})
	}
	// Go map order is random; term order makes Sign deterministic and, for
	// maps of up to 32 keys, identical to Erlang's output.
	slices.SortStableFunc(ps, func(a, b pair) int { return compareKeys(a.k, b.k) })
	e.u8(tagMap)
	e.u32(len(ps))
	for _, p := range ps {
		if err := e.term(p.k); err != nil {
			return err
		}
		if err := e.term(p.v); err != nil {
			return err
		}
	}
	return nil
}

// compareKeys orders map keys the way Erlang orders terms for the common key
// kinds: numbers < atoms < binaries, each compared by value. Other kinds
// sort last, ordered by their encoding so the result is at least stable.
func compareKeys(a, b any) int {
	ca, cb := keyClass(a), keyClass(b)
	if ca != cb {
		return ca - cb
	}
	switch ca {
	case 0:
		fa, ia := number(a)
		fb, ib := number(b)
		if c := fa.Cmp(fb); c != 0 || ia == ib {
			return c
		}
		if ia { // integers before equal floats, as in Erlang's map key order
			return -1
		}
		return 1
	case 1, 2:
		return strings.Compare(keyText(a), keyText(b))
	}
	ea, _ := encodeTerm(a)
	eb, _ := encodeTerm(b)
	return bytes.Compare(ea, eb)
}

func keyClass(v any) int {
	switch v.(type) {
	case nil, bool, Atom:
		return 1
	case string, []byte:
		return 2
	case *big.Int, float32, float64:
		return 0
	}
	if _, ok := integer(v); ok {
		return 0
	}
	if reflect.ValueOf(v).Kind() == reflect.String {
		return 2
	}
	return 3
}

func keyText(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case bool:
		return strconv.FormatBool(v)
	case Atom:
		return string(v)
	case []byte:
		return string(v)
	case string:
		return v
	}
	return reflect.ValueOf(v).String()
}

// number returns v as an exact big.Float and whether it is an integer.
func number(v any) (*big.Float, bool) {
	switch v := v.(type) {
	case float32:
		return number(float64(v))
	case float64:
		// NaN cannot be encoded anyway; big.NewFloat would panic on it.
		if math.IsNaN(v) {
			return new(big.Float), false
		}
		return big.NewFloat(v), false
	case *big.Int:
		if v == nil {
			return new(big.Float), true
		}
		return new(big.Float).SetInt(v), true
	}
	z, _ := integer(v)
	return new(big.Float).SetInt(z), true
}

func integer(v any) (*big.Int, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return big.NewInt(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return new(big.Int).SetUint64(rv.Uint()), true
	}
	return nil, false
}
