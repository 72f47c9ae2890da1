package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/netguard"
	"mailroom.dev/platform/resname"
)

// MaxPerUser bounds a user's webhooks.
const MaxPerUser = 20

// Service is what the API does with webhooks: create (checking the URL
// against the SSRF guard), get, list, delete. Secrets go to the vault.
type Service struct {
	repo  Repository
	vault Vault
	guard *netguard.Guard
	now   func() time.Time
}

// NewService returns a service over repo, keeping secrets in vault, whose
// URLs pass guard.
func NewService(repo Repository, vault Vault, guard *netguard.Guard) *Service {
	return &Service{repo: repo, vault: vault, guard: guard, now: time.Now}
}

// Create registers w for user under id (random when empty), puts a new
// secret in the vault, and returns w with it: the one time it is shown.
func (s *Service) Create(ctx context.Context, user, id string, w Webhook) (Webhook, error) {
	if id == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = "wh-" + hex.EncodeToString(b)
	}
	if !resname.ValidID(id) {
		return Webhook{}, apierror.Invalid("webhook_id", "must be lowercase letters, digits and hyphens")
	}
	if err := s.checkURL(ctx, w.URL); err != nil {
		return Webhook{}, err
	}
	if err := checkDisplayName(w.DisplayName); err != nil {
		return Webhook{}, err
	}
	n, err := s.repo.CountWebhooks(ctx, user)
	if err != nil {
		return Webhook{}, err
	}
	if n >= MaxPerUser {
		return Webhook{}, apierror.Preconditionf("a user may have at most %d webhooks", MaxPerUser)
	}
	out := Webhook{
		User: user, ID: id, URL: w.URL, DisplayName: w.DisplayName,
		Secret: NewSecret(), State: StateActive, CreateTime: s.now().UTC().Truncate(time.Microsecond),
	}
	// The row first: an id already taken must not replace the secret of
	// the webhook that has it. Until the secret is in the vault, a delivery
	// to the new webhook fails and is retried.
	if err := s.repo.CreateWebhook(ctx, out); err != nil {
		if errors.Is(err, ErrExists) {
			return Webhook{}, apierror.AlreadyExistsf("webhook %s already exists", Name(user, id))
		}
		return Webhook{}, err
	}
	if err := s.vault.PutSecret(ctx, user, id, out.Secret); err != nil {
		if derr := s.repo.DeleteWebhook(ctx, user, id); derr != nil && !errors.Is(derr, ErrNotFound) {
			err = errors.Join(err, derr)
		}
		return Webhook{}, apierror.Unavailablef(err, "webhook %s could not be created now (its secret could not be stored); retry", Name(user, id))
	}
	return out, nil
}

// checkURL refuses a URL that CheckURL refuses or whose host the SSRF
// guard refuses or cannot resolve.
func (s *Service) checkURL(ctx context.Context, raw string) error {
	if why := CheckURL(raw, s.guard.Allowed); why != "" {
		return apierror.Invalid("webhook.url", "%s", why)
	}
	u, _ := url.Parse(raw)
	if _, err := s.guard.Resolve(ctx, u.Hostname()); err != nil {
		var refused *netguard.RefusedError
		if errors.As(err, &refused) {
			return apierror.Invalid("webhook.url", "%s", refused.Error())
		}
		return apierror.Invalid("webhook.url", "host %s does not resolve", u.Hostname())
	}
	return nil
}

func checkDisplayName(name string) error {
	if len(name) > 200 {
		return apierror.Invalid("webhook.display_name", "must be at most 200 characters")
	}
	return nil
}

// PausedReason is the disable reason of a webhook that its user set DISABLED.
const PausedReason = "disabled by its user"

// Update changes the fields of user's webhook id that u sets, after the
// same checks as Create's (the URL through the SSRF guard), and returns
// the webhook without its secret. Setting StateActive re-enables a
// disabled webhook: its disable reason and failure count are cleared, and
// it receives the classifications made from then on.
func (s *Service) Update(ctx context.Context, user, id string, u Update) (Webhook, error) {
	if u.URL != nil {
		if err := s.checkURL(ctx, *u.URL); err != nil {
			return Webhook{}, err
		}
	}
	if u.DisplayName != nil {
		if err := checkDisplayName(*u.DisplayName); err != nil {
			return Webhook{}, err
		}
	}
	if u.State != nil {
		switch *u.State {
		case StateActive:
		case StateDisabled:
			u.DisableReason = PausedReason
		default:
			return Webhook{}, apierror.Invalid("webhook.state", "must be WEBHOOK_STATE_ACTIVE or WEBHOOK_STATE_DISABLED")
		}
	}
	if u.State != nil && *u.State == StateActive {
		u.EnableTime = s.now().UTC().Truncate(time.Microsecond)
		// A webhook made before the secrets moved to the vault has none:
		// active again, every delivery would fail until it is disabled again.
		if _, err := s.repo.GetWebhook(ctx, user, id); errors.Is(err, ErrNotFound) {
			return Webhook{}, apierror.NotFoundf("webhook %s does not exist", Name(user, id))
		} else if err != nil {
			return Webhook{}, err
		}
		if _, err := s.vault.GetSecret(ctx, user, id); errors.Is(err, ErrNoSecret) {
			return Webhook{}, apierror.Preconditionf("webhook %s has no signing secret (it was made before the secrets moved to the vault): rotate its secret first (:rotateSecret), or create it again", Name(user, id))
		} else if err != nil {
			return Webhook{}, apierror.Unavailablef(err, "webhook %s could not be re-enabled now (its secret could not be read); retry", Name(user, id))
		}
	}
	w, err := s.repo.UpdateWebhook(ctx, user, id, u)
	if errors.Is(err, ErrNotFound) {
		return Webhook{}, apierror.NotFoundf("webhook %s does not exist", Name(user, id))
	}
	w.Secret = ""
	return w, err
}

