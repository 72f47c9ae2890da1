package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
	// User is the key's owner as it is now (the role is read at exchange).
	User User
}

// invalidKey is the one answer to a key that does not exchange, whatever
// the reason; it never repeats the key.
func invalidKey() error { return apierror.Unauthenticatedf("invalid API key") }

// Exchange trades an API key for an identity token naming its owner.
func (s *Service) Exchange(ctx context.Context, secret string) (Token, error) {
	if secret == "" {
		return Token{}, apierror.Invalid("api_key", "is required")
	}
	if len(secret) > maxSecretLen {
		return Token{}, invalidKey()
	}
	// The lookup is by hash, so a timing difference in the index reveals
	// something about the hash only, not about the key.
	k, u, err := s.repo.APIKeyByHash(ctx, hashSecret(secret))
	if errors.Is(err, ErrNotFound) {
		return Token{}, invalidKey()
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
	value, exp, err := s.sign(u, now)
	if err != nil {
		return Token{}, err
	}
	return Token{Value: value, ExpireTime: exp, User: u}, nil
}

// sign returns a token for u issued at now, and its expiry.
func (s *Service) sign(u User, now time.Time) (string, time.Time, error) {
	key := s.activeKey()
	// JWT times are whole seconds; the response's expire_time must match.
	iat := now.Truncate(time.Second)
	exp := iat.Add(s.ttl)
	claims := authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authn.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{authn.Audience},
			IssuedAt:  jwt.NewNumericDate(iat),
			NotBefore: jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			// A token id, so that a later issue can deny or trace a single token.
			ID: randomID(10),
		},
		Role: string(u.Role),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = key.ID
	v, err := t.SignedString(key.PrivateKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return v, exp, nil
}

// JWK is a public key in JSON Web Key form (RFC 8037).
type JWK struct {
	Kty, Crv, X, Kid, Alg, Use string
}

// JWKS returns the public keys that verify identity tokens: every
// unretired key, the signing one first.
func (s *Service) JWKS() []JWK {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]JWK, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, JWK{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.PrivateKey.Public().(ed25519.PublicKey)),
			Kid: k.ID,
			Alg: "EdDSA",
			Use: "sig",
		})
	}
	return out
}

func (s *Service) activeKey() SigningKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[0]
}

// loadKeys reads the signing keys, creating the first generation when there
// is none. Replicas starting together race on generation 1; the loser's
// insert fails on the unique generation and it loads the winner's key, so
// every replica signs with the same key.
//
// Keys are read once, at start. Rotation (a later issue) adds a generation
// and must make replicas reload: periodically, or on a JWKS miss.
func (s *Service) loadKeys(ctx context.Context) error {
	for attempt := 0; attempt < 2; attempt++ {
		keys, err := s.repo.SigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("load signing keys: %w", err)
		}
		if len(keys) > 0 {
			s.mu.Lock()
			s.keys = keys
			s.mu.Unlock()
			return nil
		}
		k, err := newSigningKey(1, s.clock())
		if err != nil {
			return err
		}
		err = s.repo.CreateSigningKey(ctx, k)
		if err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("create signing key: %w", err)
		}
		if err == nil {
			s.logger.InfoContext(ctx, "signing key created", "kid", k.ID, "generation", k.Generation)
		}
	}
	return errors.New("identity: no signing key after creating one")
}

// newSigningKey returns a fresh Ed25519 key of generation gen. Its id says
// its generation and adds randomness, so that ids never repeat across
// databases (a verifier caches keys by id).
func newSigningKey(gen int, now time.Time) (SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	return SigningKey{
		ID:         fmt.Sprintf("ed25519-g%d-%s", gen, randomID(5)),
		Generation: gen,
		PrivateKey: priv,
		CreateTime: now,
	}, nil
}
