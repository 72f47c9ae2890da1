// Package classifier builds and runs the classifier service: durable
// JetStream consumers (one per lane) that classify every received mail and
// publish the verdict, and the ClassifierService gRPC API (ad-hoc Classify,
// GetLimits, taxonomies, dead letters).
//
// Each message goes through the rules tier, then — unless a rule was
// confident — the verdict cache and the language model, which runs under
// the limiter (requests and tokens per minute, per key, shared between
// replicas) and the budget guard. Without an OpenAI key, the rules tier
// runs alone.
package classifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/transport"
	"mailroom.dev/services/classifier/internal/budget"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/grpcapi"
	"mailroom.dev/services/classifier/internal/jetstream/consumer"
	"mailroom.dev/services/classifier/internal/jetstream/deadletters"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
	"mailroom.dev/services/classifier/internal/replicas"
	"mailroom.dev/services/classifier/internal/rules"
	"mailroom.dev/services/classifier/internal/sqlrepo"
)

// Config configures the service; cmd/classifier fills it from the
// environment. Zero values take the defaults in the tags, so that a Config
// built in code (mailroom dev, tests) needs only what differs.
type Config struct {
	// GRPCAddr is where cmd/classifier listens.
	GRPCAddr string `env:"MAILROOM_GRPC_ADDR, default=127.0.0.1:9103"`
	// NATSURL is the NATS server.
	NATSURL string `env:"NATS_URL, default=nats://127.0.0.1:4222"`
	// NATSPrefix is put in front of every subject and stream name.
	NATSPrefix string `env:"MAILROOM_NATS_PREFIX"`
	// StreamReplicas is the replica count of the streams this service creates.
	StreamReplicas int `env:"MAILROOM_STREAM_REPLICAS, default=1"`
	// AuthAddr is the auth service, whose JWKS verifies callers.
	AuthAddr string `env:"MAILROOM_AUTH_ADDR, default=127.0.0.1:9101"`
	// DatabaseURL keeps taxonomies, the verdict cache and the spend.
	DatabaseURL string `env:"DATABASE_URL, required"`
	// Transport is optional TLS (and mTLS) for the gRPC server and its
	// connection to auth (MAILROOM_TLS_*).
	Transport transport.Config

	// Workers bounds how many received events each lane's consumer works
	// on at once. With the language model on, a worker mostly waits for the
	// limiter, so the default is MaxAckPending then (all that is held may
	// wait in the limiter, where the lanes and users are scheduled); with
	// the rules alone it is 8.
	Workers int `env:"MAILROOM_CLASSIFIER_WORKERS"`
	// MaxAckPending bounds the events each lane's consumer holds
	// unacknowledged. It must exceed what the limits keep in flight
	// (RPM × latency / 60: 500 at 10,000 RPM and 3 s).
	MaxAckPending int `env:"MAILROOM_CLASSIFIER_MAX_ACK_PENDING, default=1000"`
	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration `env:"MAILROOM_CLASSIFIER_ACK_WAIT, default=30s"`
	// MaxDeliver bounds the deliveries of one event.
	MaxDeliver int `env:"MAILROOM_CLASSIFIER_MAX_DELIVER, default=10"`

	// OpenAIAPIKey is one OpenAI API key; OpenAIAPIKeys a comma-separated
	// list of keys (of different organizations) to pool. Without any, only
	// the rules tier runs.
	OpenAIAPIKey  string   `env:"OPENAI_API_KEY"`
	OpenAIAPIKeys []string `env:"OPENAI_API_KEYS"`
	// OpenAIBaseURL is the API's base URL (any OpenAI-compatible server).
	OpenAIBaseURL string `env:"OPENAI_BASE_URL, default=https://api.openai.com/v1"`
	// OpenAIModel is the chat model.
	OpenAIModel string `env:"OPENAI_MODEL, default=gpt-4o-mini"`
	// OpenAIRPM and OpenAITPM are each key's requests and tokens per minute
	// for OpenAIModel (the organization's limits). Unset (0), the limiter
	// learns them from the x-ratelimit-limit-* headers of the first answer;
	// set, the lower of them and the advertised limits applies.
	OpenAIRPM int `env:"OPENAI_RPM"`
	OpenAITPM int `env:"OPENAI_TPM"`
	// OpenAIBurst is how many seconds of the limits the limiter may spend
	// at once: less than the shortest window OpenAI may enforce a
	// per-minute limit over (one second).
	OpenAIBurst time.Duration `env:"OPENAI_BURST, default=500ms"`
	// OpenAIEscalateModel, when set, is asked again about mail that
	// OpenAIModel puts in one of OpenAIEscalateCategories; its verdict
	// wins. Its limits are learned from its answers.
	OpenAIEscalateModel      string   `env:"OPENAI_ESCALATE_MODEL"`
	OpenAIEscalateCategories []string `env:"OPENAI_ESCALATE_CATEGORIES, default=important"`
	// OpenAIMaxCompletionTokens caps each answer.
	OpenAIMaxCompletionTokens int `env:"OPENAI_MAX_COMPLETION_TOKENS, default=120"`
	// OpenAIMaxBodyTokens bounds the mail text sent.
	OpenAIMaxBodyTokens int `env:"OPENAI_MAX_BODY_TOKENS, default=1500"`
	// OpenAITimeout bounds one request.
	OpenAITimeout time.Duration `env:"OPENAI_TIMEOUT, default=30s"`
	// OpenAIMaxAttempts is how many failed attempts (5xx, timeouts, broken
	// answers; never 429s) a message gets before it is dead-lettered.
	OpenAIMaxAttempts int `env:"OPENAI_MAX_ATTEMPTS, default=4"`

	// DailyBudgetUSD caps the model's spend per UTC day; CreditUSD caps
	// its total spend (the credit there is). 0 means no cap. Past either,
	// messages wait and the rules tier keeps working.
	DailyBudgetUSD float64 `env:"MAILROOM_DAILY_BUDGET_USD, default=0"`
	CreditUSD      float64 `env:"MAILROOM_CREDIT_USD, default=0"`
	// CacheTTL is how long a verdict is reused for the same content.
	CacheTTL time.Duration `env:"MAILROOM_CLASSIFIER_CACHE_TTL, default=720h"`
	// ReplicaID names this replica among those sharing the keys (default:
	// host name and process id).
	ReplicaID string `env:"MAILROOM_REPLICA_ID"`
}

