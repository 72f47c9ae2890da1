// Package store is mailroom's system of record for messages and their
// classifications. It consumes mail.received, mail.classified and the
// dead-letter stream from JetStream in batches (one transaction per batch,
// acked after the commit) and answers mailroom.store.v1.StoreService over
// gRPC: list with filters and page tokens, get, per-category stats, usage,
// and deleting all of a user's data. A background job purges what is older
// than the retention. State lives in Postgres or, for the zero-setup run, in
// a SQLite file (DATABASE_URL chooses).
//
// Bodies are not stored unless MAILROOM_STORE_BODIES=true; even then
// ListMessages never returns them, GetMessage does.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/transport"
	"mailroom.dev/services/store/internal/backend"
	"mailroom.dev/services/store/internal/consumer"
	"mailroom.dev/services/store/internal/grpcapi"
	"mailroom.dev/services/store/internal/mailstore"
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
	// Transport is optional TLS (and mTLS) for the gRPC server and its
	// connection to auth (MAILROOM_TLS_*).
	Transport transport.Config
	// DatabaseURL is postgres://… or sqlite://PATH.
	DatabaseURL string `env:"DATABASE_URL, required"`
	// StoreBodies keeps messages' text bodies; by default only metadata and
	// the snippet are stored. GetMessage returns a stored body; ListMessages
	// never does.
	StoreBodies bool `env:"MAILROOM_STORE_BODIES, default=false"`
	// BatchSize is the most events recorded in one transaction. Larger
	// batches spread a commit's cost (its wait for the disk) over more rows.
	BatchSize int `env:"MAILROOM_STORE_BATCH_SIZE, default=500"`
	// Writers is how many batches of one stream are written at a time.
	Writers int `env:"MAILROOM_STORE_WRITERS, default=2"`
	// RetentionDays is how long messages are kept, by received time; 0
	// keeps them forever.
	RetentionDays int `env:"MAILROOM_RETENTION_DAYS, default=30"`
	// UsageRetentionDays is how long the usage ledger is kept, by classify
	// time; 0 keeps it forever. It outlives the messages so that costs can
	// be compared month on month and year on year; it holds no mail content.
	UsageRetentionDays int `env:"MAILROOM_USAGE_RETENTION_DAYS, default=400"`
	// RetentionInterval is how often the purge job runs; 0 disables it.
	RetentionInterval time.Duration `env:"MAILROOM_RETENTION_INTERVAL, default=1h"`
	// PurgeBatchSize is the most rows one purge transaction deletes.
	PurgeBatchSize int `env:"MAILROOM_PURGE_BATCH_SIZE, default=1000"`
}

// LogValue logs the configuration with the credentials in URLs masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("nats_url", redact.URL(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.String("auth_addr", c.AuthAddr),
		slog.Any("transport", c.Transport),
		slog.String("database_url", redact.URL(c.DatabaseURL)),
		slog.Bool("store_bodies", c.StoreBodies),
		slog.Int("batch_size", c.BatchSize),
		slog.Int("writers", c.Writers),
		slog.Int("retention_days", c.RetentionDays),
		slog.Int("usage_retention_days", c.UsageRetentionDays),
		slog.String("retention_interval", c.RetentionInterval.String()),
		slog.Int("purge_batch_size", c.PurgeBatchSize),
	)
}

// Migrate brings the store's schema in the database at databaseURL up to
// date, as New does at start (under a lock on Postgres, so that replicas and
// `mailroom migrate` may run it together), and closes the database.
func Migrate(ctx context.Context, databaseURL string) error {
	if err := backend.Migrate(ctx, databaseURL); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Service is the running store: its database, its consumers, its purge job
// and its gRPC server.
type Service struct {
	logger    *slog.Logger
	db        *backend.DB
	nc        *nats.Conn
	authConn  *grpc.ClientConn
	svc       *mailstore.Service
	consumers *consumer.Consumers
	server    *grpcserver.Server
	interval  time.Duration
}

// New opens the database (applying migrations), connects to NATS, ensures
// the streams and the store's durable consumers, and builds the gRPC server.
// Nothing is consumed or served before Run.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.RetentionDays < 0 || cfg.UsageRetentionDays < 0 || cfg.RetentionInterval < 0 || cfg.PurgeBatchSize < 0 {
		return nil, errors.New("store: retention days, interval and purge batch size must not be negative")
	}
	s := &Service{logger: logger, interval: cfg.RetentionInterval}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	s.db, err = backend.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	const day = 24 * time.Hour
	svc := mailstore.NewService(s.db.Repo, mailstore.Options{
		StoreBodies:    cfg.StoreBodies,
		Retention:      time.Duration(cfg.RetentionDays) * day,
		UsageRetention: time.Duration(cfg.UsageRetentionDays) * day,
		PurgeBatch:     cfg.PurgeBatchSize,
	})
	s.svc = svc

	nc, js, err := eventbus.Connect(cfg.NATSURL, "mailroom-store")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.nc = nc
	topo := eventbus.Topology{Prefix: cfg.NATSPrefix, Replicas: cfg.StreamReplicas}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.consumers, err = consumer.New(ctx, js, topo, svc, logger, consumer.Options{BatchSize: cfg.BatchSize, Writers: cfg.Writers})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	serverCreds, err := cfg.Transport.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	clientCreds, err := cfg.Transport.ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.authConn, err = grpcconn.Dial(cfg.AuthAddr, grpcconn.WithCredentials(clientCreds)); err != nil {
		return nil, fmt.Errorf("store: auth: %w", err)
	}
	guard := authn.NewGuard(authv1.NewAuthServiceClient(s.authConn))
	s.server = grpcserver.New(grpcserver.Options{
		Creds:  serverCreds,
		Logger: logger,
		Unary:  []grpc.UnaryServerInterceptor{guard.Unary()},
		Stream: []grpc.StreamServerInterceptor{guard.Stream()},
	})
	storev1.RegisterStoreServiceServer(s.server.GRPC(), grpcapi.New(svc, func(ctx context.Context, user string) (int64, error) {
		return eventbus.PurgeSubject(ctx, js, topo.ClassifiedStreamName(), topo.ClassifiedSubject(user))
	}))
	return s, nil
}

// Run serves gRPC on lis, consumes events and purges expired data until ctx
// is done, then drains: in-flight calls finish, the batches in hand are
// committed and acked, a purge stops between two batches.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumed := make(chan error, 1)
	go func() { consumed <- s.consumers.Run(ctx) }()
	purged := make(chan struct{})
	go func() {
		defer close(purged)
		s.purgeLoop(ctx)
	}()
	err := s.server.Serve(ctx, lis)
	cancel() // a server that failed stops the consumers too
	<-purged
	return errors.Join(err, <-consumed)
}

// purgeLoop runs the retention purge at start and then every interval.
func (s *Service) purgeLoop(ctx context.Context) {
	if s.interval <= 0 {
		return
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		start := time.Now()
		p, err := s.svc.PurgeExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger.ErrorContext(ctx, "retention purge failed; the next run continues it", "error", err.Error(),
				"messages", p.Messages, "usage_records", p.UsageRecords)
		case p != (mailstore.Purged{}):
			s.logger.InfoContext(ctx, "retention purge", "messages", p.Messages, "usage_records", p.UsageRecords,
				"tombstones", p.Tombstones, "duration", time.Since(start).String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
