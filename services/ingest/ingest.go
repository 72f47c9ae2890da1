// Package ingest builds and runs the ingest service: mailboxes, their sync
// jobs, and the import of raw mail, each message parsed into a normalized
// message and published once to JetStream for the classifier.
package ingest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/transport"
	"mailroom.dev/services/ingest/internal/gmailsync"
	"mailroom.dev/services/ingest/internal/grpcapi"
	"mailroom.dev/services/ingest/internal/imapsync"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/natsconsumer"
	"mailroom.dev/services/ingest/internal/natspub"
	"mailroom.dev/services/ingest/internal/sqlrepo"
	"mailroom.dev/services/ingest/internal/vaultclient"
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
	// ServiceKey is ingest's own key, exchanged with auth for the service
	// identity that reads and writes the credential vault.
	ServiceKey string `env:"MAILROOM_SERVICE_KEY"`
	// Transport is optional TLS (and mTLS) for the gRPC server and its
	// connection to auth (MAILROOM_TLS_*).
	Transport transport.Config

	// GoogleClientID and GoogleClientSecret are the OAuth client of Gmail
	// mailboxes; Gmail is off without a client id.
	GoogleClientID     string `env:"GOOGLE_OAUTH_CLIENT_ID"`
	GoogleClientSecret string `env:"GOOGLE_OAUTH_CLIENT_SECRET"`
	// PublicURL is the gateway's public base URL; Google sends the browser
	// back to PublicURL + /oauth/google/callback.
	PublicURL string `env:"MAILROOM_PUBLIC_URL, default=http://127.0.0.1:8080"`
	// GoogleAuthURL, GoogleTokenURL and GmailEndpoint are Google's
	// (tests point them at a fake).
	GoogleAuthURL  string `env:"MAILROOM_GOOGLE_AUTH_URL, default=https://accounts.google.com/o/oauth2/auth"`
	GoogleTokenURL string `env:"MAILROOM_GOOGLE_TOKEN_URL, default=https://oauth2.googleapis.com/token"`
	GmailEndpoint  string `env:"MAILROOM_GMAIL_ENDPOINT, default=https://gmail.googleapis.com/"`
	// GmailScope is "readonly" (gmail.readonly, the default) or "metadata"
	// (gmail.metadata: headers and snippets, never bodies).
	GmailScope string `env:"MAILROOM_GMAIL_SCOPE, default=readonly"`
	// GmailQuotaPerMinute is Gmail's per-user quota in units, and the
	// GmailCost* fields what each call costs.
	GmailQuotaPerMinute int `env:"MAILROOM_GMAIL_QUOTA_PER_MINUTE, default=6000"`
	GmailCostGet        int `env:"MAILROOM_GMAIL_COST_GET, default=20"`
	GmailCostList       int `env:"MAILROOM_GMAIL_COST_LIST, default=5"`
	GmailCostHistory    int `env:"MAILROOM_GMAIL_COST_HISTORY, default=2"`
	// GmailConcurrency bounds the messages.get calls in flight per sync.
	GmailConcurrency int `env:"MAILROOM_GMAIL_CONCURRENCY, default=10"`
	// GmailBackoff is the first wait after a rate limit; it doubles.
	GmailBackoff time.Duration `env:"MAILROOM_GMAIL_BACKOFF, default=1s"`
	// GmailAuthTTL is how long an authorization URL stays valid.
	GmailAuthTTL time.Duration `env:"MAILROOM_GMAIL_AUTH_TTL, default=15m"`

	// IMAPAllowHosts lists the IMAP hosts (names, addresses, CIDR
	// prefixes) ingest may reach although they are loopback, private or
	// link-local, and the only ones that may use security NONE.
	IMAPAllowHosts []string `env:"MAILROOM_IMAP_ALLOW_HOSTS"`
	// IMAPCAFile is a PEM file of extra CAs trusted for IMAP servers.
	IMAPCAFile string `env:"MAILROOM_IMAP_CA_FILE"`

	// SyncInterval is how often every active Gmail and IMAP mailbox is
	// synced; 0 turns the scheduler off.
	SyncInterval time.Duration `env:"MAILROOM_SYNC_INTERVAL, default=15m"`
	// SyncLease is how long a replica's claim on a running job lasts
	// unless renewed; SyncPoll how often replicas look for jobs.
	SyncLease time.Duration `env:"MAILROOM_SYNC_LEASE, default=30s"`
	SyncPoll  time.Duration `env:"MAILROOM_SYNC_POLL, default=2s"`
	// MaxSyncJobs bounds the jobs one replica runs at once.
	MaxSyncJobs int `env:"MAILROOM_MAX_SYNC_JOBS, default=4"`
	// RetentionDays is the store's retention (the same variable): syncs do
	// not publish mail older than it. 0 publishes everything.
	RetentionDays int `env:"MAILROOM_RETENTION_DAYS, default=30"`
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("nats_url", redact.URL(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.String("auth_addr", c.AuthAddr),
		slog.String("database_url", redact.URL(c.DatabaseURL)),
		slog.Int("max_message_bytes", c.MaxMessageBytes),
		slog.Bool("service_key_set", c.ServiceKey != ""),
		slog.Any("transport", c.Transport),
		slog.Bool("gmail_enabled", c.GoogleClientID != ""),
		slog.String("google_client_id", c.GoogleClientID),
		slog.Bool("google_client_secret_set", c.GoogleClientSecret != ""),
		slog.String("public_url", c.PublicURL),
		slog.String("google_auth_url", c.GoogleAuthURL),
		slog.String("google_token_url", c.GoogleTokenURL),
		slog.String("gmail_endpoint", c.GmailEndpoint),
		slog.String("gmail_scope", c.GmailScope),
		slog.Int("gmail_quota_per_minute", c.GmailQuotaPerMinute),
		slog.Int("gmail_concurrency", c.GmailConcurrency),
		slog.Any("imap_allow_hosts", c.IMAPAllowHosts),
		slog.String("imap_ca_file", c.IMAPCAFile),
		slog.String("sync_interval", c.SyncInterval.String()),
		slog.String("sync_lease", c.SyncLease.String()),
		slog.Int("max_sync_jobs", c.MaxSyncJobs),
	)
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
	domain   *mailbox.Service
	consumer *natsconsumer.Consumer
}

