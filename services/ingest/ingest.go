// Package ingest builds and runs the ingest service: mailboxes, their sync
// jobs, and the import of raw mail, each message parsed into a normalized
// message and published once to JetStream for the classifier.
package ingest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/ingest/internal/gmailsync"
	"mailroom.dev/services/ingest/internal/grpcapi"
	"mailroom.dev/services/ingest/internal/idlelease"
	"mailroom.dev/services/ingest/internal/imapsync"
	"mailroom.dev/services/ingest/internal/jetstream/consumer"
	"mailroom.dev/services/ingest/internal/jetstream/publisher"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/sqlrepo"
	"mailroom.dev/services/ingest/internal/vaultclient"
)

// Config configures the service; cmd/ingest fills it from the environment.
type Config struct {
	// Config is what every service has: addresses, database (mailboxes
	// and sync jobs), transport.
	service.Config
	// NATS is the NATS server with JetStream, and the streams' naming.
	NATS service.NATS
	// MaxMessageBytes bounds one raw message (default 25 MiB).
	MaxMessageBytes int `env:"MAILROOM_MAX_MESSAGE_BYTES, default=26214400"`

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
	// GoogleRevokeURL is where a deleted Gmail mailbox's grant is revoked.
	GoogleRevokeURL string `env:"MAILROOM_GOOGLE_REVOKE_URL, default=https://oauth2.googleapis.com/revoke"`
	GmailEndpoint   string `env:"MAILROOM_GMAIL_ENDPOINT, default=https://gmail.googleapis.com/"`
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
	// GmailPubSubTopic is the Pub/Sub topic (projects/…/topics/…) that
	// Gmail publishes a watched mailbox's changes to; every Gmail sync makes
	// sure the mailbox is watched (renewed daily). Empty: no push.
	GmailPubSubTopic string `env:"MAILROOM_GMAIL_PUBSUB_TOPIC"`
	// GmailPushSyncFactor stretches MAILROOM_SYNC_INTERVAL for Gmail
	// mailboxes while pushes arrive (scheduled syncs are then a safety net).
	GmailPushSyncFactor int `env:"MAILROOM_GMAIL_PUSH_SYNC_FACTOR, default=4"`
	// IMAPIdleMax bounds the IMAP IDLE connections one replica holds (0:
	// none; every IMAP mailbox is polled).
	IMAPIdleMax int `env:"MAILROOM_IMAP_IDLE_MAX, default=100"`
	// IMAPIdleReissue is how often an IDLE is ended and issued again.
	IMAPIdleReissue time.Duration `env:"MAILROOM_IMAP_IDLE_REISSUE, default=29m"`
	// IMAPIdleLease is how long a replica's lease on a mailbox's IDLE lasts
	// unless renewed (every third of it): a replica that dies has its
	// mailboxes idled on by another within about 4/3 of it.
	IMAPIdleLease time.Duration `env:"MAILROOM_IMAP_IDLE_LEASE, default=15s"`
	// ReplicaID names this replica among those sharing the IDLE leases
	// (default: the host name, process id and a random suffix).
	ReplicaID string `env:"MAILROOM_REPLICA_ID"`
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
		slog.Any("service", c.Config),
		slog.Any("nats", c.NATS),
		slog.Int("max_message_bytes", c.MaxMessageBytes),
		slog.Bool("gmail_enabled", c.GoogleClientID != ""),
		slog.String("google_client_id", c.GoogleClientID),
		slog.Bool("google_client_secret_set", c.GoogleClientSecret != ""),
		slog.String("public_url", c.PublicURL),
		slog.String("google_auth_url", c.GoogleAuthURL),
		slog.String("google_token_url", c.GoogleTokenURL),
		slog.String("google_revoke_url", c.GoogleRevokeURL),
		slog.String("gmail_endpoint", c.GmailEndpoint),
		slog.String("gmail_scope", c.GmailScope),
		slog.Int("gmail_quota_per_minute", c.GmailQuotaPerMinute),
		slog.Int("gmail_concurrency", c.GmailConcurrency),
		slog.Any("imap_allow_hosts", c.IMAPAllowHosts),
		slog.String("imap_ca_file", c.IMAPCAFile),
		slog.String("sync_interval", c.SyncInterval.String()),
		slog.String("gmail_pubsub_topic", c.GmailPubSubTopic),
		slog.Int("gmail_push_sync_factor", c.GmailPushSyncFactor),
		slog.Int("imap_idle_max", c.IMAPIdleMax),
		slog.String("imap_idle_reissue", c.IMAPIdleReissue.String()),
		slog.String("imap_idle_lease", c.IMAPIdleLease.String()),
		slog.String("replica_id", c.ReplicaID),
		slog.String("sync_lease", c.SyncLease.String()),
		slog.Int("max_sync_jobs", c.MaxSyncJobs),
	)
}

