// Package auth is the auth service: users, API keys (only a hash is stored;
// the key is shown once), the services' keys, the EdDSA identity tokens that
// every other service verifies locally against auth's JWKS (with rotating
// signing keys), the credential vault, and the deletion of a user across
// every service. cmd/auth and `mailroom dev`
// both build it from a Config with New and serve it with Run.
package auth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/auth/internal/grpcapi"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/purgeclient"
	"mailroom.dev/services/auth/internal/sqlrepo"
	"mailroom.dev/services/auth/internal/vault"
)

// Config configures the service; cmd/auth fills it from the environment,
// and code that builds one decodes it with config.Load or
// config.Defaults, so the tags hold every default.
type Config struct {
	// Config is what every service has: addresses (DeleteUser asks the
	// other services there to delete a user's data), database, transport.
	service.Config
	// NATS is where auth records revocations (deleted API keys and users)
	// for every verifier to watch, and the deletion markers.
	NATS service.NATS
	// BootstrapToken, when set, is the secret of the API key
	// users/admin/apiKeys/bootstrap of the admin user "admin", both created
	// at start if missing. Changing it replaces the key's secret: the old
	// token stops working. Unsetting it leaves the key as it is.
	BootstrapToken string `env:"MAILROOM_BOOTSTRAP_TOKEN"`
	// TokenTTL is the lifetime of the identity tokens that ExchangeApiKey
	// returns, at most MaxTokenTTL: a token cannot be revoked, so its
	// lifetime bounds how long a deleted key or user keeps working.
	TokenTTL time.Duration `env:"MAILROOM_TOKEN_TTL, default=1m"`
	// ServiceKeys are the keys of the other services, "name:key,…" with
	// names such as ingest, classifier, store, gateway (at least 32
	// characters each). Their hashes are stored at start, replacing the
	// earlier key of each named service; ExchangeApiKey turns them into
	// service identities.
	ServiceKeys string `env:"MAILROOM_SERVICE_KEYS"`
	// VaultKeys are the key-encryption keys of the credential vault and of
	// the signing keys: "id:base64,…", each 32 random bytes, the active one
	// first (older ones stay until `mailroom vault rotate` has moved
	// everything to the active one). Unset, the vault refuses to store or
	// read credentials (FailedPrecondition) and signing keys are stored in
	// the clear: for development only.
	VaultKeys string `env:"MAILROOM_VAULT_KEYS"`
	// SigningKeyRotation is the age at which the token-signing key is
	// replaced. The old key stays published until its tokens have expired.
	SigningKeyRotation time.Duration `env:"MAILROOM_SIGNING_KEY_ROTATION, default=720h"`
	// SigningKeyReload is how often each replica reloads the signing keys
	// and rotates them when due.
	SigningKeyReload time.Duration `env:"MAILROOM_SIGNING_KEY_RELOAD, default=1m"`
	// MaxRecvMsgSize is the largest request accepted, in bytes (auth's
	// messages are small).
	MaxRecvMsgSize int `env:"MAILROOM_GRPC_MAX_RECV_BYTES, default=1048576"`
}

// LogValue implements slog.LogValuer: the config with its secrets masked.
// Key ids and service names are shown; keys never.
func (c Config) LogValue() slog.Value {
	token := "unset"
	if c.BootstrapToken != "" {
		token = "set"
	}
	services := "unset"
	if keys, err := parseServiceKeys(c.ServiceKeys); err != nil {
		services = "invalid"
	} else if len(keys) > 0 {
		names := make([]string, 0, len(keys))
		for n := range keys {
			names = append(names, n)
		}
		slices.Sort(names)
		services = strings.Join(names, ",")
	}
	vaultKeys := "unset (vault disabled, signing keys unencrypted)"
	if ring, err := vault.ParseKeyring(c.VaultKeys); err != nil {
		vaultKeys = "invalid"
	} else if ring != nil {
		vaultKeys = "active " + ring.Active() + " of " + strings.Join(ring.IDs(), ",")
	}
	return slog.GroupValue(
		slog.Any("service", c.Config),
		slog.Any("nats", c.NATS),
		slog.String("bootstrap_token", token),
		slog.String("token_ttl", c.TokenTTL.String()),
		slog.String("service_keys", services),
		slog.String("vault_keys", vaultKeys),
		slog.String("signing_key_rotation", c.SigningKeyRotation.String()),
		slog.String("signing_key_reload", c.SigningKeyReload.String()),
		slog.Int("max_recv_msg_size", c.MaxRecvMsgSize),
	)
}

// MinBootstrapTokenLength is the shortest MAILROOM_BOOTSTRAP_TOKEN auth
// accepts: the token is an admin key, and its hash is unsalted (a key's
// hash is what finds it), so only its length keeps it from being guessed.
const MinBootstrapTokenLength = 32

// MaxTokenTTL bounds MAILROOM_TOKEN_TTL.
const MaxTokenTTL = time.Minute

// Validate reports what is wrong with the configuration, naming variables
// and never their values. auth.New calls it, and program.Serve calls it
// before the configuration is logged.
func (c Config) Validate() error {
	if n := len(c.BootstrapToken); n > 0 && n < MinBootstrapTokenLength {
		return fmt.Errorf("MAILROOM_BOOTSTRAP_TOKEN has %d characters; it is an admin API key and needs at least %d (make one with: openssl rand -hex 32)", n, MinBootstrapTokenLength)
	}
	if c.TokenTTL > MaxTokenTTL {
		return fmt.Errorf("MAILROOM_TOKEN_TTL is %s; identity tokens live at most %s (a token outlives the revocation of its key until it expires)", c.TokenTTL, MaxTokenTTL)
	}
	if _, err := parseServiceKeys(c.ServiceKeys); err != nil {
		return err
	}
	if _, err := vault.ParseKeyring(c.VaultKeys); err != nil {
		return fmt.Errorf("MAILROOM_VAULT_KEYS: %w", err)
	}
	return nil
}

