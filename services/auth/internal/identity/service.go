package identity

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/auth/internal/vault"
)

// Options configure New.
type Options struct {
	// TokenTTL is the lifetime of an identity token (default 1 minute).
	TokenTTL time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Logger receives what the service did; never a secret.
	Logger *slog.Logger
	// Vault holds the key-encryption keys; nil when none is configured:
	// then the credential vault refuses to work and signing keys are
	// stored in the clear.
	Vault *vault.Keyring
	// RotateEvery is the age at which a signing key is replaced by a new
	// one (zero: never).
	RotateEvery time.Duration
	// ReloadEvery is how often the caller runs Refresh (default 1 minute).
	// A new signing key is published for two of these periods before it
	// signs, so that every replica has loaded it first.
	ReloadEvery time.Duration
	// Purgers delete a user's data in the other services (DeleteUser).
	Purgers []Purger
	// Revoker, when set, is told of every deleted API key and user before
	// the deletion, so that every verifier drops them within a second and
	// nothing of a deleted user is written again.
	Revoker Revoker
}

// Revoker records revocations where every service sees them at once
// (authn.RevocationStore: a NATS key-value bucket).
type Revoker interface {
	RevokeUser(ctx context.Context, user string, at time.Time) error
	RevokeKey(ctx context.Context, user, key string, at time.Time) error
}

// Service is the auth domain: every operation of the auth API, after the
// caller has been authorized. Its methods return *apierror.Error for
// whatever the caller did wrong.
type Service struct {
	repo        Repository
	ttl         time.Duration
	now         func() time.Time
	logger      *slog.Logger
	vault       *vault.Keyring
	rotateEvery time.Duration
	reloadEvery time.Duration
	purgers     []Purger
	revoker     Revoker

	mu   sync.RWMutex
	keys []SigningKey // unretired, newest generation first

	ownMu    sync.Mutex
	ownToken Token // auth's own service token, reused until near its expiry
}