// RotateSecret puts a new secret for user's webhook id in the vault and
// returns the webhook with it: the one time it is shown. A webhook made
// before the secrets moved to the vault gets its first one this way.
func (s *Service) RotateSecret(ctx context.Context, user, id string) (Webhook, error) {
	w, err := s.repo.GetWebhook(ctx, user, id)
	if errors.Is(err, ErrNotFound) {
		return Webhook{}, apierror.NotFoundf("webhook %s does not exist", Name(user, id))
	}
	if err != nil {
		return Webhook{}, err
	}
	w.Secret = NewSecret()
	if err := s.vault.PutSecret(ctx, user, id, w.Secret); err != nil {
		return Webhook{}, apierror.Unavailablef(err, "the secret of webhook %s could not be rotated now; retry (the old one still signs)", Name(user, id))
	}
	return w, nil
}

// Name returns users/{user}/webhooks/{id}.
func Name(user, id string) string { return resname.User(user) + "/webhooks/" + id }

// Get returns one of user's webhooks, without its secret.
func (s *Service) Get(ctx context.Context, user, id string) (Webhook, error) {
	w, err := s.repo.GetWebhook(ctx, user, id)
	if errors.Is(err, ErrNotFound) {
		return Webhook{}, apierror.NotFoundf("webhook %s does not exist", Name(user, id))
	}
	w.Secret = ""
	return w, err
}

// List returns a page of user's webhooks, without secrets.
func (s *Service) List(ctx context.Context, user string, size int, token string) ([]Webhook, string, error) {
	switch {
	case size < 0:
		return nil, "", apierror.Invalid("page_size", "must not be negative")
	case size == 0:
		size = 50
	case size > 1000:
		size = 1000
	}
	var after string
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(b), user+"/") {
			return nil, "", apierror.Invalid("page_token", "is not a page token of this list")
		}
		after = strings.TrimPrefix(string(b), user+"/")
	}
	ws, err := s.repo.ListWebhooks(ctx, user, after, size+1)
	if err != nil {
		return nil, "", err
	}
	var next string
	if len(ws) > size {
		ws = ws[:size]
		next = base64.RawURLEncoding.EncodeToString([]byte(user + "/" + ws[size-1].ID))
	}
	for i := range ws {
		ws[i].Secret = ""
	}
	return ws, next, nil
}

// Delete deletes one of user's webhooks and its secret. The row goes
// first, so that a failure leaves at worst a secret that nothing uses,
// which deleting again (NotFound) still removes.
func (s *Service) Delete(ctx context.Context, user, id string) error {
	err := s.repo.DeleteWebhook(ctx, user, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if verr := s.vault.DeleteSecret(ctx, user, id); verr != nil {
		return apierror.Unavailablef(verr, "the secret of webhook %s could not be deleted now; delete it again", Name(user, id))
	}
	if errors.Is(err, ErrNotFound) {
		return apierror.NotFoundf("webhook %s does not exist", Name(user, id))
	}
	return nil
}

// DeleteUser deletes every webhook of user and their secrets (the secrets
// first, so that a failure is finished by calling it again), and counts
// the webhooks.
func (s *Service) DeleteUser(ctx context.Context, user string) (int64, error) {
	after := ""
	for {
		ws, err := s.repo.ListWebhooks(ctx, user, after, 100)
		if err != nil {
			return 0, err
		}
		for _, w := range ws {
			if err := s.vault.DeleteSecret(ctx, user, w.ID); err != nil {
				return 0, fmt.Errorf("delete the secret of %s: %w", Name(user, w.ID), err)
			}
			after = w.ID
		}
		if len(ws) < 100 {
			break
		}
	}
	return s.repo.DeleteUserWebhooks(ctx, user)
}