// minRecvMsgSize lets a request carrying a message well over the per-message
// limit reach the handler, whose MESSAGE_TOO_LARGE error names the limit;
// gRPC's own refusal would say less.
const minRecvMsgSize = 64 << 20

// Service is a running ingest service. Run and Close are the skeleton's:
// Run serves gRPC and runs the sync jobs, the scheduler and the
// classified-progress consumer until ctx is done; then it drains in-flight
// calls and hands running jobs back (PENDING, progress kept) for the next
// replica or start to continue.
type Service struct {
	*service.Base
}

// New opens the database (applying migrations), connects to NATS, ensures
// the streams and ingest's consumer, and builds the gRPC server. Close
// releases what it opened.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if cfg.MaxMessageBytes <= 0 {
		return nil, errors.New("ingest.New: MAILROOM_MAX_MESSAGE_BYTES must be positive")
	}
	base, err := service.New(service.Ingest, cfg.Config, logger)
	if err != nil {
		return nil, fmt.Errorf("ingest.New: %w", err)
	}
	s := &Service{Base: base}
	defer s.CloseOnError(&err)
	mc, err := mailboxConfig(cfg, s.Logger)
	if err != nil {
		return nil, fmt.Errorf("ingest.New: %w", err)
	}
	db, err := s.OpenDB(ctx, sqlrepo.Migrations())
	if err != nil {
		return nil, fmt.Errorf("ingest.New: %w", err)
	}
	js, topo, err := s.ConnectNATS(ctx, cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("ingest.New: %w", err)
	}
	authClient, guard, err := s.DialAuth(ingestv1.IngestService_CompleteAuthorization_FullMethodName, ingestv1.IngestService_StartAuthorization_FullMethodName)
	if err != nil {
		return nil, fmt.Errorf("ingest.New: %w", err)
	}
	var identity *authn.ServiceIdentity // nil: vault calls say that the key is missing
	if cfg.ServiceKey == "" {
		s.Logger.Warn("MAILROOM_SERVICE_KEY is not set: Gmail and IMAP mailboxes cannot reach the credential vault")
	} else {
		cache := authn.NewKeyCache(authn.ClientExchange(authClient), 10*time.Minute)
		identity = authn.NewServiceIdentity(authn.ServiceIngest, authn.KeyToken(cache, cfg.ServiceKey))
	}
	mc.Vault = vaultclient.New(authClient, identity)
	if cfg.IMAPIdleMax > 0 {
		leases, err := idlelease.Open(ctx, js, idlelease.Config{
			Bucket:   topo.BucketName(idlelease.Bucket),
			ID:       cfg.replicaID(),
			Cap:      cfg.IMAPIdleMax,
			TTL:      cfg.IMAPIdleLease,
			Replicas: cfg.NATS.StreamReplicas,
		})
		if err != nil {
			return nil, fmt.Errorf("ingest.New: IMAP IDLE leases: %w", err)
		}
		mc.IdleLeases = leases
	}
	mc.Deleted = s.Revocations().Deleted
	domain := mailbox.NewService(sqlrepo.New(db.SQL), publisher.New(js, topo), mc)
	classified, err := consumer.New(ctx, js, topo, domain, s.Logger, consumer.Options{})
	if err != nil {
		return nil, fmt.Errorf("ingest.New: classified consumer: %w", err)
	}
	if err := s.ReportLag(js, eventbus.Durable{Stream: topo.ClassifiedStreamName(), Consumer: consumer.Durable},
		eventbus.Durable{Stream: topo.BatchStreamName(), Consumer: consumer.BatchDurable}); err != nil {
		return nil, fmt.Errorf("ingest.New: %w", err)
	}
	s.Go("sync jobs", domain.RunJobs)
	s.Go("scheduler", domain.RunScheduler)
	s.Go("gmail pushes", domain.RunPushes)
	s.Go("imap idle", domain.RunIdle)
	s.Go("auth state purge", func(ctx context.Context) error {
		return service.Every(ctx, cfg.GmailAuthTTL, func(ctx context.Context) {
			if n, err := domain.PurgeAuthStates(ctx); err != nil && ctx.Err() == nil {
				s.Logger.WarnContext(ctx, "purging expired Gmail consent states failed; retrying later", "error", err.Error())
			} else if n > 0 {
				s.Logger.InfoContext(ctx, "expired Gmail consent states deleted", "count", n)
			}
		})
	})
	s.KeepConsumer(js, topo, topo.ClassifiedStreamName(), consumer.Config(topo))
	s.KeepConsumer(js, topo, topo.BatchStreamName(), consumer.BatchConfig(topo))
	s.Go("classified consumer", classified.Run)
	srv := s.Serve(guard, grpcserver.Options{MaxRecvMsgSize: max(minRecvMsgSize, cfg.MaxMessageBytes+(1<<20))})
	ingestv1.RegisterIngestServiceServer(srv, grpcapi.New(domain))
	return s, nil
}