func (c *Config) defaults() {
	if c.NATSURL == "" {
		c.NATSURL = nats.DefaultURL
	}
	if c.StreamReplicas <= 0 {
		c.StreamReplicas = 1
	}
	if c.AuthAddr == "" {
		c.AuthAddr = "127.0.0.1:9101"
	}
	if c.OpenAIBaseURL == "" {
		c.OpenAIBaseURL = "https://api.openai.com/v1"
	}
	if c.OpenAIModel == "" {
		c.OpenAIModel = "gpt-4o-mini"
	}
	if len(c.OpenAIEscalateCategories) == 0 {
		c.OpenAIEscalateCategories = []string{classify.Important}
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1000
	}
	if c.Workers <= 0 {
		c.Workers = 8
		if len(c.APIKeys()) > 0 {
			c.Workers = c.MaxAckPending
		}
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = 30 * 24 * time.Hour
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		c.ReplicaID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	// AckWait and MaxDeliver default in the consumer; the OpenAI tuning in llm.
}

// APIKeys returns the configured OpenAI keys: OPENAI_API_KEYS then
// OPENAI_API_KEY, trimmed, without blanks and repeats.
func (c Config) APIKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, k := range append(append([]string(nil), c.OpenAIAPIKeys...), c.OpenAIAPIKey) {
		k = strings.TrimSpace(k)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
	}
	return keys
}

