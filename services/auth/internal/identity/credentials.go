package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/auth/internal/vault"
)

// MaxCredentialSecret bounds a credential's secret; refresh tokens and
// passwords are far shorter.
const MaxCredentialSecret = 16 << 10

// webhookPrefix starts the MailboxID of a webhook's secret.
const webhookPrefix = "webhooks/"

// WebhookCredentialID returns the MailboxID under which the secret of
// webhook webhookID is stored.
func WebhookCredentialID(webhookID string) string { return webhookPrefix + webhookID }

// CredentialName returns users/{user}/mailboxes/{mailbox}/credential, or
// users/{user}/webhooks/{webhook}/secret for a webhook's secret.
func CredentialName(userID, mailboxID string) string {
	if id, ok := strings.CutPrefix(mailboxID, webhookPrefix); ok {
		return resname.User(userID) + "/webhooks/" + id + "/secret"
	}
	return resname.Mailbox(userID, mailboxID) + "/credential"
}

// noVault is the answer of the vault when no key-encryption key is
// configured: credentials are never stored unencrypted.
func noVault() error {
	return apierror.Preconditionf("the credential vault has no key-encryption key: the operator must set MAILROOM_VAULT_KEYS").WithReason("VAULT_NOT_CONFIGURED")
}

// validKind says whether k is a kind of credential that may be stored
// under mailboxID: a webhook's secret under a webhook, the others under a
// mailbox.
func validKind(k CredentialKind, mailboxID string) bool {
	if strings.HasPrefix(mailboxID, webhookPrefix) {
		return k == CredentialWebhookSecret
	}
	return k == CredentialGmailRefreshToken || k == CredentialIMAPPassword
}

// PutCredential encrypts c.Secret and stores it as the credential of
// c's mailbox (or webhook), replacing an earlier one. The result has no secret.
func (s *Service) PutCredential(ctx context.Context, c Credential) (Credential, error) {
	if !validKind(c.Kind, c.MailboxID) {
		if strings.HasPrefix(c.MailboxID, webhookPrefix) {
			return Credential{}, apierror.Invalid("credential.kind", "must be CREDENTIAL_KIND_WEBHOOK_SECRET for a webhook's secret")
		}
		return Credential{}, apierror.Invalid("credential.kind", "must be CREDENTIAL_KIND_GMAIL_REFRESH_TOKEN or CREDENTIAL_KIND_IMAP_PASSWORD")
	}
	if len(c.Secret) == 0 {
		return Credential{}, apierror.Invalid("credential.secret", "is required")
	}
	if len(c.Secret) > MaxCredentialSecret {
		return Credential{}, apierror.Invalid("credential.secret", "is longer than %d bytes", MaxCredentialSecret)
	}
	if s.vault == nil {
		return Credential{}, noVault()
	}
	if _, err := s.GetUser(ctx, c.UserID); err != nil {
		return Credential{}, err
	}
	sealed, err := s.vault.Seal(vault.CredentialAAD(c.UserID, c.MailboxID, string(c.Kind)), c.Secret)
	if err != nil {
		return Credential{}, err
	}
	now := s.clock()
	stored, err := s.repo.PutCredential(ctx, StoredCredential{
		UserID: c.UserID, MailboxID: c.MailboxID, Kind: c.Kind, Sealed: sealed, CreateTime: now, UpdateTime: now,
	})
	if err != nil {
		return Credential{}, fmt.Errorf("put credential: %w", err)
	}
	s.logger.InfoContext(ctx, "credential stored", "credential", CredentialName(c.UserID, c.MailboxID), "kind", string(c.Kind), "kek_id", sealed.KeyID)
	return credentialOf(stored), nil
}

// GetCredential returns a mailbox's (or webhook's) credential with its
// decrypted secret.
func (s *Service) GetCredential(ctx context.Context, userID, mailboxID string) (Credential, error) {
	if s.vault == nil {
		return Credential{}, noVault()
	}
	name := CredentialName(userID, mailboxID)
	stored, err := s.repo.GetCredential(ctx, userID, mailboxID)
	if errors.Is(err, ErrNotFound) {
		return Credential{}, apierror.NotFoundf("%s not found", name)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("get credential: %w", err)
	}
	secret, err := s.vault.Open(vault.CredentialAAD(userID, mailboxID, string(stored.Kind)), stored.Sealed)
	switch {
	case errors.Is(err, vault.ErrUnknownKey):
		return Credential{}, apierror.Preconditionf("%s is encrypted under key-encryption key %q, which MAILROOM_VAULT_KEYS does not hold", name, stored.Sealed.KeyID).WithReason("VAULT_KEY_MISSING")
	case err != nil:
		// Tampered with, or moved from another row: an Internal error, whose
		// detail goes to the log only.
		return Credential{}, fmt.Errorf("credential %s: %w", name, err)
	}
	c := credentialOf(stored)
	c.Secret = secret
	return c, nil
}

