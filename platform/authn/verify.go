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
	// Key is the id of the API key the token was exchanged for (a user
	// token), so that revoking the key revokes its tokens.
	Key string `json:"key,omitempty"`
	// IssuedMillis is the issue time in milliseconds ("iat" has whole
	// seconds), so that a revocation refuses exactly the tokens issued
	// before it.
	IssuedMillis int64 `json:"iat_ms,omitempty"`
}

// issued returns when the token was issued, as precisely as it says.
func (c *Claims) issued() time.Time {
	if c.IssuedMillis > 0 {
		return time.UnixMilli(c.IssuedMillis)
	}
	if c.IssuedAt == nil {
		return time.Time{}
	}
	return c.IssuedAt.Time
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

// Verifier verifies identity tokens against a cached JWKS. An unknown key
// id triggers a refresh (at most one every MinRefresh; concurrent requests
// wait for the one in flight), so that a rotated key is picked up without a
// restart. The cache is also refreshed every MaxAge, in the background:
// verification never waits for auth while the cached keys serve, and keeps
// working with them while auth is away.
type Verifier struct {
	keys KeysFunc
	// Now is the clock (default time.Now); tests move it.
	Now        func() time.Time
	MinRefresh time.Duration
	MaxAge     time.Duration
	// FetchTimeout bounds one JWKS fetch (default 5 s).
	FetchTimeout time.Duration
	// Revocations, when set, refuses the tokens of deleted users and
	// revoked API keys issued before their revocation.
	Revocations *Revocations

	mu        sync.Mutex
	cache     map[string]ed25519.PublicKey
	fetched   time.Time     // of the cache
	attempted time.Time     // last fetch started
	inflight  chan struct{} // closed when the fetch in flight ends
}

// NewVerifier returns a Verifier reading keys from keys.
func NewVerifier(keys KeysFunc) *Verifier {
	return &Verifier{keys: keys, Now: time.Now, MinRefresh: 5 * time.Second, MaxAge: 5 * time.Minute, FetchTimeout: 5 * time.Second}
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
		if v.Revocations.TokenRevoked(claims.Subject, claims.Key, claims.issued()) {
			return Caller{}, apierror.Unauthenticatedf("invalid identity token: revoked")
		}
		return Caller{User: claims.Subject, Admin: claims.Role == "admin"}, nil
	case "service":
		if !KnownService(claims.Subject) {
			return Caller{}, apierror.Unauthenticatedf("invalid identity token: unknown service")
		}
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

func (v *Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// key returns the public key kid names.
func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	waited := false
	for {
		v.mu.Lock()
		now := v.now()
		k, known := v.cache[kid]
		stale := now.Sub(v.fetched) > v.MaxAge
		mayFetch := now.Sub(v.attempted) >= v.MinRefresh
		switch {
		case known && !stale:
			v.mu.Unlock()
			return k, nil
		case known:
			// Stale but known: answer now, refresh behind the request.
			if mayFetch && v.inflight == nil {
				done := v.startFetch(now)
				go v.fetch(context.WithoutCancel(ctx), done)
			}
			v.mu.Unlock()
			return k, nil
		case v.inflight != nil:
			// A fetch is under way (maybe for this very kid): wait for it.
			wait := v.inflight
			v.mu.Unlock()
			select {
			case <-wait:
				waited = true
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case !mayFetch || waited:
			// No new fetch so soon, nor a second one after the fetch that
			// this request waited for: tokens of unknown kids must not
			// hammer auth.
			v.mu.Unlock()
			return nil, errors.New("unknown key id")
		}
		done := v.startFetch(now)
		v.mu.Unlock()
		err := v.fetch(ctx, done)
		v.mu.Lock()
		k, known = v.cache[kid]
		v.mu.Unlock()
		switch {
		case known:
			return k, nil
		case err != nil:
			return nil, fmt.Errorf("fetching keys: %w", err)
		}
		return nil, errors.New("unknown key id")
	}
}

// startFetch marks a fetch as started; v.mu is held.
func (v *Verifier) startFetch(now time.Time) chan struct{} {
	v.attempted = now
	done := make(chan struct{})
	v.inflight = done
	return done
}

// fetch reads the JWKS into the cache and closes done. On failure the cache
// stays as it was: tokens of known keys keep verifying while auth is away.
func (v *Verifier) fetch(ctx context.Context, done chan struct{}) error {
	timeout := v.FetchTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	jwks, err := v.keys(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	defer close(done)
	v.inflight = nil
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