// New returns a Service over repo, with its signing keys loaded (and the
// first one created when there is none).
func New(ctx context.Context, repo Repository, opts Options) (*Service, error) {
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Minute
	}
	if opts.TokenTTL < time.Second {
		return nil, fmt.Errorf("identity: token TTL %s is shorter than a second", opts.TokenTTL)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReloadEvery <= 0 {
		opts.ReloadEvery = time.Minute
	}
	if opts.RotateEvery < 0 {
		return nil, fmt.Errorf("identity: negative signing key rotation period %s", opts.RotateEvery)
	}
	if min := prepublish(opts.ReloadEvery) + opts.TokenTTL; opts.RotateEvery > 0 && opts.RotateEvery <= min {
		return nil, fmt.Errorf("identity: a signing key rotation every %s is too frequent: a new key is published %s before it signs and tokens live %s; rotate less often than every %s", opts.RotateEvery, prepublish(opts.ReloadEvery), opts.TokenTTL, min)
	}
	s := &Service{
		repo:        repo,
		ttl:         opts.TokenTTL,
		now:         opts.Now,
		logger:      opts.Logger,
		vault:       opts.Vault,
		rotateEvery: opts.RotateEvery,
		reloadEvery: opts.ReloadEvery,
		purgers:     opts.Purgers,
		revoker:     opts.Revoker,
	}
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// clock returns now as stored: UTC, microseconds.
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// Limits of user-supplied text.
const (
	maxDisplayName = 200
	maxEmail       = 320
)

// userIDPattern is a user id: 3 to 63 characters, a lowercase letter first,
// then lowercase letters, digits and hyphens (a subset of resname.ValidID).
var userIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{2,62}$`)

// ValidateUserID returns an InvalidArgument error for field unless id may
// name a new user.
func ValidateUserID(field, id string) error {
	if id == authn.Me {
		return apierror.Invalid(field, "%q is reserved: users/me names the caller", id)
	}
	if !userIDPattern.MatchString(id) {
		return apierror.Invalid(field, "%q is not a valid user id: use 3 to 63 lowercase letters, digits and hyphens, starting with a letter", id)
	}
	return nil
}

func validateText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return apierror.Invalid(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return apierror.Invalid(field, "is %d characters long; at most %d are allowed", n, max)
	}
	return nil
}

func validateUser(u User) error {
	if err := validateText("user.display_name", u.DisplayName, maxDisplayName); err != nil {
		return err
	}
	if u.Email != "" {
		if len(u.Email) > maxEmail {
			return apierror.Invalid("user.email", "is longer than %d characters", maxEmail)
		}
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
			return apierror.Invalid("user.email", "is not an email address such as ada@example.com")
		}
	}
	switch u.Role {
	case "", RoleUser, RoleAdmin:
		return nil
	}
	return apierror.Invalid("user.role", "is not a known role")
}

// CreateUser creates u with the id userID, or a random id when userID is
// empty; an empty role is RoleUser.
func (s *Service) CreateUser(ctx context.Context, userID string, u User) (User, error) {
	random := userID == ""
	if !random {
		if err := ValidateUserID("user_id", userID); err != nil {
			return User{}, err
		}
	}
	if err := validateUser(u); err != nil {
		return User{}, err
	}
	if u.Role == "" {
		u.Role = RoleUser
	}
	u.CreateTime = s.clock()
	for attempt := 0; ; attempt++ {
		u.ID = userID
		if random {
			u.ID = "u" + randomID(10)
		}
		err := s.repo.CreateUser(ctx, u)
		switch {
		case err == nil:
			return u, nil
		case errors.Is(err, ErrExists) && random && attempt < 2:
			continue // a random id collided: draw again
		case errors.Is(err, ErrExists):
			return User{}, apierror.AlreadyExistsf("%s already exists", resname.User(u.ID))
		default:
			return User{}, fmt.Errorf("create user: %w", err)
		}
	}
}

// GetUser returns the user with id.
func (s *Service) GetUser(ctx context.Context, id string) (User, error) {
	u, err := s.repo.GetUser(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, apierror.NotFoundf("%s not found", resname.User(id))
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// ListUsers returns a page of users by id and the token of the next page
// (empty on the last).
func (s *Service) ListUsers(ctx context.Context, pageSize int, pageToken string) ([]User, string, error) {
	size, after, err := page(pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	users, err := s.repo.ListUsers(ctx, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	next := ""
	if len(users) > size {
		users = users[:size]
		next = pageTokenAfter(users[size-1].ID)
	}
	return users, next, nil
}

// CreateAPIKey creates a key for the user userID and returns it with its
// secret, which is never available again.
func (s *Service) CreateAPIKey(ctx context.Context, userID, displayName string) (APIKey, string, error) {
	if err := validateText("api_key.display_name", displayName, maxDisplayName); err != nil {
		return APIKey{}, "", err
	}
	if _, err := s.GetUser(ctx, userID); err != nil {
		return APIKey{}, "", err
	}
	for attempt := 0; ; attempt++ {
		secret := newSecret()
		k := APIKey{
			UserID:      userID,
			ID:          randomID(10),
			DisplayName: displayName,
			Prefix:      prefixOf(secret),
			Hash:        hashSecret(secret),
			CreateTime:  s.clock(),
		}
		err := s.repo.CreateAPIKey(ctx, k)
		switch {
		case err == nil:
			s.logger.InfoContext(ctx, "api key created", "api_key", resname.APIKey(k.UserID, k.ID))
			return k, secret, nil
		case errors.Is(err, ErrExists) && attempt < 2:
			continue // a random id collided: draw again
		default:
			return APIKey{}, "", fmt.Errorf("create api key: %w", err)
		}
	}
}

// ListAPIKeys returns a page of the unrevoked keys of userID, without
// secrets, and the token of the next page (empty on the last).
func (s *Service) ListAPIKeys(ctx context.Context, userID string, pageSize int, pageToken string) ([]APIKey, string, error) {
	size, after, err := page(pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.GetUser(ctx, userID); err != nil {
		return nil, "", err
	}
	keys, err := s.repo.ListAPIKeys(ctx, userID, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	next := ""
	if len(keys) > size {
		keys = keys[:size]
		next = pageTokenAfter(keys[size-1].ID)
	}
	return keys, next, nil
}

// DeleteAPIKey revokes a key: it no longer exchanges, and no longer lists.
func (s *Service) DeleteAPIKey(ctx context.Context, userID, id string) error {
	now := s.clock()
	if s.revoker != nil {
		// Recorded first: if it cannot be, nothing is revoked and the
		// caller retries, rather than a key that caches keep for 30 s.
		k, err := s.repo.GetAPIKey(ctx, userID, id)
		if errors.Is(err, ErrNotFound) || (err == nil && !k.RevokeTime.IsZero()) {
			return apierror.NotFoundf("%s not found", resname.APIKey(userID, id))
		}
		if err != nil {
			return fmt.Errorf("find api key: %w", err)
		}
		if err := s.revoker.RevokeKey(ctx, userID, id, now); err != nil {
			return apierror.Unavailablef(err, "%s could not be revoked now; retry", resname.APIKey(userID, id))
		}
	}
	err := s.repo.RevokeAPIKey(ctx, userID, id, now)
	if errors.Is(err, ErrNotFound) {
		return apierror.NotFoundf("%s not found", resname.APIKey(userID, id))
	}
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	s.logger.InfoContext(ctx, "api key revoked", "api_key", resname.APIKey(userID, id))
	return nil
}

// Page sizes of List methods.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// page returns the page size to use and the id a page starts after.
// A page token is the base64url of the last id of the previous page.
func page(pageSize int, pageToken string) (int, string, error) {
	switch {
	case pageSize < 0:
		return 0, "", apierror.Invalid("page_size", "must not be negative")
	case pageSize == 0:
		pageSize = defaultPageSize
	case pageSize > maxPageSize:
		pageSize = maxPageSize
	}
	if pageToken == "" {
		return pageSize, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(pageToken)
	if err != nil || !resname.ValidID(string(b)) {
		return 0, "", apierror.Invalid("page_token", "is not a token returned by an earlier call")
	}
	return pageSize, string(b), nil
}

func pageTokenAfter(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// lowerBase32 is base32 in lowercase, without padding: ids and secrets made
// of it are valid resource ids and survive URLs, shells and case folding.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomID returns n random bytes as lowercase base32; it is a valid
// resname id.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return lowerBase32.EncodeToString(b)
}