// replicaID is ReplicaID, or the host name, process id and a random
// suffix (two services in one process differ), as a key-value key allows.
func (c Config) replicaID() string {
	id := c.ReplicaID
	if id == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, id)
}

// mailboxConfig is the mailbox service's configuration: the IMAP provider
// (with its SSRF guard and extra CAs), and Gmail when a client id is set.
func mailboxConfig(cfg Config, logger *slog.Logger) (mailbox.Config, error) {
	var metadataOnly bool
	switch strings.ToLower(cfg.GmailScope) {
	case "", "readonly", "gmail.readonly":
	case "metadata", "gmail.metadata":
		metadataOnly = true
	default:
		return mailbox.Config{}, fmt.Errorf("MAILROOM_GMAIL_SCOPE is %q: readonly or metadata", cfg.GmailScope)
	}
	guard, err := imapsync.NewGuard(cfg.IMAPAllowHosts)
	if err != nil {
		return mailbox.Config{}, fmt.Errorf("MAILROOM_IMAP_ALLOW_HOSTS: %w", err)
	}
	roots, err := imapRoots(cfg.IMAPCAFile)
	if err != nil {
		return mailbox.Config{}, err
	}
	imapProvider := imapsync.New(imapsync.Config{Guard: guard, RootCAs: roots, MaxMessageBytes: int64(cfg.MaxMessageBytes), Logger: logger})
	mc := mailbox.Config{
		MaxMessageBytes: cfg.MaxMessageBytes,
		Logger:          logger,
		Providers:       map[mailbox.Kind]mailbox.Provider{mailbox.KindIMAP: imapProvider},
		IMAP:            imapProvider,
		AuthStateTTL:    cfg.GmailAuthTTL,
		ConsentStartURL: strings.TrimSuffix(cfg.PublicURL, "/") + StartPath,
		Lease:           cfg.SyncLease,
		Poll:            cfg.SyncPoll,
		MaxJobs:         cfg.MaxSyncJobs,
		MaxMessageAge:   time.Duration(cfg.RetentionDays) * 24 * time.Hour,
		SyncInterval:    cfg.SyncInterval,
		PushSyncFactor:  cfg.GmailPushSyncFactor,
		Idler:           imapProvider,
		MaxIdle:         cfg.IMAPIdleMax,
		IdleReissue:     cfg.IMAPIdleReissue,
	}
	if cfg.GoogleClientID != "" {
		g := gmailsync.New(gmailsync.Config{
			ClientID:     cfg.GoogleClientID,
			ClientSecret: cfg.GoogleClientSecret,
			RedirectURL:  strings.TrimSuffix(cfg.PublicURL, "/") + CallbackPath,
			AuthURL:      cfg.GoogleAuthURL,
			TokenURL:     cfg.GoogleTokenURL,
			RevokeURL:    cfg.GoogleRevokeURL,
			Endpoint:     cfg.GmailEndpoint,
			MetadataOnly: metadataOnly,
			Quota: gmailsync.Quota{PerMinute: cfg.GmailQuotaPerMinute, Get: cfg.GmailCostGet,
				List: cfg.GmailCostList, History: cfg.GmailCostHistory},
			Concurrency: cfg.GmailConcurrency,
			Backoff:     cfg.GmailBackoff,
			Logger:      logger,
			Topic:       cfg.GmailPubSubTopic,
		})
		mc.Providers[mailbox.KindGmail] = g
		mc.Gmail = g
	}
	return mc, nil
}

// imapRoots is the system's CAs and those of the PEM file at path, or nil
// (the system's alone) when path is empty.
func imapRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("MAILROOM_IMAP_CA_FILE: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("MAILROOM_IMAP_CA_FILE %s holds no PEM certificate", path)
	}
	return roots, nil
}

// StartPath is the gateway's route that a Gmail mailbox's authorization
// URL names: it binds the browser to the consent and sends it to Google.
const StartPath = "/oauth/google/start"

// CallbackPath is the gateway's route that Google sends the browser back
// to after a Gmail consent.
const CallbackPath = "/oauth/google/callback"

// Migrate applies the ingest service's embedded migrations to the database
// that databaseURL names, under a lock on Postgres, as New does at start
// (`mailroom migrate` runs it alone).
func Migrate(ctx context.Context, databaseURL string) error {
	if err := sqldb.Migrate(ctx, databaseURL, sqlrepo.Migrations()); err != nil {
		return fmt.Errorf("ingest.Migrate: %w", err)
	}
	return nil
}
