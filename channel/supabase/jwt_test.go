package supabase_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel/supabase"
)

var secret = []byte("super-secret-jwt-token-with-at-least-32-characters")

func hs256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	require.NoError(t, err)
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWTHS256(t *testing.T) {
	v, err := supabase.NewJWTVerifier(supabase.JWTConfig{Secret: secret, Audience: "authenticated"})
	require.NoError(t, err)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	c, err := v.Verify(ctx, hs256(t, jwt.MapClaims{"sub": "u1", "role": "authenticated", "aud": "authenticated", "exp": exp}))
	require.NoError(t, err)
	assert.Equal(t, "u1", c.Subject())
	assert.Equal(t, "authenticated", c.Role())
	assert.Equal(t, exp, c.Expiry().Unix())

	_, err = v.Verify(ctx, hs256(t, jwt.MapClaims{"aud": "authenticated", "exp": time.Now().Add(-time.Minute).Unix()}))
	assert.ErrorIs(t, err, supabase.ErrTokenExpired)
	_, err = v.Verify(ctx, hs256(t, jwt.MapClaims{"aud": "anon", "exp": exp}))
	assert.ErrorIs(t, err, supabase.ErrInvalidToken, "wrong audience")
	other, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"aud": "authenticated"}).SignedString([]byte("another-secret-another-secret-another"))
	require.NoError(t, err)
	_, err = v.Verify(ctx, other)
	assert.ErrorIs(t, err, supabase.ErrInvalidToken, "bad signature")
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"aud": "authenticated"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	_, err = v.Verify(ctx, none)
	assert.ErrorIs(t, err, supabase.ErrInvalidToken, "alg none")
	_, err = v.Verify(ctx, "")
	assert.ErrorIs(t, err, supabase.ErrNoToken)
}

// Garbage never panics and is always ErrInvalidToken.
func TestJWTGarbage(t *testing.T) {
	v, err := supabase.NewJWTVerifier(supabase.JWTConfig{Secret: secret, JWKS: []byte(`{"keys":[]}`)})
	require.NoError(t, err)
	for _, tok := range []string{"x", "a.b.c", "..", "eyJhbGciOiJIUzI1NiJ9..", strings.Repeat("a", 20000),
		"eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.e30.c2ln", b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`[]`)) + ".x"} {
		_, err := v.Verify(context.Background(), tok)
		assert.ErrorIs(t, err, supabase.ErrInvalidToken, "%.40q", tok)
	}
}

func TestJWTRS256AndES256FromJWKS(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ek.X.FillBytes(make([]byte, 32))), "y": b64(ek.Y.FillBytes(make([]byte, 32)))},
	}})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(jwks)
	}))
	defer srv.Close()
	sign := func(m jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(m, jwt.MapClaims{"sub": kid, "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	for name, cfg := range map[string]supabase.JWTConfig{"static": {JWKS: jwks}, "url": {JWKSURL: srv.URL}} {
		t.Run(name, func(t *testing.T) {
			v, err := supabase.NewJWTVerifier(cfg)
			require.NoError(t, err)
			ctx := context.Background()
			c, err := v.Verify(ctx, sign(jwt.SigningMethodRS256, "r1", rk))
			require.NoError(t, err)
			assert.Equal(t, "r1", c.Subject())
			c, err = v.Verify(ctx, sign(jwt.SigningMethodES256, "e1", ek))
			require.NoError(t, err)
			assert.Equal(t, "e1", c.Subject())
			// The RSA key cannot verify an ES256 token claiming its kid,
			// an unknown kid fails, and HS256 is off without a secret.
			_, err = v.Verify(ctx, sign(jwt.SigningMethodES256, "r1", ek))
			assert.ErrorIs(t, err, supabase.ErrInvalidToken)
			_, err = v.Verify(ctx, sign(jwt.SigningMethodRS256, "nope", rk))
			assert.ErrorIs(t, err, supabase.ErrInvalidToken)
			_, err = v.Verify(ctx, hs256(t, jwt.MapClaims{}))
			assert.ErrorIs(t, err, supabase.ErrInvalidToken)
		})
	}
	assert.Equal(t, int32(1), fetches.Load(), "keys fetched once and cached; an unknown kid does not refetch within the minimum interval")
}

func TestJWTConfigErrors(t *testing.T) {
	_, err := supabase.NewJWTVerifier(supabase.JWTConfig{})
	assert.Error(t, err)
	_, err = supabase.NewJWTVerifier(supabase.JWTConfig{JWKS: []byte(`{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`)})
	assert.Error(t, err, "a 17-bit RSA key is refused")
	_, err = supabase.NewJWTVerifier(supabase.JWTConfig{JWKS: []byte(`nope`)})
	assert.Error(t, err)
}
