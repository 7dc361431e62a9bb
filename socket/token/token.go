package token

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
)

// Errors returned by Verify, matching the reasons Phoenix.Token.verify/4
// gives. They are wrapped with detail; test them with errors.Is. The detail
// never includes the token.
var (
	// ErrInvalid means the token is malformed, was not signed with this
	// Signer's secret and salt, claims to be signed in the future, or
	// carries data of the wrong type (VerifyAs).
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired means the token is authentic but older than its max age.
	ErrExpired = errors.New("token: expired")
	// ErrMissing means there was no token at all (the empty string), the Go
	// counterpart of Phoenix's nil token.
	ErrMissing = errors.New("token: missing")
)

// DefaultMaxAge is the max age Sign embeds when none is given, as in Phoenix.
// It is also the max age assumed for tokens from older Plug.Crypto and
// Phoenix releases, which embedded none.
const DefaultMaxAge = 86400 * time.Second

// Infinity, passed to WithMaxAge, makes tokens never expire: Sign embeds
// :infinity, and Verify skips the age check entirely.
const Infinity time.Duration = math.MaxInt64

// A Digest names the HMAC hash of a token: the first dot-separated part of
// the token is its name in unpadded base64url (HS256 is "SFMyNTY").
type Digest int

// The digests Plug.Crypto supports. Verify accepts all of them whatever the
// Signer signs with.
const (
	HS256 Digest = iota + 1 // HMAC-SHA256, Phoenix's default
	HS384                   // HMAC-SHA384
	HS512                   // HMAC-SHA512
)

// String returns the JOSE name of d, such as "HS256".
func (d Digest) String() string {
	switch d {
	case HS256:
		return "HS256"
	case HS384:
		return "HS384"
	case HS512:
		return "HS512"
	}
	return fmt.Sprintf("Digest(%d)", int(d))
}

func (d Digest) newHash() func() hash.Hash {
	switch d {
	case HS256:
		return sha256.New
	case HS384:
		return sha512.New384
	case HS512:
		return sha512.New
	}
	return nil
}

// header is the token's first part. Phoenix compares the literal text, so
// we do too rather than decoding it.
func (d Digest) header() string {
	return base64.RawURLEncoding.EncodeToString([]byte(d.String()))
}

func digestFromHeader(h string) (Digest, bool) {
	switch h {
	case "SFMyNTY":
		return HS256, true
	case "SFMzODQ":
		return HS384, true
	case "SFM1MTI":
		return HS512, true
	}
	return 0, false
}

// minSecretLen is the shortest secret_key_base Phoenix.Token accepts.
const minSecretLen = 20

// settings holds everything options can change. A Signer keeps its
// defaults; each call works on a copy.
type settings struct {
	digest    Digest
	maxAge    time.Duration
	hasMaxAge bool
	now       func() time.Time

	keyIterations int
	keyLength     int
	keyDigest     Digest
}

// A SignerOption configures NewSigner. Every Option is also a SignerOption;
// the key derivation options are SignerOptions only, since the key is
// derived once, when the Signer is made.
type SignerOption interface {
	applySigner(*settings)
}

// An Option configures a Signer when passed to NewSigner, or a single call
// of Sign or Verify, where it overrides the Signer's setting.
type Option interface {
	SignerOption
	applyCall(*settings)
}

type option func(*settings)

func (o option) applySigner(s *settings) { o(s) }
func (o option) applyCall(s *settings)   { o(s) }

type signerOption func(*settings)

func (o signerOption) applySigner(s *settings) { o(s) }

// WithMaxAge sets how long tokens stay valid. Sign embeds it in the token
// (in seconds; DefaultMaxAge if unset) and Verify, when it is set, uses it
// instead of the age embedded in the token, as Phoenix's :max_age option
// does. Use Infinity for tokens that never expire; zero or less makes every
// token expired.
func WithMaxAge(d time.Duration) Option {
	return option(func(s *settings) { s.maxAge, s.hasMaxAge = d, true })
}