// parseServiceKeys reads MAILROOM_SERVICE_KEYS ("name:key,…"). Errors name
// entries by position or service, never by their key.
func parseServiceKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return keys, nil
	}
	for i, entry := range strings.Split(s, ",") {
		name, key, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok || name == "" || key == "" {
			return nil, fmt.Errorf("MAILROOM_SERVICE_KEYS entry %d is not name:key", i+1)
		}
		if _, dup := keys[name]; dup {
			return nil, fmt.Errorf("MAILROOM_SERVICE_KEYS names %q twice", name)
		}
		keys[name] = key
	}
	return keys, nil
}

// NewVaultKey returns a new random key-encryption key named id, in the
// form MAILROOM_VAULT_KEYS takes ("id:base64"), for development setups and
// tools.
func NewVaultKey(id string) string { return vault.NewKey(id) }

// Service is a running auth service. Run and Close are the skeleton's:
// Run serves gRPC and reloads the signing keys every SigningKeyReload,
// rotating them when due, so that replicas follow each other's rotations.
type Service struct {
	*service.Base
}

// New opens and migrates the database, loads (or creates) the signing keys,
// applies the bootstrap token and the service keys, and builds the gRPC
// server and the (lazy) connections to the other services. Close releases
// what New opened.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	serviceKeys, err := parseServiceKeys(cfg.ServiceKeys)
	if err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	ring, err := vault.ParseKeyring(cfg.VaultKeys)
	if err != nil {
		return nil, fmt.Errorf("auth.New: MAILROOM_VAULT_KEYS: %w", err)
	}
	base, err := service.New(service.Auth, cfg.Config, logger)
	if err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	s := &Service{Base: base}
	defer s.CloseOnError(&err)
	db, err := s.OpenDB(ctx, sqlrepo.Migrations())
	if err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	// Revocations are recorded in NATS before they take effect, and
	// auth's own guard watches them too.
	_, js, err := s.DialNATS(cfg.NATS.URL)
	if err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	revocations, err := s.WatchRevocations(ctx, js, cfg.NATS.Topology())
	if err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	// Auth calls the other services (DeleteUser) with a service identity
	// whose token it mints itself: svc is set below, before any call.
	var svc *identity.Service
	purgers, err := s.dialPurgers(authn.NewServiceIdentity(authn.ServiceAuth, func(ctx context.Context) (string, error) { return svc.ServiceToken(ctx) }))
	if err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	svc, err = identity.New(ctx, sqlrepo.New(db.SQL), identity.Options{
		TokenTTL:    cfg.TokenTTL,
		Logger:      s.Logger,
		Vault:       ring,
		RotateEvery: cfg.SigningKeyRotation,
		ReloadEvery: cfg.SigningKeyReload,
		Purgers:     purgers,
		Revoker:     revocations,
	})
	if err != nil {
		return nil, fmt.Errorf("auth.New: signing keys: %w", err)
	}
	if ring == nil {
		s.Logger.WarnContext(ctx, "MAILROOM_VAULT_KEYS is not set: the credential vault refuses to store or read credentials, and the token-signing keys are stored unencrypted; set it everywhere but on a laptop")
	}
	if err := prepare(ctx, svc, cfg.BootstrapToken, serviceKeys); err != nil {
		return nil, fmt.Errorf("auth.New: %w", err)
	}
	s.Go("signing key reload", func(ctx context.Context) error {
		return service.Every(ctx, cfg.SigningKeyReload, func(ctx context.Context) {
			if err := svc.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.Logger.ErrorContext(ctx, "reloading signing keys; the current ones stay in use", "error", err.Error())
			}
		})
	})
	api := grpcapi.New(svc)
	authv1.RegisterAuthServiceServer(s.Serve(s.UseGuard(api.Guard()), grpcserver.Options{MaxRecvMsgSize: cfg.MaxRecvMsgSize}), api)
	return s, nil
}

// prepare applies the bootstrap token and the service keys, and checks
// that the vault can open what it holds.
func prepare(ctx context.Context, svc *identity.Service, bootstrap string, serviceKeys map[string]string) error {
	if err := svc.Bootstrap(ctx, bootstrap); err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	if err := svc.SetServiceKeys(ctx, serviceKeys); err != nil {
		return fmt.Errorf("service keys: %w", err)
	}
	if _, err := svc.VaultStatus(ctx); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}

// dialPurgers connects to the services that keep a user's data, which
// DeleteUser asks to delete it, calling as own.
func (s *Service) dialPurgers(own *authn.ServiceIdentity) ([]identity.Purger, error) {
	var purgers []identity.Purger
	for _, peer := range []struct {
		name   string
		purger func(grpc.ClientConnInterface, *authn.ServiceIdentity) identity.Purger
	}{
		{service.Ingest, purgeclient.Ingest},
		{service.Classifier, purgeclient.Classifier},
		{service.Store, purgeclient.Store},
	} {
		cc, err := s.Dial(peer.name)
		if err != nil {
			return nil, err
		}
		purgers = append(purgers, peer.purger(cc, own))
	}
	return purgers, nil
}

// Migrate applies the auth service's embedded migrations to the database
// that databaseURL names, under a lock on Postgres, as New does at start
// (`mailroom migrate` runs it alone).
func Migrate(ctx context.Context, databaseURL string) error {
	if err := sqldb.Migrate(ctx, databaseURL, sqlrepo.Migrations()); err != nil {
		return fmt.Errorf("auth.Migrate: %w", err)
	}
	return nil
}