// New opens the database (applying migrations), connects to NATS, ensures
// the streams and ingest's consumer, and builds the gRPC server. Close
// releases what it opened.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if cfg.MaxMessageBytes <= 0 {
		return nil, errors.New("ingest: MAILROOM_MAX_MESSAGE_BYTES must be positive")
	}
	var metadataOnly bool
	switch strings.ToLower(cfg.GmailScope) {
	case "", "readonly", "gmail.readonly":
	case "metadata", "gmail.metadata":
		metadataOnly = true
	default:
		return nil, fmt.Errorf("ingest: MAILROOM_GMAIL_SCOPE is %q: readonly or metadata", cfg.GmailScope)
	}
	guard, err := imapsync.NewGuard(cfg.IMAPAllowHosts)
	if err != nil {
		return nil, fmt.Errorf("ingest: MAILROOM_IMAP_ALLOW_HOSTS: %w", err)
	}
	var roots *x509.CertPool
	if cfg.IMAPCAFile != "" {
		pem, err := os.ReadFile(cfg.IMAPCAFile)
		if err != nil {
			return nil, fmt.Errorf("ingest: MAILROOM_IMAP_CA_FILE: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ingest: MAILROOM_IMAP_CA_FILE %s holds no PEM certificate", cfg.IMAPCAFile)
		}
	}
	if cfg.ServiceKey == "" {
		logger.Warn("MAILROOM_SERVICE_KEY is not set: Gmail and IMAP mailboxes cannot reach the credential vault")
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
	serverCreds, err := cfg.Transport.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	clientCreds, err := cfg.Transport.ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	authConn, err := grpcconn.Dial(cfg.AuthAddr, grpcconn.WithCredentials(clientCreds))
	if err != nil {
		return nil, fmt.Errorf("ingest: auth: %w", err)
	}
	s.authConn = authConn
	authClient := authv1.NewAuthServiceClient(authConn)
	authGuard := authn.NewGuard(authClient, ingestv1.IngestService_CompleteAuthorization_FullMethodName)
	identity := authn.NewServiceIdentity(authn.ServiceIngest,
		authn.KeyToken(authn.NewKeyCache(authn.ClientExchange(authClient), 10*time.Minute), cfg.ServiceKey))
	if cfg.ServiceKey == "" {
		identity = nil // Outgoing then says that the key is missing
	}

	providers := map[mailbox.Kind]mailbox.Provider{}
	imapProvider := imapsync.New(imapsync.Config{Guard: guard, RootCAs: roots, MaxMessageBytes: int64(cfg.MaxMessageBytes), Logger: logger})
	providers[mailbox.KindIMAP] = imapProvider
	var gmailAuth mailbox.GmailAuth
	if cfg.GoogleClientID != "" {
		g := gmailsync.New(gmailsync.Config{
			ClientID:     cfg.GoogleClientID,
			ClientSecret: cfg.GoogleClientSecret,
			RedirectURL:  strings.TrimSuffix(cfg.PublicURL, "/") + CallbackPath,
			AuthURL:      cfg.GoogleAuthURL,
			TokenURL:     cfg.GoogleTokenURL,
			Endpoint:     cfg.GmailEndpoint,
			MetadataOnly: metadataOnly,
			Quota: gmailsync.Quota{PerMinute: cfg.GmailQuotaPerMinute, Get: cfg.GmailCostGet,
				List: cfg.GmailCostList, History: cfg.GmailCostHistory},
			Concurrency: cfg.GmailConcurrency,
			Backoff:     cfg.GmailBackoff,
			Logger:      logger,
		})
		providers[mailbox.KindGmail] = g
		gmailAuth = g
	}

	s.domain = mailbox.NewService(sqlrepo.New(s.db.SQL), natspub.New(js, topo), mailbox.Config{
		MaxMessageBytes: cfg.MaxMessageBytes,
		Logger:          logger,
		Vault:           vaultclient.New(authClient, identity),
		Providers:       providers,
		Gmail:           gmailAuth,
		IMAP:            imapProvider,
		AuthStateTTL:    cfg.GmailAuthTTL,
		Lease:           cfg.SyncLease,
		Poll:            cfg.SyncPoll,
		MaxJobs:         cfg.MaxSyncJobs,
		MaxMessageAge:   time.Duration(cfg.RetentionDays) * 24 * time.Hour,
		SyncInterval:    cfg.SyncInterval,
	})
	if s.consumer, err = natsconsumer.New(ctx, js, topo, s.domain, logger); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.srv = grpcserver.New(grpcserver.Options{
		Creds:          serverCreds,
		Logger:         logger,
		Unary:          []grpc.UnaryServerInterceptor{authGuard.Unary()},
		Stream:         []grpc.StreamServerInterceptor{authGuard.Stream()},
		MaxRecvMsgSize: max(minRecvMsgSize, cfg.MaxMessageBytes+(1<<20)),
	})
	ingestv1.RegisterIngestServiceServer(s.srv.GRPC(), grpcapi.New(s.domain))
	return s, nil
}

// CallbackPath is the gateway's route that Google sends the browser back
// to after a Gmail consent.
const CallbackPath = "/oauth/google/callback"

// Run serves gRPC on lis and runs the sync jobs, the scheduler and the
// classified-progress consumer until ctx is done; then it drains in-flight
// calls and hands running jobs back (PENDING, progress kept) for the next
// replica or start to continue.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	s.logger.InfoContext(ctx, "ingest serving", "addr", lis.Addr().String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.srv.Serve(gctx, lis) })
	g.Go(func() error { return s.domain.RunJobs(gctx) })
	g.Go(func() error { return s.domain.RunScheduler(gctx) })
	g.Go(func() error { return s.consumer.Run(gctx) })
	return g.Wait()
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

// Migrate applies the ingest service's embedded migrations to the database
// that databaseURL names, under a lock on Postgres, as New does at start
// (`mailroom migrate` runs it alone).
func Migrate(ctx context.Context, databaseURL string) error {
	db, err := sqldb.Open(ctx, databaseURL, sqlrepo.Migrations())
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return db.Close()
}