// WithNow sets the clock used to stamp and to check tokens; the default is
// time.Now. It exists for tests and examples.
func WithNow(now func() time.Time) Option {
	return option(func(s *settings) { s.now = now })
}

// WithDigest sets the digest Sign uses (default HS256). It has no effect on
// Verify, which accepts every Digest, as Phoenix does.
func WithDigest(d Digest) Option {
	return option(func(s *settings) { s.digest = d })
}

// WithKeyIterations sets the PBKDF2 iteration count (default 1000). Use it
// only to match a Phoenix app that passes :key_iterations.
func WithKeyIterations(n int) SignerOption {
	return signerOption(func(s *settings) { s.keyIterations = n })
}

// WithKeyLength sets the derived key's length in bytes (default 32). Use it
// only to match a Phoenix app that passes :key_length.
func WithKeyLength(n int) SignerOption {
	return signerOption(func(s *settings) { s.keyLength = n })
}

// WithKeyDigest sets the hash behind PBKDF2 (default HS256, i.e. :sha256).
// Use it only to match a Phoenix app that passes :key_digest.
func WithKeyDigest(d Digest) SignerOption {
	return signerOption(func(s *settings) { s.keyDigest = d })
}

// A Signer signs and verifies Phoenix.Token tokens for one secret_key_base
// and salt. It derives its key once, in NewSigner, because PBKDF2 is slow by
// design; make one Signer per salt and reuse it. A Signer is immutable and
// safe for concurrent use.
type Signer struct {
	key []byte
	cfg settings
}

