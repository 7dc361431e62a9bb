package supabase

import (
	"context"
	"errors"
	"time"
)

// Claims are the claims of a verified token (a JWT's payload).
type Claims map[string]any

// Expiry returns the token's exp, or the zero time if it has none.
func (c Claims) Expiry() time.Time {
	switch v := c["exp"].(type) {
	case float64:
		return time.Unix(int64(v), 0)
	case int64:
		return time.Unix(v, 0)
	case int:
		return time.Unix(int64(v), 0)
	}
	return time.Time{}
}

// Subject returns the sub claim.
func (c Claims) Subject() string { s, _ := c["sub"].(string); return s }

// Role returns the role claim ("anon", "authenticated", "service_role" in
// Supabase's tokens).
func (c Claims) Role() string { s, _ := c["role"].(string); return s }

// Verifier checks a token and returns its claims. It must reject expired
// tokens with an error wrapping ErrTokenExpired.
type Verifier interface {
	Verify(ctx context.Context, token string) (Claims, error)
}

// VerifierFunc adapts a function to a Verifier.
type VerifierFunc func(ctx context.Context, token string) (Claims, error)

// Verify implements Verifier.
func (f VerifierFunc) Verify(ctx context.Context, token string) (Claims, error) { return f(ctx, token) }

// Errors a Verifier or the profile refuses a token with.
var (
	ErrInvalidToken = errors.New("supabase: invalid token")
	ErrTokenExpired = errors.New("supabase: token expired")
	ErrNoToken      = errors.New("supabase: no token")
)
