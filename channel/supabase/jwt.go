package supabase

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of JWTConfig.
const (
	// DefaultJWKSRefresh is how long fetched JWKS keys are used before they
	// are fetched again; an unknown key id triggers a fetch sooner, at most
	// once per DefaultJWKSMinRefetch.
	DefaultJWKSRefresh    = 10 * time.Minute
	DefaultJWKSMinRefetch = 30 * time.Second
	// maxJWKSSize bounds a fetched key set.
	maxJWKSSize = 1 << 20
	// maxTokenSize bounds a token before it is parsed.
	maxTokenSize = 16 << 10
)

// JWTConfig configures a JWT verifier: HS256 with a shared secret (Supabase's
// legacy JWT secret), and RS256/ES256 with keys from a JWKS (Supabase's
// asymmetric signing keys, served at /auth/v1/.well-known/jwks.json). At
// least one of Secret, JWKS and JWKSURL is needed.
type JWTConfig struct {
	// Secret verifies HS256 tokens.
	Secret []byte
	// JWKS is a static JSON Web Key Set ({"keys": [...]}) for RS256/ES256.
	JWKS []byte
	// JWKSURL is fetched for keys (cached for DefaultJWKSRefresh).
	JWKSURL string
	// HTTPClient fetches JWKSURL (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Audience, if set, must be in the token's aud ("authenticated" for
	// Supabase user tokens).
	Audience string
	// Issuer, if set, must equal the token's iss.
	Issuer string
	// Leeway tolerates clock skew on exp, nbf and iat (default 0).
	Leeway time.Duration
}

// JWTVerifier verifies JWTs with github.com/golang-jwt/jwt/v5.
type JWTVerifier struct {
	cfg    JWTConfig
	parser *jwt.Parser

	mu      sync.Mutex
	keys    map[string]any // kid -> *rsa.PublicKey or *ecdsa.PublicKey; "" holds a key without kid
	fetched time.Time
	tried   time.Time
}

// NewJWTVerifier returns a verifier, or an error for an unusable config
// (no key at all, or a static JWKS that does not parse).
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if len(cfg.Secret) == 0 && len(cfg.JWKS) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("supabase: JWTConfig needs a Secret, a JWKS or a JWKSURL")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	var methods []string
	if len(cfg.Secret) > 0 {
		methods = append(methods, "HS256")
	}
	if len(cfg.JWKS) > 0 || cfg.JWKSURL != "" {
		methods = append(methods, "RS256", "ES256")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v := &JWTVerifier{cfg: cfg, parser: jwt.NewParser(opts...), keys: map[string]any{}}
	if len(cfg.JWKS) > 0 {
		keys, err := parseJWKS(cfg.JWKS)
		if err != nil {
			return nil, err
		}
		v.keys = keys
	}
	return v, nil
}

// Verify implements Verifier. Expired tokens fail with ErrTokenExpired, any
// other problem (signature, algorithm, audience, issuer, malformed) with
// ErrInvalidToken; both wrap the library's error.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > maxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrInvalidToken, len(token))
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: %w", ErrTokenExpired, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return Claims(claims), nil
}

// key finds the verification key for a token whose alg the parser already
// checked against the configured methods.
func (v *JWTVerifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if t.Method.Alg() == "HS256" {
		return v.cfg.Secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	k, err := v.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	switch t.Method.Alg() {
	case "RS256":
		if _, ok := k.(*rsa.PublicKey); ok {
			return k, nil
		}
	case "ES256":
		if _, ok := k.(*ecdsa.PublicKey); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("key %q does not match alg %s", kid, t.Method.Alg())
}

func (v *JWTVerifier) lookup(ctx context.Context, kid string) (any, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	k, ok := v.keys[kid]
	stale := v.cfg.JWKSURL != "" && now.Sub(v.fetched) > DefaultJWKSRefresh
	if (!ok || stale) && v.cfg.JWKSURL != "" && now.Sub(v.tried) > DefaultJWKSMinRefetch {
		v.tried = now
		// Fetching under the lock keeps concurrent joins from each
		// fetching; it is rare and bounded by the client's timeout.
		if keys, err := v.fetch(ctx); err == nil {
			v.keys, v.fetched = keys, now
			k, ok = keys[kid]
		} else if !ok {
			return nil, err
		}
	}
	if !ok {
		return nil, fmt.Errorf("no key with kid %q", kid)
	}
	return k, nil
}

func (v *JWTVerifier) fetch(ctx context.Context) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: %s answered %d", v.cfg.JWKSURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return parseJWKS(body)
}

// parseJWKS reads the RSA and P-256 EC public keys of a JWK Set; keys of
// other types or curves, and private parts, are ignored.
func parseJWKS(data []byte) (map[string]any, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Crv, N, E, X, Y, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys := make(map[string]any, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := b64int(k.N)
			e, err2 := b64int(k.E)
			if err1 != nil || err2 != nil || !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
				return nil, fmt.Errorf("jwks: RSA key %q is invalid or under 2048 bits", k.Kid)
			}
			keys[k.Kid] = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, err1 := b64int(k.X)
			y, err2 := b64int(k.Y)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("jwks: EC key %q is invalid", k.Kid)
			}
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
			if !pub.Curve.IsOnCurve(x, y) { //nolint:staticcheck // the point check is what we need here
				return nil, fmt.Errorf("jwks: EC key %q is not on P-256", k.Kid)
			}
			keys[k.Kid] = pub
		}
	}
	return keys, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}