// NewSigner returns a Signer for the endpoint secret secretKeyBase (at least
// 20 bytes, as Phoenix requires; Phoenix apps usually have 64) and the salt
// the Phoenix app passes to Phoenix.Token.sign/verify, such as "user socket".
func NewSigner(secretKeyBase, salt string, opts ...SignerOption) (*Signer, error) {
	if len(secretKeyBase) < minSecretLen {
		return nil, fmt.Errorf("token: secret key base must be at least %d bytes", minSecretLen)
	}
	cfg := settings{
		digest:        HS256,
		now:           time.Now,
		keyIterations: 1000,
		keyLength:     32,
		keyDigest:     HS256,
	}
	for _, o := range opts {
		o.applySigner(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.keyIterations < 1 || cfg.keyLength < 1 {
		return nil, errors.New("token: key iterations and key length must be positive")
	}
	h := cfg.keyDigest.newHash()
	if h == nil {
		return nil, fmt.Errorf("token: unknown key digest %v", cfg.keyDigest)
	}
	key, err := pbkdf2.Key(h, secretKeyBase, []byte(salt), cfg.keyIterations, cfg.keyLength)
	if err != nil {
		return nil, fmt.Errorf("token: deriving key: %w", err)
	}
	return &Signer{key: key, cfg: cfg}, nil
}

func (c *settings) check() error {
	if c.digest.newHash() == nil {
		return fmt.Errorf("token: unknown digest %v", c.digest)
	}
	if c.now == nil {
		return errors.New("token: nil clock")
	}
	return nil
}

// String describes s without revealing its key, so that logging a Signer by
// accident leaks nothing.
func (s *Signer) String() string {
	return "token.Signer(" + s.cfg.digest.String() + ")"
}

// GoString is like String, for %#v.
func (s *Signer) GoString() string { return s.String() }

func (s *Signer) callSettings(opts []Option) (settings, error) {
	cfg := s.cfg
	for _, o := range opts {
		o.applyCall(&cfg)
	}
	return cfg, cfg.check()
}

// Sign returns a token carrying data, stamped with the current time, that a
// Phoenix app with the same secret and salt accepts with Phoenix.Token.verify
// (and so does Verify). See the package documentation for the Go values data
// may hold. The token is signed, not encrypted: anyone holding it can read data.
func (s *Signer) Sign(data any, opts ...Option) (string, error) {
	cfg, err := s.callSettings(opts)
	if err != nil {
		return "", err
	}
	var maxAge any = int64(DefaultMaxAge / time.Second)
	if cfg.hasMaxAge {
		switch d := cfg.maxAge; {
		case d == Infinity:
			maxAge = Atom("infinity")
		case d%time.Second == 0:
			maxAge = int64(d / time.Second)
		default:
			// Plug.Crypto accepts fractional seconds and truncates to
			// milliseconds when checking.
			maxAge = d.Seconds()
		}
	}
	payload, err := encodeTerm(Tuple{data, cfg.now().UnixMilli(), maxAge})
	if err != nil {
		return "", err
	}
	return s.seal(cfg.digest, payload), nil
}

// seal base64url-encodes payload and appends the MAC.
func (s *Signer) seal(d Digest, payload []byte) string {
	var b strings.Builder
	b.WriteString(d.header())
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(payload))
	mac := hmac.New(d.newHash(), s.key)
	mac.Write([]byte(b.String()))
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
	return b.String()
}

// Verify checks tok and returns the data it carries, decoded as described in
// the package documentation. It follows Plug.Crypto.verify/4: the MAC must
// match, then the token must not be older than its max age (the one given
// with WithMaxAge, else the one embedded in the token) nor signed in the
// future. Errors match ErrMissing (tok is empty), ErrExpired, or ErrInvalid
// (anything else) with errors.Is; only an unusable Option, such as
// WithNow(nil), gives an error matching none of them.
func (s *Signer) Verify(tok string, opts ...Option) (any, error) {
	if tok == "" {
		return nil, ErrMissing
	}
	cfg, err := s.callSettings(opts)
	if err != nil {
		return nil, err
	}
	payload, err := s.open(tok)
	if err != nil {
		return nil, err
	}
	data, signedAt, maxAge, err := unpack(payload)
	if err != nil {
		return nil, err
	}
	if cfg.hasMaxAge {
		maxAge = durationAge(cfg.maxAge)
	}
	if err := maxAge.check(signedAt, cfg.now().UnixMilli()); err != nil {
		return nil, err
	}
	return data, nil
}

// open checks the token's shape and MAC and returns its ETF payload.
func (s *Signer) open(tok string) ([]byte, error) {
	// Go's base64 decoder skips CR and LF; Elixir's does not. Checking the
	// alphabet first keeps us exactly as strict as Phoenix.
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, fmt.Errorf("%w: bad character", ErrInvalid)
		}
	}
	header, rest, ok1 := strings.Cut(tok, ".")
	body, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, fmt.Errorf("%w: want three dot-separated parts", ErrInvalid)
	}
	digest, ok := digestFromHeader(header)
	if !ok {
		return nil, fmt.Errorf("%w: unknown digest", ErrInvalid)
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrInvalid)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrInvalid)
	}
	mac := hmac.New(digest.newHash(), s.key)
	mac.Write([]byte(tok[:len(header)+1+len(body)]))
	if !hmac.Equal(mac.Sum(nil), got) {
		return nil, fmt.Errorf("%w: signature mismatch", ErrInvalid)
	}
	return payload, nil
}

