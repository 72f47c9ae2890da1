package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"mailroom.dev/services/auth/internal/vault"
)

// How signing keys rotate without downtime:
//
//   - A rotation (RotateEvery after the newest key was created) adds a
//     generation whose ActivateTime lies prepublish ahead. From its creation
//     it is in the JWKS; every replica loads it (Refresh, every ReloadEvery)
//     before it signs, so a verifier that meets its kid finds it at any
//     replica.
//   - At ActivateTime every replica signs with it; the previous key stays in
//     the JWKS until every token it signed has expired (ActivateTime of its
//     successor + token TTL + a minute of slack for clocks and leeway), then
//     it is retired and its private key erased.
//   - Replicas race on the unique generation: one creates the key, the
//     others load it.

// prepublish is how long a new key is published before it signs: two
// reloads, so that a replica that missed one still has it, and some slack.
func prepublish(reloadEvery time.Duration) time.Duration {
	return 2*reloadEvery + 10*time.Second
}

// retireSlack is added to the token TTL before a superseded key is retired:
// clock differences between replicas, and verifiers' leeway.
const retireSlack = time.Minute

// JWK is a public key in JSON Web Key form (RFC 8037).
type JWK struct {
	Kty, Crv, X, Kid, Alg, Use string
}

// JWKS returns the public keys that verify identity tokens: every
// unretired key, newest first (including one that is not signing yet).
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

// signingKey returns the key that signs at now: the newest active one.
func (s *Service) signingKey(now time.Time) SigningKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.keys {
		if !k.ActivateTime.After(now) {
			return k
		}
	}
	return s.keys[len(s.keys)-1] // none active yet: the oldest
}

// Refresh brings the signing keys up to date with the database: it creates
// the first key, or the next generation when the newest is due for
// rotation; encrypts keys stored in the clear once a key-encryption key is
// configured; retires keys whose last tokens have expired; and loads the
// rest. New calls it; the service calls it every ReloadEvery, so that every
// replica follows a rotation. On error the keys in use stay as they were.
func (s *Service) Refresh(ctx context.Context) error {
	now := s.clock()
	stored, err := s.repo.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	switch {
	case len(stored) == 0:
		// The first key signs at once: no token of another key exists.
		if err := s.createKey(ctx, 1, now, now); err != nil {
			return err
		}
	case s.rotateEvery > 0 && !now.Before(stored[0].CreateTime.Add(s.rotateEvery)):
		activate := now.Add(prepublish(s.reloadEvery))
		if err := s.createKey(ctx, stored[0].Generation+1, now, activate); err != nil {
			return err
		}
	default:
		return s.load(ctx, stored, now)
	}
	if stored, err = s.repo.SigningKeys(ctx); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	return s.load(ctx, stored, now)
}

// createKey stores a new key of generation gen; a replica that created it
// first wins, which is no error.
func (s *Service) createKey(ctx context.Context, gen int, now, activate time.Time) error {
	k, err := newSigningKey(gen, now, activate)
	if err != nil {
		return err
	}
	sk, err := s.sealKey(k)
	if err != nil {
		return err
	}
	err = s.repo.CreateSigningKey(ctx, sk)
	switch {
	case errors.Is(err, ErrExists):
		return nil
	case err != nil:
		return fmt.Errorf("create signing key: %w", err)
	}
	if gen == 1 {
		s.logger.InfoContext(ctx, "signing key created", "kid", k.ID, "generation", gen, "encrypted", sk.Seed.KeyID != "")
	} else {
		s.logger.InfoContext(ctx, "signing key rotation: new key published; it signs from its activate time",
			"kid", k.ID, "generation", gen, "activate_time", activate, "encrypted", sk.Seed.KeyID != "")
	}
	return nil
}

