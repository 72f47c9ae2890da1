package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"mailroom.dev/platform/authn"
)

// MinServiceKeyLen is the shortest service key accepted: service keys are
// chosen by the operator (or made up by `mailroom dev`), and, hashed with a
// plain SHA-256 like API keys, must be random and long.
const MinServiceKeyLen = 32

// SetServiceKeys makes keys (service name → key, from
// MAILROOM_SERVICE_KEYS) the keys of those services: each key's hash is
// stored, replacing the service's earlier key, whose tokens stop being
// issued at once. Services not named keep their stored keys, so that a
// replica started without the variable changes nothing. It is idempotent.
func (s *Service) SetServiceKeys(ctx context.Context, keys map[string]string) error {
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := validateServiceKey(name, keys[name]); err != nil {
			return err
		}
	}
	for _, name := range names {
		secret := keys[name]
		want := ServiceKey{Service: name, Prefix: prefixOf(secret), Hash: hashSecret(secret), CreateTime: s.clock()}
		cur, err := s.repo.GetServiceKey(ctx, name)
		switch {
		case err == nil && bytes.Equal(cur.Hash, want.Hash):
			continue
		case err != nil && !errors.Is(err, ErrNotFound):
			return fmt.Errorf("service keys: get %s: %w", name, err)
		}
		if _, _, err := s.repo.APIKeyByHash(ctx, want.Hash); err == nil {
			return fmt.Errorf("service keys: the key of %s is also an API key; choose a new random value", name)
		}
		err = s.repo.PutServiceKey(ctx, want)
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("service keys: the key of %s is another service's key; give each service its own", name)
		}
		if err != nil {
			return fmt.Errorf("service keys: store %s: %w", name, err)
		}
		s.logger.InfoContext(ctx, "service key set from MAILROOM_SERVICE_KEYS", "service", name, "replaced", cur.Service != "")
	}
	return nil
}

func validateServiceKey(name, secret string) error {
	if !authn.KnownService(name) {
		return fmt.Errorf("service keys: %q is not a mailroom service (auth, ingest, classifier, store, gateway)", name)
	}
	if len(secret) < MinServiceKeyLen {
		return fmt.Errorf("service keys: the key of %s has %d characters; use at least %d random ones", name, len(secret), MinServiceKeyLen)
	}
	if len(secret) > maxSecretLen {
		return fmt.Errorf("service keys: the key of %s is longer than %d characters", name, maxSecretLen)
	}
	if authn.LooksLikeJWT(secret) {
		return fmt.Errorf("service keys: the key of %s has the shape of a JWT, which authn would not take for a key", name)
	}
	return nil
}