// DeleteCredential deletes a mailbox's (or webhook's) credential.
func (s *Service) DeleteCredential(ctx context.Context, userID, mailboxID string) error {
	name := CredentialName(userID, mailboxID)
	err := s.repo.DeleteCredential(ctx, userID, mailboxID)
	if errors.Is(err, ErrNotFound) {
		return apierror.NotFoundf("%s not found", name)
	}
	if err != nil {
		return fmt.Errorf("delete credential: %w", err)
	}
	s.logger.InfoContext(ctx, "credential deleted", "credential", name)
	return nil
}

func credentialOf(c StoredCredential) Credential {
	return Credential{
		UserID: c.UserID, MailboxID: c.MailboxID, Kind: c.Kind, KeyID: c.Sealed.KeyID,
		CreateTime: c.CreateTime, UpdateTime: c.UpdateTime,
	}
}

// rotateBatch is how many credentials RotateVault reads at a time.
const rotateBatch = 100

// RotateVault re-wraps the data key of every credential that is not under
// the active key-encryption key, and re-encrypts the signing keys likewise.
// It returns how many credentials moved and the active KEK's id. Once it
// has run, the older KEKs can be removed from MAILROOM_VAULT_KEYS. Secrets
// are not decrypted on the way; a credential replaced meanwhile is under
// the active key already.
func (s *Service) RotateVault(ctx context.Context) (int64, string, error) {
	if s.vault == nil {
		return 0, "", noVault()
	}
	active := s.vault.Active()
	var (
		moved        int64
		afterUser    string
		afterMailbox string
	)
	for {
		batch, err := s.repo.CredentialsNotUnder(ctx, active, afterUser, afterMailbox, rotateBatch)
		if err != nil {
			return moved, active, fmt.Errorf("rotate vault: list credentials: %w", err)
		}
		for _, c := range batch {
			afterUser, afterMailbox = c.UserID, c.MailboxID
			name := CredentialName(c.UserID, c.MailboxID)
			re, err := s.vault.Rewrap(vault.CredentialAAD(c.UserID, c.MailboxID, string(c.Kind)), c.Sealed)
			if errors.Is(err, vault.ErrUnknownKey) {
				return moved, active, apierror.Preconditionf("%s is encrypted under key-encryption key %q, which MAILROOM_VAULT_KEYS does not hold: add it back (after the active key) and rotate again", name, c.Sealed.KeyID).WithReason("VAULT_KEY_MISSING")
			}
			if err != nil {
				return moved, active, fmt.Errorf("rotate vault: %s: %w", name, err)
			}
			err = s.repo.ResealCredential(ctx, c.UserID, c.MailboxID, c.Sealed, re)
			switch {
			case errors.Is(err, ErrNotFound): // replaced or deleted meanwhile
			case err != nil:
				return moved, active, fmt.Errorf("rotate vault: %s: %w", name, err)
			default:
				moved++
			}
		}
		if len(batch) < rotateBatch {
			break
		}
	}
	signing, err := s.rotateSigningKeys(ctx)
	if err != nil {
		return moved, active, err
	}
	s.logger.InfoContext(ctx, "vault rotated", "kek_id", active, "credentials", moved, "signing_keys", signing)
	return moved, active, nil
}

// rotateSigningKeys re-wraps (or, if stored in the clear, encrypts) every
// unretired signing key under the active KEK.
func (s *Service) rotateSigningKeys(ctx context.Context) (int, error) {
	stored, err := s.repo.SigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("rotate vault: signing keys: %w", err)
	}
	n := 0
	for _, sk := range stored {
		if sk.Seed.KeyID == s.vault.Active() {
			continue
		}
		aad := vault.SigningKeyAAD(sk.ID)
		var sealed vault.Sealed
		if sk.Seed.KeyID == "" {
			sealed, err = s.vault.Seal(aad, sk.Seed.Ciphertext)
		} else {
			sealed, err = s.vault.Rewrap(aad, sk.Seed)
		}
		if err != nil {
			return n, fmt.Errorf("rotate vault: signing key %s: %w", sk.ID, err)
		}
		err := s.repo.ResealSigningKey(ctx, sk.ID, sk.Seed, sealed)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return n, fmt.Errorf("rotate vault: signing key %s: %w", sk.ID, err)
		default:
			n++
		}
	}
	return n, nil
}

// VaultStatus counts the credentials under each key-encryption key, and
// logs a warning for those under a key that is not configured: they cannot
// be read until it is back.
func (s *Service) VaultStatus(ctx context.Context) (map[string]int64, error) {
	counts, err := s.repo.CountCredentialsByKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("count credentials: %w", err)
	}
	for id, n := range counts {
		if s.vault == nil || !s.vault.Has(id) {
			s.logger.WarnContext(ctx, "credentials are encrypted under a key-encryption key that MAILROOM_VAULT_KEYS does not hold; they cannot be read", "kek_id", id, "credentials", n)
		}
	}
	return counts, nil
}
