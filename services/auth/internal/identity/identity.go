// Package identity is the auth service's domain: users, their API keys, the
// services' keys, the Ed25519 keys that sign identity tokens (and their
// rotation), the exchange of a key for such a token, the credential vault
// and the deletion of a user across services. It knows neither gRPC nor
// SQL; a Repository keeps its state and Purgers reach the other services.
package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"mailroom.dev/services/auth/internal/vault"
)

// Role is what a user may do.
type Role string

// The roles of a user. Their values are the "role" claim of identity tokens
// and the stored form.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// User is a person whose mail mailroom classifies.
type User struct {
	ID          string
	DisplayName string
	Email       string
	Role        Role
	CreateTime  time.Time
}

// APIKey is a credential of a user. Only the SHA-256 hash of the secret is
// kept; the secret itself exists once, in the answer to CreateAPIKey.
type APIKey struct {
	UserID      string
	ID          string
	DisplayName string
	// Prefix is the first characters of the secret, to recognise it in a list.
	Prefix string
	// Hash is the SHA-256 of the secret.
	Hash       []byte
	CreateTime time.Time
	// LastUseTime is when the key was last exchanged; zero when never.
	LastUseTime time.Time
	// RevokeTime is when the key was deleted; zero while it is valid.
	RevokeTime time.Time
}

// SigningKey is an Ed25519 key that signs identity tokens. Keys form
// generations: a rotation adds a generation, published in the JWKS at once
// but signing only from its ActivateTime, so that every verifier knows it
// before its first token; the previous key stays published until the last
// token it signed has expired, then it is retired.
type SigningKey struct {
	// ID is the key id that tokens name in their "kid" header.
	ID string
	// Generation orders keys; it is unique, so that replicas starting (or
	// rotating) together create one key, not one each.
	Generation int
	PrivateKey ed25519.PrivateKey
	CreateTime time.Time
	// ActivateTime is when the key starts signing.
	ActivateTime time.Time
}

// StoredSigningKey is a signing key as the Repository keeps it: its 32-byte
// Ed25519 seed sealed by the vault, or, while no key-encryption key is
// configured, in the clear (Seed.KeyID empty, the seed in Seed.Ciphertext).
type StoredSigningKey struct {
	ID           string
	Generation   int
	CreateTime   time.Time
	ActivateTime time.Time
	Seed         vault.Sealed
}

// ServiceKey is the key of a mailroom service (MAILROOM_SERVICE_KEYS),
// which ExchangeApiKey turns into a service identity. As for API keys, only
// the hash is kept.
type ServiceKey struct {
	// Service is the service's name (authn.ServiceIngest …).
	Service    string
	Prefix     string
	Hash       []byte
	CreateTime time.Time
}

// CredentialKind is what a credential is; its values are the stored form,
// and part of the associated data of the ciphertext.
type CredentialKind string

// The kinds of credential.
const (
	CredentialGmailRefreshToken CredentialKind = "gmail_refresh_token"
	CredentialIMAPPassword      CredentialKind = "imap_password"
	// CredentialWebhookSecret is the store's: the secret that signs a
	// webhook's deliveries.
	CredentialWebhookSecret CredentialKind = "webhook_secret"
)

// Credential is a mailbox's secret, users/{UserID}/mailboxes/{MailboxID}/credential,
// or a webhook's, users/{UserID}/webhooks/{id}/secret.
type Credential struct {
	UserID string
	// MailboxID is the mailbox's id, or for a webhook's secret
	// WebhookCredentialID(id): both live in one table, keyed by user and
	// this column, and a mailbox id has no slash.
	MailboxID string
	Kind      CredentialKind
	// Secret is the plaintext: input of PutCredential, output of
	// GetCredential, never stored.
	Secret []byte
	// KeyID names the key-encryption key that wraps its data key.
	KeyID      string
	CreateTime time.Time
	UpdateTime time.Time
}

// StoredCredential is a credential as the Repository keeps it: sealed.
type StoredCredential struct {
	UserID     string
	MailboxID  string
	Kind       CredentialKind
	Sealed     vault.Sealed
	CreateTime time.Time
	UpdateTime time.Time
}

// Deleted counts the rows that DeleteUserData removed.
type Deleted struct {
	Credentials, APIKeys, Users int64
}

// Purger deletes a user's data in another service (DeleteUser).
type Purger struct {
	// Service names the service; its counts are reported as
	// "<Service>.<kind>".
	Service string
	// Purge deletes the data of userID and counts it by kind. It is
	// idempotent: a second call deletes what is left, if anything.
	Purge func(ctx context.Context, userID string) (map[string]int64, error)
}

