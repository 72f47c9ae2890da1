package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"mailroom.dev/platform/resname"
)

// The admin and the key that MAILROOM_BOOTSTRAP_TOKEN provides:
// users/admin/apiKeys/bootstrap.
const (
	BootstrapUser = "admin"
	BootstrapKey  = "bootstrap"
)

// Bootstrap makes sure that the user "admin" exists with the admin role and
// that token is the secret of its key "bootstrap". It is idempotent, and safe
// when replicas start together.
//
// The bootstrap key is one key whose secret follows the token: when the
// token changes, the key takes the new secret and the old token stops
// working at once, so that changing the variable is how an operator rotates
// a leaked token. A bootstrap key that was deleted comes back while the
// variable still holds its token. An unset token changes nothing: the key
// keeps working until it is deleted (DeleteApiKey
// users/admin/apiKeys/bootstrap).
func (s *Service) Bootstrap(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	if err := s.ensureAdmin(ctx); err != nil {
		return err
	}
	name := resname.APIKey(BootstrapUser, BootstrapKey)
	want := APIKey{
		UserID:      BootstrapUser,
		ID:          BootstrapKey,
		DisplayName: "bootstrap (MAILROOM_BOOTSTRAP_TOKEN)",
		Prefix:      prefixOf(token),
		Hash:        hashSecret(token),
		CreateTime:  s.clock(),
	}
	for attempt := 0; attempt < 2; attempt++ {
		k, err := s.repo.GetAPIKey(ctx, BootstrapUser, BootstrapKey)
		switch {
		case errors.Is(err, ErrNotFound):
			err = s.repo.CreateAPIKey(ctx, want)
			if errors.Is(err, ErrExists) {
				continue // a replica created it meanwhile, or the token is another key's secret
			}
			if err != nil {
				return fmt.Errorf("bootstrap: create %s: %w", name, err)
			}
			s.logger.InfoContext(ctx, "bootstrap key created", "api_key", name)
			return nil
		case err != nil:
			return fmt.Errorf("bootstrap: get %s: %w", name, err)
		case bytes.Equal(k.Hash, want.Hash) && k.RevokeTime.IsZero():
			return nil
		}
		err = s.repo.ReplaceAPIKeySecret(ctx, want)
		if errors.Is(err, ErrExists) {
			return errTokenTaken
		}
		if err != nil {
			return fmt.Errorf("bootstrap: replace %s: %w", name, err)
		}
		s.logger.InfoContext(ctx, "bootstrap key set to the current MAILROOM_BOOTSTRAP_TOKEN; the previous token no longer works", "api_key", name)
		return nil
	}
	return errTokenTaken
}

var errTokenTaken = errors.New("bootstrap: MAILROOM_BOOTSTRAP_TOKEN is the secret of another API key; choose a new random value")

// ensureAdmin makes sure that the bootstrap user exists and is an admin.
func (s *Service) ensureAdmin(ctx context.Context) error {
	u, err := s.repo.GetUser(ctx, BootstrapUser)
	if errors.Is(err, ErrNotFound) {
		u = User{ID: BootstrapUser, DisplayName: "Administrator", Role: RoleAdmin, CreateTime: s.clock()}
		err = s.repo.CreateUser(ctx, u)
		if err == nil {
			s.logger.InfoContext(ctx, "bootstrap admin created", "user", resname.User(BootstrapUser))
			return nil
		}
		if !errors.Is(err, ErrExists) {
			return fmt.Errorf("bootstrap: create %s: %w", resname.User(BootstrapUser), err)
		}
		u, err = s.repo.GetUser(ctx, BootstrapUser) // a replica created it meanwhile
	}
	if err != nil {
		return fmt.Errorf("bootstrap: get %s: %w", resname.User(BootstrapUser), err)
	}
	if u.Role == RoleAdmin {
		return nil
	}
	u.Role = RoleAdmin
	if err := s.repo.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("bootstrap: make %s an admin: %w", resname.User(BootstrapUser), err)
	}
	s.logger.WarnContext(ctx, "bootstrap user was not an admin; it is now", "user", resname.User(BootstrapUser))
	return nil
}
