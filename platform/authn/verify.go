package authn

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
)

// Claims are the claims of an identity token.
type Claims struct {
	jwt.RegisteredClaims
	// Role is "admin" or "user" for a user token, "service" for a service identity.
	Role string `json:"role"`
}

// KeysFunc returns the current JWKS.
type KeysFunc func(ctx context.Context) ([]*authv1.Jwk, error)

// ClientKeys returns a KeysFunc that asks auth over gRPC.
func ClientKeys(c authv1.AuthServiceClient) KeysFunc {
	return func(ctx context.Context) ([]*authv1.Jwk, error) {
		resp, err := c.GetJwks(ctx, &authv1.GetJwksRequest{})
		if err != nil {
			return nil, err
		}
		return resp.GetKeys(), nil
	}
}

// Verifier verifies identity tokens against a cached JWKS. An unknown key id
// triggers a refresh (at most one every MinRefresh), so that a rotated key is
// picked up without a restart; the cache is also refreshed every MaxAge.
type Verifier struct {
	keys       KeysFunc
	now        func() time.Time
	MinRefresh time.Duration
	MaxAge     time.Duration

	mu      sync.Mutex
	cache   map[string]ed25519.PublicKey
	fetched time.Time
}

// NewVerifier returns a Verifier reading keys from keys.
func NewVerifier(keys KeysFunc) *Verifier {
	return &Verifier{keys: keys, now: time.Now, MinRefresh: 5 * time.Second, MaxAge: 5 * time.Minute}
}

// Verify checks token's signature, algorithm, issuer, audience and validity
// period, and returns its caller. Every failure is Unauthenticated with a
// message that names the cause and never the token.
func (v *Verifier) Verify(ctx context.Context, token string) (Caller, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token names no key id")
		}
		return v.key(ctx, kid)
	},
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return Caller{}, apierror.Unauthenticatedf("invalid identity token: %s", reason(err))
	}
	switch claims.Role {
	case "admin", "user":
		if claims.Subject == "" {
			return Caller{}, apierror.Unauthenticatedf("invalid identity token: no subject")
		}
		return Caller{User: claims.Subject, Admin: claims.Role == "admin"}, nil
	case "service":
		return Caller{Service: claims.Subject}, nil
	}
	return Caller{}, apierror.Unauthenticatedf("invalid identity token: unknown role")
}

// reason turns a jwt error into a short cause without token content.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable (" + unwrapLast(err) + ")"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	}
	return "rejected"
}

func unwrapLast(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs := j.Unwrap()
				if len(errs) > 0 {
					err = errs[len(errs)-1]
					continue
				}
			}
			return err.Error()
		}
		err = next
	}
}

func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	k, ok := v.cache[kid]
	stale := now.Sub(v.fetched) > v.MaxAge
	if ok && !stale {
		return k, nil
	}
	if !ok && !stale && now.Sub(v.fetched) < v.MinRefresh {
		return nil, errors.New("unknown key id")
	}
	if err := v.refresh(ctx); err != nil {
		if ok {
			return k, nil // keep verifying with what we had while auth is away
		}
		return nil, fmt.Errorf("fetching keys: %w", err)
	}
	if k, ok := v.cache[kid]; ok {
		return k, nil
	}
	return nil, errors.New("unknown key id")
}

func (v *Verifier) refresh(ctx context.Context) error {
	jwks, err := v.keys(ctx)
	if err != nil {
		return err
	}
	cache := make(map[string]ed25519.PublicKey, len(jwks))
	for _, j := range jwks {
		if j.GetKty() != "OKP" || j.GetCrv() != "Ed25519" {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(j.GetX())
		if err != nil || len(b) != ed25519.PublicKeySize {
			continue
		}
		cache[j.GetKid()] = ed25519.PublicKey(b)
	}
	v.cache = cache
	v.fetched = v.now()
	return nil
}
