// Package identity is the auth service's domain: users, their API keys, the
// Ed25519 keys that sign identity tokens, and the exchange of an API key for
// such a token. It knows neither gRPC nor SQL; a Repository keeps its state.
package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"
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
// generations: the newest unretired generation signs, and every unretired
// key is published in the JWKS, so that a rotation (a later issue) adds a
// generation and retires the old one only after its last token expired.
type SigningKey struct {
	// ID is the key id that tokens name in their "kid" header.
	ID string
	// Generation orders keys; it is unique, so that replicas starting
	// together create one key, not one each.
	Generation int
	PrivateKey ed25519.PrivateKey
	CreateTime time.Time
}

// Errors a Repository returns; the Service turns them into API errors.
var (
	// ErrNotFound means that no row matched.
	ErrNotFound = errors.New("identity: not found")
	// ErrExists means that a unique key (an id, an API key's hash, a signing
	// key's generation) is taken already.
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
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// SigningKeys returns the unretired signing keys, newest generation first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
}
