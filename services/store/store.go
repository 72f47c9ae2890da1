// Package store is mailroom's system of record for messages and their
// classifications. It consumes mail.received and mail.classified from
// JetStream in batches (one transaction per batch, acked after the commit)
// and answers mailroom.store.v1.StoreService over gRPC: list with filters and
// page tokens, get, per-category stats, usage. State lives in Postgres or,
// for the zero-setup run, in a SQLite file (DATABASE_URL chooses).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/store/internal/consumer"
	"mailroom.dev/services/store/internal/grpcapi"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/postgres"
	"mailroom.dev/services/store/internal/sqlite"
)

// Config configures the service; cmd/store fills it from the environment.
type Config struct {
	// GRPCAddr is where cmd/store listens.
	GRPCAddr string `env:"MAILROOM_GRPC_ADDR, default=127.0.0.1:9104"`
	// NATSURL is the NATS server with JetStream.
	NATSURL string `env:"NATS_URL, default=nats://127.0.0.1:4222"`
	// NATSPrefix is put in front of every subject and stream name.
	NATSPrefix string `env:"MAILROOM_NATS_PREFIX"`
	// StreamReplicas is the replica count of the streams it ensures.
	StreamReplicas int `env:"MAILROOM_STREAM_REPLICAS, default=1"`
	// AuthAddr is the auth service, whose JWKS verifies callers.
	AuthAddr string `env:"MAILROOM_AUTH_ADDR, default=127.0.0.1:9101"`
	// DatabaseURL is postgres://… or sqlite://PATH.
	DatabaseURL string `env:"DATABASE_URL, required"`
	// StoreBodies keeps messages' text bodies; by default only metadata and
	// the snippet are stored.
	StoreBodies bool `env:"MAILROOM_STORE_BODIES, default=false"`
	// BatchSize is the most events recorded in one transaction.
	BatchSize int `env:"MAILROOM_STORE_BATCH_SIZE, default=200"`
}

// LogValue logs the configuration with the credentials in URLs masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("nats_url", redact(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.String("auth_addr", c.AuthAddr),
		slog.String("database_url", redact(c.DatabaseURL)),
		slog.Bool("store_bodies", c.StoreBodies),
		slog.Int("batch_size", c.BatchSize),
	)
}

// redact masks the password of a URL and the values of query parameters
// that may hold a secret.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") || strings.Contains(lk, "key") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// Service is the running store: its database, its consumers and its gRPC
// server.
type Service struct {
	logger    *slog.Logger
	db        *sqldb.DB
	nc        *nats.Conn
	authConn  *grpc.ClientConn
	consumers *consumer.Consumers
	server    *grpcserver.Server
}

// New opens the database (applying migrations), connects to NATS, ensures
// the streams and the store's durable consumers, and builds the gRPC server.
// Nothing is consumed or served before Run.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Service{logger: logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	s.db, err = sqldb.Open(ctx, cfg.DatabaseURL, sqldb.Migrations{
		Table:    "store_schema_version",
		Postgres: postgres.Migrations(),
		SQLite:   sqlite.Migrations(),
	})
	if err != nil {
		return nil, fmt.Errorf("store: database: %w", err)
	}
	var repo mailstore.Repository
	switch s.db.Backend {
	case sqldb.Postgres:
		repo = postgres.New(s.db.Pool)
	default:
		repo = sqlite.New(s.db.SQL)
	}
	svc := mailstore.NewService(repo, mailstore.Options{StoreBodies: cfg.StoreBodies})

	nc, js, err := eventbus.Connect(cfg.NATSURL, "mailroom-store")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.nc = nc
	topo := eventbus.Topology{Prefix: cfg.NATSPrefix, Replicas: cfg.StreamReplicas}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.consumers, err = consumer.New(ctx, js, topo, svc, logger, consumer.Options{BatchSize: cfg.BatchSize})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	guard, conn, err := authn.Remote(cfg.AuthAddr)
	if err != nil {
		return nil, fmt.Errorf("store: auth: %w", err)
	}
	s.authConn = conn
	s.server = grpcserver.New(grpcserver.Options{
		Logger: logger,
		Unary:  []grpc.UnaryServerInterceptor{guard.Unary()},
		Stream: []grpc.StreamServerInterceptor{guard.Stream()},
	})
	storev1.RegisterStoreServiceServer(s.server.GRPC(), grpcapi.New(svc))
	return s, nil
}

// Run serves gRPC on lis and consumes events until ctx is done, then drains
// both: in-flight calls finish, the batches in hand are committed and acked.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumed := make(chan error, 1)
	go func() { consumed <- s.consumers.Run(ctx) }()
	err := s.server.Serve(ctx, lis)
	cancel() // a server that failed stops the consumers too
	return errors.Join(err, <-consumed)
}

// Close releases the database, the NATS connection and the connection to
// auth. Call it after Run has returned.
func (s *Service) Close() error {
	var errs []error
	if s.authConn != nil {
		errs = append(errs, s.authConn.Close())
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}
