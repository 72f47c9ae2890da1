// Package auth is the auth service: users, API keys (only a hash is stored;
// the key is shown once), the services' keys, the EdDSA identity tokens that
// every other service verifies locally against auth's JWKS (with rotating
// signing keys), the credential vault, and the deletion of a user across
// every service. cmd/auth and `mailroom dev`
// both build it from a Config with New and serve it with Run.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/transport"
	"mailroom.dev/services/auth/internal/grpcapi"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/purgeclient"
	"mailroom.dev/services/auth/internal/sqlrepo"
	"mailroom.dev/services/auth/internal/vault"
)

// Config configures the service; cmd/auth fills it from the environment
// with github.com/sethvargo/go-envconfig.
type Config struct {
	// GRPCAddr is where cmd/auth listens.
	GRPCAddr string `env:"MAILROOM_GRPC_ADDR, default=127.0.0.1:9101"`
	// DatabaseURL is postgres://… or sqlite://PATH.
	DatabaseURL string `env:"DATABASE_URL, required"`
	// BootstrapToken, when set, is the secret of the API key
	// users/admin/apiKeys/bootstrap of the admin user "admin", both created
	// at start if missing. Changing it replaces the key's secret: the old
	// token stops working. Unsetting it leaves the key as it is.
	BootstrapToken string `env:"MAILROOM_BOOTSTRAP_TOKEN"`
	// TokenTTL is the lifetime of the identity tokens that ExchangeApiKey
	// returns (zero means 5 minutes).
	TokenTTL time.Duration `env:"MAILROOM_TOKEN_TTL, default=5m"`
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
	// replaced (zero means 720h). The old key stays published until its
	// tokens have expired.
	SigningKeyRotation time.Duration `env:"MAILROOM_SIGNING_KEY_ROTATION, default=720h"`
	// SigningKeyReload is how often each replica reloads the signing keys
	// and rotates them when due (zero means 1 minute).
	SigningKeyReload time.Duration `env:"MAILROOM_SIGNING_KEY_RELOAD, default=1m"`
	// IngestAddr, ClassifierAddr and StoreAddr are where DeleteUser asks the
	// other services to delete a user's data (empty: the default).
	IngestAddr     string `env:"MAILROOM_INGEST_ADDR, default=127.0.0.1:9102"`
	ClassifierAddr string `env:"MAILROOM_CLASSIFIER_ADDR, default=127.0.0.1:9103"`
	StoreAddr      string `env:"MAILROOM_STORE_ADDR, default=127.0.0.1:9104"`
	// MaxRecvMsgSize is the largest request accepted, in bytes (zero means
	// 1 MiB: auth's messages are small).
	MaxRecvMsgSize int `env:"MAILROOM_GRPC_MAX_RECV_BYTES, default=1048576"`
	// Transport secures the gRPC server and the connections to the other
	// services (MAILROOM_TLS_*); plaintext when unset.
	Transport transport.Config
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
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("database_url", redact.URL(c.DatabaseURL)),
		slog.String("bootstrap_token", token),
		slog.String("token_ttl", c.TokenTTL.String()),
		slog.String("service_keys", services),
		slog.String("vault_keys", vaultKeys),
		slog.String("signing_key_rotation", c.SigningKeyRotation.String()),
		slog.String("signing_key_reload", c.SigningKeyReload.String()),
		slog.String("ingest_addr", c.IngestAddr),
		slog.String("classifier_addr", c.ClassifierAddr),
		slog.String("store_addr", c.StoreAddr),
		slog.Int("max_recv_msg_size", c.MaxRecvMsgSize),
		slog.Any("transport", c.Transport),
	)
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

// Service is a running auth service.
type Service struct {
	db     *sqldb.DB
	svc    *identity.Service
	server *grpcserver.Server
	conns  []*grpc.ClientConn
	logger *slog.Logger
	reload time.Duration
}