// maskedKeys shows each key as its last four characters, enough to tell
// keys apart in logs without revealing them.
func (c Config) maskedKeys() []string {
	keys := c.APIKeys()
	masked := make([]string, len(keys))
	for i, k := range keys {
		if len(k) < 12 {
			masked[i] = "…"
		} else {
			masked[i] = "…" + k[len(k)-4:]
		}
	}
	return masked
}

// LogValue is the config for logging, keys masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("nats_url", redact.URL(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.String("auth_addr", c.AuthAddr),
		slog.String("database_url", redact.URL(c.DatabaseURL)),
		slog.Any("transport", c.Transport),
		slog.Int("workers", c.Workers),
		slog.Int("max_ack_pending", c.MaxAckPending),
		slog.String("ack_wait", c.AckWait.String()),
		slog.Int("max_deliver", c.MaxDeliver),
		slog.Any("openai_keys", c.maskedKeys()),
		slog.String("openai_base_url", c.OpenAIBaseURL),
		slog.String("openai_model", c.OpenAIModel),
		slog.Int("openai_rpm", c.OpenAIRPM),
		slog.Int("openai_tpm", c.OpenAITPM),
		slog.String("openai_escalate_model", c.OpenAIEscalateModel),
		slog.String("openai_burst", c.OpenAIBurst.String()),
		slog.Float64("daily_budget_usd", c.DailyBudgetUSD),
		slog.Float64("credit_usd", c.CreditUSD),
		slog.String("replica_id", c.ReplicaID),
	)
}

// lanes are the lanes that have a consumer each, most urgent first.
var lanes = []classify.Lane{classify.LaneInteractive, classify.LaneLive, classify.LaneBackfill}

// Service is a running classifier.
type Service struct {
	cfg        Config
	logger     *slog.Logger
	db         *sqldb.DB
	repo       *sqlrepo.Repo
	nc         *nats.Conn
	authConn   *grpc.ClientConn
	server     *grpcserver.Server
	consumers  []*consumer.Consumer
	limiter    *limiter.Limiter
	membership *replicas.Membership

	closeOnce sync.Once
}