// load opens the stored keys, encrypts those in the clear when a
// key-encryption key is configured, retires superseded keys whose tokens
// have all expired, and keeps the rest for signing and the JWKS.
func (s *Service) load(ctx context.Context, stored []StoredSigningKey, now time.Time) error {
	keys := make([]SigningKey, 0, len(stored))
	for _, sk := range stored {
		k, err := s.openKey(sk)
		if err != nil {
			return err
		}
		if sk.Seed.KeyID == "" && s.vault != nil {
			if err := s.encryptKey(ctx, sk, k); err != nil {
				return err
			}
		}
		keys = append(keys, k)
	}
	// keys are newest first. Key i is superseded by key i-1 from the
	// latter's activation; once its tokens have expired, it goes.
	kept := []SigningKey{keys[0]}
	for i := 1; i < len(keys); i++ {
		successor := keys[i-1]
		if successor.ActivateTime.After(now) || now.Before(successor.ActivateTime.Add(s.ttl+retireSlack)) {
			kept = append(kept, keys[i])
			continue
		}
		err := s.repo.RetireSigningKey(ctx, keys[i].ID, now)
		switch {
		case errors.Is(err, ErrNotFound): // a replica retired it first
		case err != nil:
			return fmt.Errorf("retire signing key %s: %w", keys[i].ID, err)
		default:
			s.logger.InfoContext(ctx, "signing key retired: the tokens it signed have expired", "kid", keys[i].ID, "generation", keys[i].Generation)
		}
	}
	s.mu.Lock()
	s.keys = kept
	s.mu.Unlock()
	return nil
}

// encryptKey seals a key found in the clear under the active KEK.
func (s *Service) encryptKey(ctx context.Context, sk StoredSigningKey, k SigningKey) error {
	sealed, err := s.vault.Seal(vault.SigningKeyAAD(k.ID), k.PrivateKey.Seed())
	if err != nil {
		return err
	}
	err = s.repo.ResealSigningKey(ctx, k.ID, sk.Seed, sealed)
	switch {
	case errors.Is(err, ErrNotFound): // a replica did it first, or it was retired
		return nil
	case err != nil:
		return fmt.Errorf("encrypt signing key %s: %w", k.ID, err)
	}
	s.logger.InfoContext(ctx, "signing key encrypted under the vault's key-encryption key", "kid", k.ID, "kek_id", sealed.KeyID)
	return nil
}

// sealKey returns k as stored: its seed sealed under the active KEK, or in
// the clear when there is none.
func (s *Service) sealKey(k SigningKey) (StoredSigningKey, error) {
	sk := StoredSigningKey{ID: k.ID, Generation: k.Generation, CreateTime: k.CreateTime, ActivateTime: k.ActivateTime}
	if s.vault == nil {
		sk.Seed = vault.Sealed{Ciphertext: k.PrivateKey.Seed()}
		return sk, nil
	}
	sealed, err := s.vault.Seal(vault.SigningKeyAAD(k.ID), k.PrivateKey.Seed())
	if err != nil {
		return StoredSigningKey{}, err
	}
	sk.Seed = sealed
	return sk, nil
}

// openKey returns the private key of sk.
func (s *Service) openKey(sk StoredSigningKey) (SigningKey, error) {
	seed := sk.Seed.Ciphertext
	if sk.Seed.KeyID != "" {
		if s.vault == nil {
			return SigningKey{}, fmt.Errorf("signing key %s is encrypted under key-encryption key %q: set MAILROOM_VAULT_KEYS", sk.ID, sk.Seed.KeyID)
		}
		var err error
		seed, err = s.vault.Open(vault.SigningKeyAAD(sk.ID), sk.Seed)
		if errors.Is(err, vault.ErrUnknownKey) {
			return SigningKey{}, fmt.Errorf("signing key %s is encrypted under key-encryption key %q, which MAILROOM_VAULT_KEYS does not hold", sk.ID, sk.Seed.KeyID)
		}
		if err != nil {
			return SigningKey{}, fmt.Errorf("signing key %s does not decrypt with key-encryption key %q of MAILROOM_VAULT_KEYS (another key under the same id?): %w", sk.ID, sk.Seed.KeyID, err)
		}
	}
	if len(seed) != ed25519.SeedSize {
		return SigningKey{}, fmt.Errorf("signing key %s: stored seed has %d bytes, want %d", sk.ID, len(seed), ed25519.SeedSize)
	}
	return SigningKey{
		ID:           sk.ID,
		Generation:   sk.Generation,
		PrivateKey:   ed25519.NewKeyFromSeed(seed),
		CreateTime:   sk.CreateTime,
		ActivateTime: sk.ActivateTime,
	}, nil
}

// newSigningKey returns a fresh Ed25519 key of generation gen. Its id says
// its generation and adds randomness, so that ids never repeat across
// databases (a verifier caches keys by id).
func newSigningKey(gen int, now, activate time.Time) (SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	return SigningKey{
		ID:           fmt.Sprintf("ed25519-g%d-%s", gen, randomID(5)),
		Generation:   gen,
		PrivateKey:   priv,
		CreateTime:   now,
		ActivateTime: activate,
	}, nil
}
