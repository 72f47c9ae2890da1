// Package auth is the auth service: users, API keys (only a hash is stored;
// the key is shown once), and the EdDSA identity tokens that every other
// service verifies locally against auth's JWKS. cmd/auth and `mailroom dev`
// both build it from a Config with New and serve it with Run.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/auth/internal/grpcapi"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/sqlrepo"
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
}

// LogValue implements slog.LogValuer: the config with its secrets masked.
func (c Config) LogValue() slog.Value {
	token := "unset"
	if c.BootstrapToken != "" {
		token = "set"
	}
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("bootstrap_token", token),
		slog.String("token_ttl", c.TokenTTL.String()),
	)
}

// redactURL hides a URL's password and query (which may carry one).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "xxxxx"
	}
	return u.Redacted()
}

// Service is a running auth service.
type Service struct {
	db     *sqldb.DB
	server *grpcserver.Server
}

// New opens and migrates the database, loads (or creates) the signing key,
// applies the bootstrap token and builds the gRPC server. Close releases
// what New opened.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Service, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("auth: DATABASE_URL is required")
	}
	db, err := sqlrepo.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("auth: open database: %w", err)
	}
	svc, err := identity.New(ctx, sqlrepo.New(db.SQL), identity.Options{TokenTTL: cfg.TokenTTL, Logger: logger})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := svc.Bootstrap(ctx, cfg.BootstrapToken); err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	api := grpcapi.New(svc)
	guard := api.Guard()
	server := grpcserver.New(grpcserver.Options{
		Logger: logger,
		Unary:  []grpc.UnaryServerInterceptor{guard.Unary()},
		Stream: []grpc.StreamServerInterceptor{guard.Stream()},
	})
	authv1.RegisterAuthServiceServer(server.GRPC(), api)
	return &Service{db: db, server: server}, nil
}

// Run serves gRPC on lis until ctx is done, then drains in-flight calls.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	return s.server.Serve(ctx, lis)
}

// Close releases the database.
func (s *Service) Close() error {
	return s.db.Close()
}
