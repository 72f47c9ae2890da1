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
	"time"

	"github.com/nats-io/nats.go/jetstream"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
	"mailroom.dev/services/store/internal/grpcapi"
	"mailroom.dev/services/store/internal/jetstream/consumer"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// Config configures the service; cmd/store fills it from the environment.
type Config struct {
	// Config is what every service has: addresses, database, transport.
	service.Config
	// NATS is the NATS server with JetStream, and the streams' naming.
	NATS service.NATS
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
		slog.Any("service", c.Config),
		slog.Any("nats", c.NATS),
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
	if err := sqlrepo.Migrate(ctx, databaseURL); err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	return nil
}

// Service is the running store: its database, its consumers, its purge job
// and its gRPC server. Run and Close are the skeleton's.
type Service struct {
	*service.Base
	svc *mailstore.Service
}

// New opens the database (applying migrations), connects to NATS, ensures
// the streams and the store's durable consumers, and builds the gRPC server.
// Nothing is consumed or served before Run.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if cfg.RetentionDays < 0 || cfg.UsageRetentionDays < 0 || cfg.RetentionInterval < 0 || cfg.PurgeBatchSize < 0 {
		return nil, errors.New("store.New: retention days, interval and purge batch size must not be negative")
	}
	base, err := service.New(service.Store, cfg.Config, logger)
	if err != nil {
		return nil, fmt.Errorf("store.New: %w", err)
	}
	s := &Service{Base: base}
	defer s.CloseOnError(&err)
	db, err := sqlrepo.Open(ctx, cfg.DatabaseURL, s.DBOptions()...)
	if err != nil {
		return nil, fmt.Errorf("store.New: open database: %w", err)
	}
	s.OnClose(db.Close)
	const day = 24 * time.Hour
	s.svc = mailstore.NewService(db.Repo, mailstore.Options{
		StoreBodies:    cfg.StoreBodies,
		Retention:      time.Duration(cfg.RetentionDays) * day,
		UsageRetention: time.Duration(cfg.UsageRetentionDays) * day,
		PurgeBatch:     cfg.PurgeBatchSize,
	})
	js, topo, err := s.ConnectNATS(ctx, cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("store.New: %w", err)
	}
	consumers, err := consumer.New(ctx, js, topo, s.svc, s.Logger, consumer.Options{BatchSize: cfg.BatchSize, Writers: cfg.Writers})
	if err != nil {
		return nil, fmt.Errorf("store.New: consumers: %w", err)
	}
	s.CheckDB(db.DB)
	for _, k := range consumers.Kept() {
		s.KeepConsumer(js, topo, k.Stream, k.Config)
	}
	s.Go("consumers", consumers.Run)
	// The work streams keep every message until each consumer that needs
	// it has acknowledged it; the store, the last of them, removes those.
	s.Go("stream trim", func(ctx context.Context) error {
		return service.Every(ctx, time.Minute, func(ctx context.Context) { trim(ctx, s.Logger, js, topo) })
	})
	if cfg.RetentionInterval > 0 {
		s.Go("retention purge", func(ctx context.Context) error {
			s.purge(ctx)
			return service.Every(ctx, cfg.RetentionInterval, s.purge)
		})
	}
	_, guard, err := s.DialAuth()
	if err != nil {
		return nil, fmt.Errorf("store.New: %w", err)
	}
	storev1.RegisterStoreServiceServer(s.Serve(guard, grpcserver.Options{}), grpcapi.New(s.svc, func(ctx context.Context, user string) (int64, error) {
		return eventbus.PurgeSubject(ctx, js, topo.ClassifiedStreamName(), topo.ClassifiedSubject(user))
	}))
	return s, nil
}

// purge runs the retention purge once; a purge that ctx stops ends between
// two batches, and the next run continues it.
func (s *Service) purge(ctx context.Context) {
	start := time.Now()
	p, err := s.svc.PurgeExpired(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		s.Logger.ErrorContext(ctx, "retention purge failed; the next run continues it", "error", err.Error(),
			"messages", p.Messages, "usage_records", p.UsageRecords)
	case p != (mailstore.Purged{}):
		s.Logger.InfoContext(ctx, "retention purge", "messages", p.Messages, "usage_records", p.UsageRecords,
			"tombstones", p.Tombstones, "duration", time.Since(start).String())
	}
}

// trim removes from the work streams what every consumer has acknowledged
// (eventbus.Trim); mail.received waits while max-deliveries advisories,
// which name its messages, wait for the classifier.
func trim(ctx context.Context, logger *slog.Logger, js jetstream.JetStream, topo eventbus.Topology) {
	idle := map[string][]eventbus.ConsumerRef{
		topo.ReceivedStreamName(): {{Stream: topo.AdvisoryStreamName(), Consumer: eventbus.DeadLetterDurable}},
	}
	for stream, consumers := range topo.WorkConsumers() {
		first, err := eventbus.Trim(ctx, js, stream, consumers, idle[stream]...)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "trimming a stream failed; the next round tries again", "stream", stream, "error", err.Error())
		case first > 0:
			logger.DebugContext(ctx, "stream trimmed", "stream", stream, "first_seq", first)
		}
	}
}
