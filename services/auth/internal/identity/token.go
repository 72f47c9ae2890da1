package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
)

// newSecret returns a new API key: "mr_" and 32 random bytes in lowercase
// base32 (52 characters, 256 bits).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return authn.APIKeyPrefix + lowerBase32.EncodeToString(b)
}

// hashSecret returns what is stored of an API key. A plain SHA-256 is right
// here, unlike for passwords: keys that auth creates carry 256 random bits,
// so there is no dictionary to try and a slow hash (bcrypt, argon2) would buy
// nothing but a costly lookup on every exchange. The hash is also the lookup
// key, so a stored hash cannot be salted. (The bootstrap token is chosen by
// an operator; it must be long and random for the same reason.)
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// prefixOf returns the part of secret shown in listings: its first 10
// characters, but never more than a quarter of it, so that a short bootstrap
// token is not half given away.
func prefixOf(secret string) string {
	r := []rune(secret)
	n := min(10, len(r)/4)
	return string(r[:n])
}

// maxSecretLen bounds what Exchange hashes; no key is that long.
const maxSecretLen = 4096

// touchEvery throttles the write of an API key's last use time.
const touchEvery = time.Minute

// Token is a signed identity token and what it says.
type Token struct {
	// Value is the JWT.
	Value      string
	ExpireTime time.Time
	// User is the key's owner as it is now (the role is read at exchange);
	// zero for a service.
	User User
	// Service is the service's name, for a service key; empty for a user.
	Service string
}

// The "role" claim of a service identity token.
const roleService = "service"

// invalidKey is the one answer to a key that does not exchange, whatever
// the reason; it never repeats the key.
func invalidKey() error { return apierror.Unauthenticatedf("invalid API key") }

// Exchange trades an API key, or a service key, for an identity token
// naming its owner.
func (s *Service) Exchange(ctx context.Context, secret string) (Token, error) {
	if secret == "" {
		return Token{}, apierror.Invalid("api_key", "is required")
	}
	if len(secret) > maxSecretLen {
		return Token{}, invalidKey()
	}
	// The lookup is by hash, so a timing difference in the index reveals
	// something about the hash only, not about the key.
	hash := hashSecret(secret)
	k, u, err := s.repo.APIKeyByHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return s.exchangeServiceKey(ctx, hash)
	}
	if err != nil {
		return Token{}, fmt.Errorf("find api key: %w", err)
	}
	now := s.clock()
	if now.Sub(k.LastUseTime) >= touchEvery {
		if err := s.repo.TouchAPIKey(ctx, k.UserID, k.ID, now, now.Add(-touchEvery)); err != nil {
			// The last use time is informational: the exchange goes on.
			s.logger.WarnContext(ctx, "recording api key use", "api_key", resname.APIKey(k.UserID, k.ID), "error", err.Error())
		}
	}
	value, exp, err := s.sign(u.ID, string(u.Role), k.ID, now)
	if err != nil {
		return Token{}, err
	}
	return Token{Value: value, ExpireTime: exp, User: u}, nil
}

// exchangeServiceKey trades the service key with hash for a service
// identity token.
func (s *Service) exchangeServiceKey(ctx context.Context, hash []byte) (Token, error) {
	k, err := s.repo.ServiceKeyByHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return Token{}, invalidKey()
	}
	if err != nil {
		return Token{}, fmt.Errorf("find service key: %w", err)
	}
	value, exp, err := s.sign(k.Service, roleService, "", s.clock())
	if err != nil {
		return Token{}, err
	}
	return Token{Value: value, ExpireTime: exp, Service: k.Service}, nil
}

// ServiceToken returns a service identity token of auth itself, minted
// locally, for auth's calls to the other services. A token is reused until
// a minute (or a quarter of its life) before it expires.
func (s *Service) ServiceToken(context.Context) (string, error) {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	now := s.clock()
	margin := min(time.Minute, s.ttl/4)
	if s.ownToken.Value != "" && now.Add(margin).Before(s.ownToken.ExpireTime) {
		return s.ownToken.Value, nil
	}
	value, exp, err := s.sign(authn.ServiceAuth, roleService, "", now)
	if err != nil {
		return "", err
	}
	s.ownToken = Token{Value: value, ExpireTime: exp, Service: authn.ServiceAuth}
	return value, nil
}

// sign returns a token for subject with role, exchanged for the API key
// called apiKey (empty for a service), issued at now, and its expiry.
func (s *Service) sign(subject, role, apiKey string, now time.Time) (string, time.Time, error) {
	key := s.signingKey(now)
	// JWT times are whole seconds; the response's expire_time must match.
	iat := now.Truncate(time.Second)
	exp := iat.Add(s.ttl)
	claims := authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authn.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{authn.Audience},
			IssuedAt:  jwt.NewNumericDate(iat),
			NotBefore: jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			// A token id, so that a later issue can deny or trace a single token.
			ID: randomID(10),
		},
		Role:         role,
		Key:          apiKey,
		IssuedMillis: now.UnixMilli(),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = key.ID
	v, err := t.SignedString(key.PrivateKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return v, exp, nil
}