// New opens the database, connects to NATS, ensures the streams and the
// durable consumers, and builds the pipeline and the gRPC server.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	cfg.defaults()
	if logger == nil {
		logger = slog.Default()
	}
	s := &Service{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if cfg.DatabaseURL == "" {
		return nil, errors.New("classifier.New: DATABASE_URL is required")
	}
	if s.db, err = sqlrepo.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	s.repo = sqlrepo.New(s.db.SQL)

	nc, js, err := eventbus.Connect(cfg.NATSURL, "mailroom-classifier")
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	s.nc = nc
	topo := eventbus.Topology{Prefix: cfg.NATSPrefix, Replicas: cfg.StreamReplicas}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}

	taxonomies := classify.NewTaxonomies(s.repo, 30*time.Second)
	tiers := []classify.Tier{rules.Tier{}}
	var limits classify.LimitsReporter = classify.RulesOnly{}
	var guard *budget.Guard
	if keys := cfg.APIKeys(); len(keys) > 0 {
		var kcs []limiter.KeyConfig
		var lks []llm.Key
		masked := cfg.maskedKeys()
		for i, k := range keys {
			id := fmt.Sprintf("key-%d (%s)", i+1, masked[i])
			kc := limiter.KeyConfig{ID: id, Models: map[string]limiter.Limits{
				cfg.OpenAIModel: {RPM: float64(cfg.OpenAIRPM), TPM: float64(cfg.OpenAITPM)},
			}}
			kcs = append(kcs, kc)
			lks = append(lks, llm.Key{ID: id, Secret: k})
		}
		models := []string{cfg.OpenAIModel}
		if cfg.OpenAIEscalateModel != "" && cfg.OpenAIEscalateModel != cfg.OpenAIModel {
			models = append(models, cfg.OpenAIEscalateModel)
		}
		s.limiter = limiter.New(limiter.Config{Keys: kcs, Burst: cfg.OpenAIBurst, Models: models})
		guard = budget.New(s.repo, budget.Config{
			DailyMicros:  int64(cfg.DailyBudgetUSD * 1e6),
			CreditMicros: int64(cfg.CreditUSD * 1e6),
			Logger:       logger,
		})
		model, err := llm.New(llm.Config{
			BaseURL:             cfg.OpenAIBaseURL,
			Model:               cfg.OpenAIModel,
			EscalateModel:       cfg.OpenAIEscalateModel,
			EscalateCategories:  cfg.OpenAIEscalateCategories,
			Keys:                lks,
			Limiter:             s.limiter,
			Budget:              guard,
			MaxCompletionTokens: cfg.OpenAIMaxCompletionTokens,
			MaxBodyTokens:       cfg.OpenAIMaxBodyTokens,
			RequestTimeout:      cfg.OpenAITimeout,
			MaxAttempts:         cfg.OpenAIMaxAttempts,
			Logger:              logger,
		})
		if err != nil {
			return nil, fmt.Errorf("classifier.New: %w", err)
		}
		tiers = append(tiers, classify.CachedTier{Cache: s.repo, Next: model})
		s.membership, err = replicas.Join(ctx, js, replicas.Config{
			Bucket:   topo.BucketName("CLASSIFIER_REPLICAS"),
			ID:       cfg.ReplicaID,
			Replicas: cfg.StreamReplicas,
			OnChange: func(n int) { s.limiter.SetShare(1 / float64(n)) },
			Logger:   logger,
		})
		if err != nil {
			return nil, fmt.Errorf("classifier.New: %w", err)
		}
		limits = &limitsReporter{l: s.limiter, budget: guard, membership: s.membership, model: cfg.OpenAIModel}
		logger.Info("classifier mode: rules, then the language model under the limiter", "mode", "llm",
			"openai_keys", masked, "openai_model", cfg.OpenAIModel, "rpm", cfg.OpenAIRPM, "tpm", cfg.OpenAITPM)
	} else {
		logger.Info("classifier mode: rules only (no OPENAI_API_KEY or OPENAI_API_KEYS)", "mode", "rules")
	}
	service := &classify.Service{Taxonomies: taxonomies, Pipeline: classify.NewPipeline(tiers...)}

	// The skeleton's single consumer for every lane gives way to one per lane.
	_ = js.DeleteConsumer(ctx, topo.ReceivedStreamName(), "classifier")
	for _, lane := range lanes {
		c := consumer.New(js, consumer.Config{
			Topology:      topo,
			Lane:          string(lane),
			Workers:       cfg.Workers,
			AckWait:       cfg.AckWait,
			MaxDeliver:    cfg.MaxDeliver,
			MaxAckPending: cfg.MaxAckPending,
		}, service, logger)
		if _, err := c.Ensure(ctx); err != nil {
			return nil, fmt.Errorf("classifier.New: %w", err)
		}
		s.consumers = append(s.consumers, c)
	}

	dead := deadletters.New(js, topo)
	serverCreds, err := cfg.Transport.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	clientCreds, err := cfg.Transport.ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	if s.authConn, err = grpcconn.Dial(cfg.AuthAddr, grpcconn.WithCredentials(clientCreds)); err != nil {
		return nil, fmt.Errorf("classifier.New: auth: %w", err)
	}
	guardAuth := authn.NewGuard(authv1.NewAuthServiceClient(s.authConn))
	s.server = grpcserver.New(grpcserver.Options{
		Creds:  serverCreds,
		Logger: logger,
		Unary:  []grpc.UnaryServerInterceptor{guardAuth.Unary()},
		Stream: []grpc.StreamServerInterceptor{guardAuth.Stream()},
	})
	classifierv1.RegisterClassifierServiceServer(s.server.GRPC(), grpcapi.New(grpcapi.Deps{
		Classifier:  service,
		Limits:      limits,
		Taxonomies:  taxonomies,
		DeadLetters: dead,
		Purge: func(ctx context.Context, user string) (map[string]int64, error) {
			tax, cached, err := s.repo.PurgeUser(ctx, user)
			if err != nil {
				return nil, err
			}
			taxonomies.Forget(user)
			letters, err := dead.Purge(ctx, user)
			if err != nil {
				return nil, err
			}
			return map[string]int64{"taxonomies": tax, "cache_entries": cached, "dead_letters": letters}, nil
		},
	}))
	return s, nil
}