// New opens and migrates the database, loads (or creates) the signing keys,
// applies the bootstrap token and the service keys, and builds the gRPC
// server and the (lazy) connections to the other services. Close releases
// what New opened.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("auth: DATABASE_URL is required")
	}
	if cfg.SigningKeyRotation == 0 {
		cfg.SigningKeyRotation = 720 * time.Hour
	}
	if cfg.SigningKeyReload == 0 {
		cfg.SigningKeyReload = time.Minute
	}
	if cfg.MaxRecvMsgSize == 0 {
		cfg.MaxRecvMsgSize = 1 << 20
	}
	for p, def := range map[*string]string{&cfg.IngestAddr: "127.0.0.1:9102", &cfg.ClassifierAddr: "127.0.0.1:9103", &cfg.StoreAddr: "127.0.0.1:9104"} {
		if *p == "" {
			*p = def
		}
	}
	serviceKeys, err := parseServiceKeys(cfg.ServiceKeys)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	ring, err := vault.ParseKeyring(cfg.VaultKeys)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	serverCreds, err := cfg.Transport.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	clientCreds, err := cfg.Transport.ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	s := &Service{logger: logger, reload: cfg.SigningKeyReload}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	s.db, err = sqlrepo.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("auth: open database: %w", err)
	}

	// Auth calls the other services (DeleteUser) with a service identity
	// whose token it mints itself: svc is set below, before any call.
	var svc *identity.Service
	own := authn.NewServiceIdentity(authn.ServiceAuth, func(ctx context.Context) (string, error) { return svc.ServiceToken(ctx) })
	var purgers []identity.Purger
	for _, peer := range []struct {
		name, addr string
		purger     func(grpc.ClientConnInterface, *authn.ServiceIdentity) identity.Purger
	}{
		{authn.ServiceIngest, cfg.IngestAddr, purgeclient.Ingest},
		{authn.ServiceClassifier, cfg.ClassifierAddr, purgeclient.Classifier},
		{authn.ServiceStore, cfg.StoreAddr, purgeclient.Store},
	} {
		cc, err := grpcconn.Dial(peer.addr, grpcconn.WithCredentials(clientCreds))
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", peer.name, err)
		}
		s.conns = append(s.conns, cc)
		purgers = append(purgers, peer.purger(cc, own))
	}

	svc, err = identity.New(ctx, sqlrepo.New(s.db.SQL), identity.Options{
		TokenTTL:    cfg.TokenTTL,
		Logger:      logger,
		Vault:       ring,
		RotateEvery: cfg.SigningKeyRotation,
		ReloadEvery: cfg.SigningKeyReload,
		Purgers:     purgers,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s.svc = svc
	if err := svc.Bootstrap(ctx, cfg.BootstrapToken); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := svc.SetServiceKeys(ctx, serviceKeys); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if ring == nil {
		logger.WarnContext(ctx, "MAILROOM_VAULT_KEYS is not set: the credential vault refuses to store or read credentials, and the token-signing keys are stored unencrypted; set it everywhere but on a laptop")
	}
	if _, err := svc.VaultStatus(ctx); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	api := grpcapi.New(svc)
	guard := api.Guard()
	s.server = grpcserver.New(grpcserver.Options{
		Logger:         logger,
		Unary:          []grpc.UnaryServerInterceptor{guard.Unary()},
		Stream:         []grpc.StreamServerInterceptor{guard.Stream()},
		MaxRecvMsgSize: cfg.MaxRecvMsgSize,
		Creds:          serverCreds,
	})
	authv1.RegisterAuthServiceServer(s.server.GRPC(), api)
	return s, nil
}

// Run serves gRPC on lis until ctx is done, then drains in-flight calls.
// Meanwhile it reloads the signing keys every SigningKeyReload, rotating
// them when due, so that replicas follow each other's rotations.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.reload)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.svc.Refresh(ctx); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "reloading signing keys; the current ones stay in use", "error", err.Error())
				}
			}
		}
	}()
	err := s.server.Serve(ctx, lis)
	cancel()
	<-done
	return err
}

// Close releases the database and the connections to the other services.
func (s *Service) Close() error {
	var errs []error
	for _, cc := range s.conns {
		errs = append(errs, cc.Close())
	}
	s.conns = nil
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	return errors.Join(errs...)
}

// Migrate applies the auth service's embedded migrations to the database
// that databaseURL names, under a lock on Postgres, as New does at start
// (`mailroom migrate` runs it alone).
func Migrate(ctx context.Context, databaseURL string) error {
	db, err := sqldb.Open(ctx, databaseURL, sqlrepo.Migrations())
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return db.Close()
}
