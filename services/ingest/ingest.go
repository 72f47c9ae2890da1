// Package ingest builds and runs the ingest service: mailboxes, their sync
// jobs, and the import of raw mail, each message parsed into a normalized
// message and published once to JetStream for the classifier.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/ingest/internal/grpcapi"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/natspub"
	"mailroom.dev/services/ingest/internal/sqlrepo"
)

// Config configures the service; cmd/ingest fills it from the environment.
type Config struct {
	// GRPCAddr is where cmd/ingest listens.
	GRPCAddr string `env:"MAILROOM_GRPC_ADDR, default=127.0.0.1:9102"`
	// NATSURL is the NATS server with JetStream.
	NATSURL string `env:"NATS_URL, default=nats://127.0.0.1:4222"`
	// NATSPrefix goes in front of every subject and stream name.
	NATSPrefix string `env:"MAILROOM_NATS_PREFIX"`
	// StreamReplicas is the replica count of the streams ingest ensures.
	StreamReplicas int `env:"MAILROOM_STREAM_REPLICAS, default=1"`
	// AuthAddr is the auth service, for its JWKS and API key exchange.
	AuthAddr string `env:"MAILROOM_AUTH_ADDR, default=127.0.0.1:9101"`
	// DatabaseURL is postgres://… or sqlite://PATH; ingest keeps mailboxes and sync jobs there.
	DatabaseURL string `env:"DATABASE_URL, required"`
	// MaxMessageBytes bounds one raw message (default 25 MiB).
	MaxMessageBytes int `env:"MAILROOM_MAX_MESSAGE_BYTES, default=26214400"`
}

// LogValue logs the configuration with the credentials of URLs masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("nats_url", redact(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.String("auth_addr", c.AuthAddr),
		slog.String("database_url", redact(c.DatabaseURL)),
		slog.Int("max_message_bytes", c.MaxMessageBytes),
	)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

// minRecvMsgSize lets a request carrying a message well over the per-message
// limit reach the handler, whose MESSAGE_TOO_LARGE error names the limit;
// gRPC's own refusal would say less.
const minRecvMsgSize = 64 << 20

// Service is a running ingest service.
type Service struct {
	logger   *slog.Logger
	db       *sqldb.DB
	nc       *nats.Conn
	authConn *grpc.ClientConn
	srv      *grpcserver.Server
}

// New opens the database (applying migrations), connects to NATS, ensures
// the streams, and builds the gRPC server. Close releases what it opened.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if cfg.MaxMessageBytes <= 0 {
		return nil, errors.New("ingest: MAILROOM_MAX_MESSAGE_BYTES must be positive")
	}
	s := &Service{logger: logger}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	if s.db, err = sqldb.Open(ctx, cfg.DatabaseURL, sqlrepo.Migrations()); err != nil {
		return nil, fmt.Errorf("ingest: database: %w", err)
	}
	nc, js, err := eventbus.Connect(cfg.NATSURL, "mailroom-ingest")
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.nc = nc
	topo := eventbus.Topology{Prefix: cfg.NATSPrefix, Replicas: cfg.StreamReplicas}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	guard, authConn, err := authn.Remote(cfg.AuthAddr)
	if err != nil {
		return nil, fmt.Errorf("ingest: auth: %w", err)
	}
	s.authConn = authConn

	svc := mailbox.NewService(sqlrepo.New(s.db.SQL), natspub.New(js, topo), mailbox.Config{
		MaxMessageBytes: cfg.MaxMessageBytes,
		Logger:          logger,
	})
	s.srv = grpcserver.New(grpcserver.Options{
		Logger:         logger,
		Unary:          []grpc.UnaryServerInterceptor{guard.Unary()},
		Stream:         []grpc.StreamServerInterceptor{guard.Stream()},
		MaxRecvMsgSize: max(minRecvMsgSize, cfg.MaxMessageBytes+(1<<20)),
	})
	ingestv1.RegisterIngestServiceServer(s.srv.GRPC(), grpcapi.New(svc))
	return s, nil
}

// Run serves gRPC on lis until ctx is done, then drains in-flight calls.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	s.logger.InfoContext(ctx, "ingest serving", "addr", lis.Addr().String())
	return s.srv.Serve(ctx, lis)
}

// Close releases the auth connection, NATS and the database.
func (s *Service) Close() error {
	var errs []error
	if s.authConn != nil {
		errs = append(errs, s.authConn.Close())
	}
	if s.nc != nil {
		// Run has drained the calls that publish, so nothing is in flight.
		s.nc.Close()
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}