// unpack decodes the signed payload: {data, signed_at_ms, max_age_s} now,
// {data, signed_at_ms} from older Plug.Crypto, and
// %{data: data, signed: signed_at_ms} from early Phoenix.
func unpack(payload []byte) (data any, signedAt int64, maxAge age, err error) {
	term, err := decodeTerm(payload)
	if err != nil {
		return nil, 0, age{}, err
	}
	var signed any
	maxAge = durationAge(DefaultMaxAge)
	switch t := term.(type) {
	case Tuple:
		switch len(t) {
		case 3:
			if maxAge, err = embeddedAge(t[2]); err != nil {
				return nil, 0, age{}, err
			}
			fallthrough
		case 2:
			data, signed = t[0], t[1]
		default:
			return nil, 0, age{}, fmt.Errorf("%w: payload is a %d-tuple", ErrInvalid, len(t))
		}
	case map[Atom]any, map[any]any:
		var ok1, ok2 bool
		if m, ok := t.(map[Atom]any); ok {
			data, ok1 = m["data"]
			signed, ok2 = m["signed"]
		} else {
			m := t.(map[any]any)
			data, ok1 = m[Atom("data")]
			signed, ok2 = m[Atom("signed")]
		}
		if !ok1 || !ok2 {
			return nil, 0, age{}, fmt.Errorf("%w: payload map lacks data or signed", ErrInvalid)
		}
	default:
		return nil, 0, age{}, fmt.Errorf("%w: unexpected payload shape", ErrInvalid)
	}
	switch s := signed.(type) {
	case int64:
		signedAt = s
	case *big.Int:
		// Out of int64 range, yet a valid Erlang integer: clamp, since only
		// its side of "now" matters.
		signedAt = math.MaxInt64
		if s.Sign() < 0 {
			signedAt = math.MinInt64
		}
	default:
		return nil, 0, age{}, fmt.Errorf("%w: signed_at is not an integer", ErrInvalid)
	}
	return data, signedAt, maxAge, nil
}

// age is a max age as Plug.Crypto's validate_age/2 sees it. It keeps
// "not positive" apart from ms because a positive age under 1 ms truncates
// to 0 ms yet is not expired outright.
type age struct {
	infinite    bool
	nonPositive bool
	ms          int64
}

func durationAge(d time.Duration) age {
	return age{infinite: d == Infinity, nonPositive: d <= 0, ms: d.Milliseconds()}
}

// embeddedAge reads the third tuple element: integer or float seconds, or
// :infinity.
func embeddedAge(v any) (age, error) {
	switch v := v.(type) {
	case Atom:
		if v == "infinity" {
			return age{infinite: true}, nil
		}
	case int64:
		a := age{nonPositive: v <= 0, ms: math.MaxInt64}
		if v < math.MaxInt64/1000 {
			a.ms = v * 1000
		}
		return a, nil
	case *big.Int:
		return age{nonPositive: v.Sign() <= 0, ms: math.MaxInt64}, nil
	case float64:
		a := age{nonPositive: v <= 0, ms: math.MaxInt64}
		if ms := math.Trunc(v * 1000); ms < math.MaxInt64 {
			a.ms = int64(ms)
		}
		return a, nil
	}
	return age{}, fmt.Errorf("%w: max_age is neither a number nor :infinity", ErrInvalid)
}

// check applies validate_age/2 in its order: infinity wins even over a
// future timestamp, a non-positive age always expires, then the clock.
func (a age) check(signedAt, now int64) error {
	switch {
	case a.infinite:
		return nil
	case a.nonPositive:
		return fmt.Errorf("%w: max age is not positive", ErrExpired)
	case signedAt > now:
		return fmt.Errorf("%w: signed in the future", ErrInvalid)
	}
	// now >= signedAt, so the difference fits in a uint64 even when the
	// int64 subtraction would overflow.
	if uint64(now)-uint64(signedAt) > uint64(a.ms) {
		return fmt.Errorf("%w: older than max age", ErrExpired)
	}
	return nil
}

// VerifyAs is Verify for callers that know what type of data they expect,
// such as a user ID: VerifyAs[int] or VerifyAs[string]. Data of another type
// is ErrInvalid. Integers are decoded as int64, but VerifyAs[int] converts
// them when they fit.
func VerifyAs[T any](s *Signer, tok string, opts ...Option) (T, error) {
	var out T
	v, err := s.Verify(tok, opts...)
	if err != nil {
		return out, err
	}
	if t, ok := v.(T); ok {
		return t, nil
	}
	if v == nil && reflect.TypeFor[T]().Kind() == reflect.Interface {
		return out, nil
	}
	if p, ok := any(&out).(*int); ok {
		if i, ok := v.(int64); ok && int64(int(i)) == i {
			*p = int(i)
			return out, nil
		}
	}
	return out, fmt.Errorf("%w: data is %T, want %v", ErrInvalid, v, reflect.TypeFor[T]())
}