// Run serves gRPC on lis and consumes received mail until ctx is done, then
// drains both. If one part stops with an error, the others are stopped too
// and the error returned.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("classifier: %s: %w", name, err))
				mu.Unlock()
			}
			cancel()
		}()
	}
	run("grpc", func(ctx context.Context) error { return s.server.Serve(ctx, lis) })
	for _, c := range s.consumers {
		run("consumer", c.Run)
	}
	if s.membership != nil {
		run("replicas", func(ctx context.Context) error { s.membership.Run(ctx); return nil })
	}
	run("cache expiry", s.expireCache)
	wg.Wait()
	return errors.Join(errs...)
}

// expireCache deletes old cached verdicts once an hour.
func (s *Service) expireCache(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := s.repo.ExpireCache(ctx, time.Now().Add(-s.cfg.CacheTTL)); err != nil {
				s.logger.Warn("expiring cached verdicts failed", "error", err.Error())
			} else if n > 0 {
				s.logger.Info("expired cached verdicts", "count", n)
			}
		}
	}
}

// Close releases the database, the NATS connection and the connection to auth.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.authConn != nil {
			err = s.authConn.Close()
		}
		if s.nc != nil {
			s.nc.Close()
		}
		if s.db != nil {
			err = errors.Join(err, s.db.Close())
		}
	})
	return err
}

// limitsReporter reports the limiter, the replicas and the budget.
type limitsReporter struct {
	l          *limiter.Limiter
	budget     *budget.Guard
	membership *replicas.Membership
	model      string
}

func (r *limitsReporter) Limits(ctx context.Context) classify.Limits {
	st := r.l.Status()
	out := classify.Limits{Model: r.model, Replicas: int(1/st.Share + 0.5)}
	for _, k := range st.Keys {
		out.Keys = append(out.Keys, classify.KeyLimits{
			Key:                   k.ID,
			Model:                 k.Model,
			Configured:            classify.RateLimits{RequestsPerMinute: k.Configured.RPM, TokensPerMinute: k.Configured.TPM},
			Advertised:            classify.RateLimits{RequestsPerMinute: k.Advertised.RPM, TokensPerMinute: k.Advertised.TPM},
			LimitSource:           k.Source,
			Ceiling:               k.Ceiling,
			RequestsPerMinute:     k.RequestsPerMinute,
			TokensPerMinute:       k.TokensPerMinute,
			RequestsAvailable:     k.RequestsAvailable,
			TokensAvailable:       k.TokensAvailable,
			InFlight:              int64(k.InFlight),
			RateLimitedLastMinute: k.RateLimitedLastMinute,
			RetriesLastMinute:     k.RetriesLastMinute,
			FrozenSeconds:         k.Frozen.Seconds(),
		})
	}
	for _, lane := range lanes {
		out.Lanes = append(out.Lanes, classify.LaneQueue{Lane: lane, Waiting: int64(st.Waiting[llm.LimiterLane(lane)])})
	}
	b := r.budget.Status(ctx)
	out.Budget = classify.BudgetStatus{DailyMicros: b.DailyMicros, SpentTodayMicros: b.SpentTodayMicros, CreditRemainingMicros: b.CreditRemainingMicros, Exhausted: b.Exhausted}
	return out
}

// Migrate applies the classifier service's embedded migrations to the
// database that databaseURL names, under a lock on Postgres, as New does at
// start (`mailroom migrate` runs it alone).
func Migrate(ctx context.Context, databaseURL string) error {
	db, err := sqldb.Open(ctx, databaseURL, sqlrepo.Migrations())
	if err != nil {
		return fmt.Errorf("classifier: %w", err)
	}
	return db.Close()
}