// Errors a Repository returns; the Service turns them into API errors.
var (
	// ErrNotFound means that no row matched.
	ErrNotFound = errors.New("identity: not found")
	// ErrExists means that a unique key (an id, an API key's or service
	// key's hash, a signing key's generation) is taken already.
	ErrExists = errors.New("identity: already exists")
)

// Repository keeps users, API keys and signing keys. Times are stored with
// microsecond precision.
type Repository interface {
	// CreateUser stores a new user, or returns ErrExists.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user with id, or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// UpdateUser replaces the display name, email and role of u.ID, or
	// returns ErrNotFound.
	UpdateUser(ctx context.Context, u User) error
	// ListUsers returns up to limit users whose id sorts after after, by id.
	ListUsers(ctx context.Context, after string, limit int) ([]User, error)

	// CreateAPIKey stores a new key, or returns ErrExists when its id (per
	// user) or its hash is taken.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKey returns a key, revoked or not, or ErrNotFound.
	GetAPIKey(ctx context.Context, userID, id string) (APIKey, error)
	// ListAPIKeys returns up to limit unrevoked keys of userID whose id sorts
	// after after, by id.
	ListAPIKeys(ctx context.Context, userID, after string, limit int) ([]APIKey, error)
	// APIKeyByHash returns the unrevoked key with hash and its owner, or
	// ErrNotFound.
	APIKeyByHash(ctx context.Context, hash []byte) (APIKey, User, error)
	// RevokeAPIKey marks an unrevoked key revoked at t, or returns
	// ErrNotFound.
	RevokeAPIKey(ctx context.Context, userID, id string, t time.Time) error
	// ReplaceAPIKeySecret gives the existing key k.UserID/k.ID the hash,
	// prefix and create time of k, clears its last use, and unrevokes it;
	// ErrNotFound when there is no such key, ErrExists when the hash is taken.
	ReplaceAPIKeySecret(ctx context.Context, k APIKey) error
	// TouchAPIKey sets a key's last use time to t unless it is already at or
	// after notBefore, so that replicas racing on one key write once.
	TouchAPIKey(ctx context.Context, userID, id string, t, notBefore time.Time) error

	// CreateSigningKey stores a new signing key, or returns ErrExists when
	// its id or generation is taken.
	CreateSigningKey(ctx context.Context, k StoredSigningKey) error
	// SigningKeys returns the unretired signing keys, newest generation first.
	SigningKeys(ctx context.Context) ([]StoredSigningKey, error)
	// ResealSigningKey replaces the sealed seed of the unretired key id,
	// if it is still old; ErrNotFound otherwise.
	ResealSigningKey(ctx context.Context, id string, old, sealed vault.Sealed) error
	// RetireSigningKey marks the key id retired at t and erases its
	// private key; ErrNotFound when it is retired already.
	RetireSigningKey(ctx context.Context, id string, t time.Time) error

	// PutServiceKey stores k as the key of k.Service, replacing an earlier
	// one; ErrExists when the hash is another service's.
	PutServiceKey(ctx context.Context, k ServiceKey) error
	// GetServiceKey returns the key of service, or ErrNotFound.
	GetServiceKey(ctx context.Context, service string) (ServiceKey, error)
	// ServiceKeyByHash returns the service key with hash, or ErrNotFound.
	ServiceKeyByHash(ctx context.Context, hash []byte) (ServiceKey, error)

	// PutCredential stores c, replacing the credential of the same mailbox
	// (which keeps its create time), and returns what is stored.
	PutCredential(ctx context.Context, c StoredCredential) (StoredCredential, error)
	// GetCredential returns a mailbox's credential, or ErrNotFound.
	GetCredential(ctx context.Context, userID, mailboxID string) (StoredCredential, error)
	// DeleteCredential deletes a mailbox's credential, or returns ErrNotFound.
	DeleteCredential(ctx context.Context, userID, mailboxID string) error
	// CredentialsNotUnder returns up to limit credentials whose data key is
	// not wrapped by the KEK keyID, ordered by user and mailbox, after the
	// credential (afterUser, afterMailbox).
	CredentialsNotUnder(ctx context.Context, keyID, afterUser, afterMailbox string, limit int) ([]StoredCredential, error)
	// ResealCredential replaces the sealed value of a credential, if it is
	// still old; ErrNotFound otherwise (replaced or deleted meanwhile).
	ResealCredential(ctx context.Context, userID, mailboxID string, old, sealed vault.Sealed) error
	// CountCredentialsByKey counts the credentials by the id of their KEK.
	CountCredentialsByKey(ctx context.Context) (map[string]int64, error)

	// DeleteUserData deletes, in one transaction, the credentials, the API
	// keys (revoked or not) and the row of userID, and counts them.
	DeleteUserData(ctx context.Context, userID string) (Deleted, error)
}
