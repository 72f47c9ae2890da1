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
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.opentelemetry.io/otel/metric"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/breaker"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/classifier/internal/batch"
	"mailroom.dev/services/classifier/internal/batch/batchevents"
	"mailroom.dev/services/classifier/internal/budget"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/grpcapi"
	"mailroom.dev/services/classifier/internal/jetstream/consumer"
	"mailroom.dev/services/classifier/internal/jetstream/deadletters"
	"mailroom.dev/services/classifier/internal/learned"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
	"mailroom.dev/services/classifier/internal/pricing"
	"mailroom.dev/services/classifier/internal/replicas"
	"mailroom.dev/services/classifier/internal/rules"
	"mailroom.dev/services/classifier/internal/sampler"
	"mailroom.dev/services/classifier/internal/sqlrepo"
)

// Config configures the service; cmd/classifier fills it from the
// environment, and code that builds one (mailroom dev, tests) decodes it
// with config.Load or config.Defaults, so the tags hold every default.
type Config struct {
	// Config is what every service has: addresses, database (taxonomies,
	// the verdict cache and the spend), transport.
	service.Config
	// NATS is the NATS server with JetStream, and the streams' naming.
	NATS service.NATS

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
	// OpenAIBreakerThreshold is how many failures of the API in a row
	// (5xx, timeouts, no connection, a refused key) open the circuit
	// breaker: then every message waits, without using up its attempts or
	// deliveries, while one request at a time probes the API (after 1 s,
	// then twice as long after each failed probe, up to 30 s). Keep it
	// below OPENAI_MAX_ATTEMPTS, so that a lone mail in an outage is held
	// rather than given up on.
	OpenAIBreakerThreshold int `env:"OPENAI_BREAKER_THRESHOLD, default=3"`

	// DailyBudgetUSD caps the model's spend per UTC day; CreditUSD caps
	// its total spend (the credit there is). 0 means no cap. Past either,
	// messages wait and the rules tier keeps working.
	DailyBudgetUSD float64 `env:"MAILROOM_DAILY_BUDGET_USD, default=0"`
	CreditUSD      float64 `env:"MAILROOM_CREDIT_USD, default=0"`
	// OpenAIPrices extends or overrides the built-in price table:
	// "MODEL=INPUT,CACHED_INPUT,OUTPUT[,BATCH_DISCOUNT];…" in US dollars per
	// million tokens (or the JSON of OpenAIPricesFile). OpenAIPricesFile is
	// a JSON file {"MODEL": {"input": …, "cached_input": …, "output": …,
	// "batch_discount": …}}; OPENAI_PRICES wins over it. With a budget set,
	// every model in use must be priced or the service does not start.
	OpenAIPrices     string `env:"OPENAI_PRICES"`
	OpenAIPricesFile string `env:"OPENAI_PRICES_FILE"`
	// OpenAIBatch is "auto" (backfill mail goes through the Batch API, at
	// half price, when at least OpenAIBatchThreshold backfill mails gather
	// within OpenAIBatchWindow) or "off". Batches are polled every
	// OpenAIBatchPoll and keep the model's enqueued tokens under
	// OpenAIBatchEnqueuedTokens.
	OpenAIBatch               string        `env:"OPENAI_BATCH, default=auto"`
	OpenAIBatchThreshold      int           `env:"OPENAI_BATCH_THRESHOLD, default=200"`
	OpenAIBatchWindow         time.Duration `env:"OPENAI_BATCH_WINDOW, default=2s"`
	OpenAIBatchPoll           time.Duration `env:"OPENAI_BATCH_POLL, default=30s"`
	OpenAIBatchEnqueuedTokens int64         `env:"OPENAI_BATCH_ENQUEUED_TOKENS, default=2000000"`
	// RulesTier and VerdictCache turn the rules tier and the verdict cache
	// on (the default); off, every mail goes to the model (a benchmark's
	// baseline: the old way).
	RulesTier    bool `env:"MAILROOM_RULES_TIER, default=true"`
	VerdictCache bool `env:"MAILROOM_VERDICT_CACHE, default=true"`
	// LearnSenders turns on learned senders: after LearnThreshold confident
	// (≥ LearnMinConfidence) model verdicts in a row put a sender's mail in
	// one category, later mail from it is classified from that record
	// without the model, except a LearnSampleRate sample that checks it.
	// Corrections are learned either way.
	LearnSenders       bool    `env:"MAILROOM_LEARN_SENDERS, default=true"`
	LearnThreshold     int     `env:"MAILROOM_LEARN_THRESHOLD, default=3"`
	LearnMinConfidence float64 `env:"MAILROOM_LEARN_MIN_CONFIDENCE, default=0.7"`
	LearnSampleRate    float64 `env:"MAILROOM_LEARN_SAMPLE_RATE, default=0.05"`
	// QuotaModelTokensPerDay and QuotaMailsPerDay are each user's daily
	// quotas unless an admin set the user's own (UpdateQuota): model tokens
	// (prompt and completion) and mails classified per UTC day; -1 is no
	// limit. Past one, Classify answers RESOURCE_EXHAUSTED and the user's
	// imported and synced mail waits in the stream until midnight UTC.
	QuotaModelTokensPerDay int64 `env:"MAILROOM_QUOTA_MODEL_TOKENS_PER_DAY, default=2000000"`
	QuotaMailsPerDay       int64 `env:"MAILROOM_QUOTA_MAILS_PER_DAY, default=5000"`
	// QuotaClock is the quotas' clock (default time.Now): tests move it
	// close to midnight UTC. Never read from the environment.
	QuotaClock func() time.Time
	// CacheTTL is how long a verdict is reused for the same content.
	CacheTTL time.Duration `env:"MAILROOM_CLASSIFIER_CACHE_TTL, default=720h"`
	// ReplicaID names this replica among those sharing the keys (default:
	// host name and process id).
	ReplicaID string `env:"MAILROOM_REPLICA_ID"`
	// LimitsHistoryInterval is how often the limiter's state is kept for
	// GetLimits' history, which holds 360 of them (an hour at 10 s).
	LimitsHistoryInterval time.Duration `env:"MAILROOM_LIMITS_HISTORY_INTERVAL, default=10s"`
}

// Prices returns the price table: the built-in defaults, extended by
// OPENAI_PRICES_FILE, then by OPENAI_PRICES.
func (c Config) Prices() (pricing.Table, error) {
	return pricing.Load(c.OpenAIPrices, c.OpenAIPricesFile, os.ReadFile)
}

// models returns the models the language model tier calls, each once.
func (c Config) models() []string {
	models := []string{c.OpenAIModel}
	if c.OpenAIEscalateModel != "" && c.OpenAIEscalateModel != c.OpenAIModel {
		models = append(models, c.OpenAIEscalateModel)
	}
	return models
}

// CheckPrices returns the price table, or an error saying why the service
// must not start: a price that does not parse, or a budget (daily or
// credit) with a model in use that the table does not price — its calls
// would count as $0 and the budget would never stop them.
func (c Config) CheckPrices() (pricing.Table, error) {
	prices, err := c.Prices()
	if err != nil {
		return nil, err
	}
	if len(c.APIKeys()) == 0 || (c.DailyBudgetUSD <= 0 && c.CreditUSD <= 0) {
		return prices, nil
	}
	if missing := prices.Missing(c.models()...); len(missing) > 0 {
		var which []string
		for _, m := range missing {
			v := "OPENAI_MODEL"
			if m != c.OpenAIModel {
				v = "OPENAI_ESCALATE_MODEL"
			}
			which = append(which, fmt.Sprintf("%s (%s)", m, v))
		}
		return nil, fmt.Errorf("a budget is set (MAILROOM_DAILY_BUDGET_USD=%g, MAILROOM_CREDIT_USD=%g) but no price is known for %s: "+
			"its spend would count as $0 and the budget would never stop it; add it to OPENAI_PRICES "+
			"(\"%s=INPUT,CACHED_INPUT,OUTPUT[,BATCH_DISCOUNT]\" in US dollars per million tokens) or OPENAI_PRICES_FILE; priced models: %s",
			c.DailyBudgetUSD, c.CreditUSD, strings.Join(which, " and "), missing[0], strings.Join(prices.Models(), ", "))
	}
	return prices, nil
}

// workers is Workers, or its default: MaxAckPending with the language
// model on, 8 with the rules alone.
func (c Config) workers() int {
	switch {
	case c.Workers > 0:
		return c.Workers
	case len(c.APIKeys()) > 0:
		return c.MaxAckPending
	}
	return 8
}

// replicaID is ReplicaID, or the host name and process id.
func (c Config) replicaID() string {
	if c.ReplicaID != "" {
		return c.ReplicaID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
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
		slog.Any("service", c.Config),
		slog.Any("nats", c.NATS),
		slog.Int("workers", c.workers()),
		slog.Int("max_ack_pending", c.MaxAckPending),
		slog.Int64("quota_model_tokens_per_day", c.QuotaModelTokensPerDay),
		slog.Int64("quota_mails_per_day", c.QuotaMailsPerDay),
		slog.String("ack_wait", c.AckWait.String()),
		slog.Int("max_deliver", c.MaxDeliver),
		slog.Int("openai_max_attempts", c.OpenAIMaxAttempts),
		slog.Int("openai_breaker_threshold", c.OpenAIBreakerThreshold),
		slog.Any("openai_keys", c.maskedKeys()),
		slog.String("openai_base_url", c.OpenAIBaseURL),
		slog.String("openai_model", c.OpenAIModel),
		slog.Int("openai_rpm", c.OpenAIRPM),
		slog.Int("openai_tpm", c.OpenAITPM),
		slog.String("openai_escalate_model", c.OpenAIEscalateModel),
		slog.String("openai_burst", c.OpenAIBurst.String()),
		slog.Float64("daily_budget_usd", c.DailyBudgetUSD),
		slog.Float64("credit_usd", c.CreditUSD),
		slog.String("openai_prices", c.OpenAIPrices),
		slog.String("openai_prices_file", c.OpenAIPricesFile),
		slog.String("replica_id", c.replicaID()),
		slog.String("limits_history_interval", c.LimitsHistoryInterval.String()),
		slog.String("openai_batch", c.OpenAIBatch),
		slog.Int("openai_batch_threshold", c.OpenAIBatchThreshold),
		slog.Bool("rules_tier", c.RulesTier),
		slog.Bool("verdict_cache", c.VerdictCache),
		slog.Bool("learn_senders", c.LearnSenders),
		slog.Int("learn_threshold", c.LearnThreshold),
		slog.Float64("learn_min_confidence", c.LearnMinConfidence),
		slog.Float64("learn_sample_rate", c.LearnSampleRate),
	)
}

// lanes are the lanes that have a consumer each, most urgent first.
var lanes = []classify.Lane{classify.LaneInteractive, classify.LaneLive, classify.LaneBackfill}

// Service is a running classifier. Run and Close are the skeleton's.
type Service struct {
	*service.Base
}

// New opens the database, connects to NATS, ensures the streams and the
// durable consumers, and builds the pipeline and the gRPC server.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Service, err error) {
	if cfg.OpenAIBatch != "auto" && cfg.OpenAIBatch != "off" {
		return nil, fmt.Errorf("classifier.New: OPENAI_BATCH is %q: want auto or off", cfg.OpenAIBatch)
	}
	prices, err := cfg.CheckPrices()
	if err != nil {
		return nil, fmt.Errorf("classifier.New: prices: %w", err)
	}
	base, err := service.New(service.Classifier, cfg.Config, logger)
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	s := &Service{Base: base}
	defer s.CloseOnError(&err)
	db, err := sqlrepo.Open(ctx, cfg.DatabaseURL, s.DBOptions()...)
	if err != nil {
		return nil, fmt.Errorf("classifier.New: open database: %w", err)
	}
	s.OnClose(db.Close)
	s.CheckDB(db)
	repo := sqlrepo.New(db.SQL)
	js, topo, err := s.ConnectNATS(ctx, cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	tiers, limits, err := s.modelTier(ctx, cfg, prices, repo, js, topo)
	if err != nil {
		return nil, fmt.Errorf("classifier.New: language model: %w", err)
	}
	taxonomies := classify.NewTaxonomies(repo, 30*time.Second)
	// The learned senders sit between the rules and the paid tiers; with
	// the rules alone they still answer from corrections.
	threshold := cfg.LearnThreshold
	if !cfg.LearnSenders {
		threshold = math.MaxInt // nothing the model says is learned; corrections still are
	}
	var paid classify.Tier = classify.TierFunc(func(context.Context, classify.Request) (classify.Verdict, error) {
		return classify.Verdict{}, nil // rules only: abstain
	})
	if len(tiers) > 1 {
		paid = tiers[1]
	}
	learn := learned.New(repo, paid, learned.Config{
		Threshold: threshold, MinConfidence: cfg.LearnMinConfidence, SampleRate: cfg.LearnSampleRate,
	})
	tiers = []classify.Tier{learn}
	if cfg.RulesTier {
		tiers = []classify.Tier{rules.Tier{}, learn}
	}
	quotas := &classify.Quotas{Store: repo, Now: cfg.QuotaClock, Defaults: classify.QuotaLimits{
		ModelTokensPerDay: cfg.QuotaModelTokensPerDay, MailsPerDay: cfg.QuotaMailsPerDay}}
	pipeline := &classify.Service{Taxonomies: taxonomies, Pipeline: classify.NewPipeline(tiers...), Quotas: quotas}
	var lags []consumer.Lag
	// One breaker for the database and NATS, shared by the lanes.
	infra := breaker.New(breaker.Config{OnChange: func(open bool) {
		if open {
			s.Logger.Warn("classification failing for every mail (database or NATS): circuit breaker open, messages held")
		} else {
			s.Logger.Info("classification working again: circuit breaker closed")
		}
	}})
	for _, lane := range lanes {
		c := consumer.New(js, consumer.Config{Topology: topo, Lane: string(lane), Workers: cfg.workers(),
			AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending, Breaker: infra,
			Deleted: s.Revocations().Deleted}, pipeline, s.Logger)
		cons, err := c.Ensure(ctx)
		if err != nil {
			return nil, fmt.Errorf("classifier.New: %s consumer: %w", lane, err)
		}
		lags = append(lags, consumer.Lag{Stream: topo.ReceivedStreamName(), Consumer: cons.CachedInfo().Name})
		s.KeepConsumer(js, topo, c.Stream(), c.ConsumerConfig())
		s.Go(string(lane)+" consumer", c.Run)
	}
	// The consumers' lag and the dead letters waiting, read from JetStream
	// at each scrape.
	if err := s.register(consumer.RegisterMetrics(nil, js, lags, topo.DeadLetterStreamName())); err != nil {
		return nil, fmt.Errorf("classifier.New: consumer metrics: %w", err)
	}
	// A mail whose last delivery failed unseen (a crash, AckWait) is
	// named by the server's max-deliveries advisory: it goes to the dead
	// letters too.
	advisories := deadletters.NewAdvisories(js, topo, s.Logger)
	advisories.Counted = consumer.DeadLettered(nil, consumer.ReasonUnacknowledged)
	if _, err := js.CreateOrUpdateConsumer(ctx, topo.AdvisoryStreamName(), advisories.ConsumerConfig()); err != nil {
		return nil, fmt.Errorf("classifier.New: advisory consumer: %w", err)
	}
	s.KeepConsumer(js, topo, topo.AdvisoryStreamName(), advisories.ConsumerConfig())
	s.Go("max-deliveries advisories", advisories.Run)
	s.Go("cache expiry", func(ctx context.Context) error {
		return service.Every(ctx, time.Hour, func(ctx context.Context) {
			expireCache(ctx, s.Logger, repo, cfg.CacheTTL)
			// Yesterday's use stays visible a day; older goes.
			if _, err := repo.ExpireQuotaUse(ctx, time.Now().UTC().Add(-48*time.Hour).Format(time.DateOnly)); err != nil {
				s.Logger.Warn("expiring quota use failed", "error", err.Error())
			}
		})
	})
	// The last hour of the limiter, the lanes and the backlog, every 10 s,
	// for GetLimits' history (the console's charts).
	workBacklog := backlogOf(js, lags)
	samplerCfg := sampler.Config{Backlog: workBacklog, Interval: cfg.LimitsHistoryInterval}
	if lr, ok := limits.(*limitsReporter); ok {
		samplerCfg.Limiter = lr.l
	}
	history := sampler.New(samplerCfg)
	s.Go("limits history", history.Run)
	_, guard, err := s.DialAuth()
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	dead := deadletters.New(js, topo)
	classifierv1.RegisterClassifierServiceServer(s.Serve(guard, grpcserver.Options{}), grpcapi.New(grpcapi.Deps{
		Classifier:  pipeline,
		Limits:      limits,
		History:     history,
		Backlog:     workBacklog,
		Taxonomies:  taxonomies,
		Quotas:      quotas,
		DeadLetters: dead,
		Corrector:   corrector{learn: learn, taxonomies: taxonomies},
		Purge:       purgeUser(repo, taxonomies, dead),
	}))
	return s, nil
}

// corrector checks a correction against the user's taxonomy and records it.
type corrector struct {
	learn      *learned.Tier
	taxonomies *classify.Taxonomies
}

func (c corrector) Correct(ctx context.Context, corr learned.Correction) error {
	t, _, err := c.taxonomies.Get(ctx, corr.User)
	if err != nil {
		return fmt.Errorf("taxonomy of %s: %w", corr.User, err)
	}
	return c.learn.Correct(ctx, corr, t)
}

// purgeUser deletes a user's taxonomy, cached verdicts and dead letters.
func purgeUser(repo *sqlrepo.Repo, taxonomies *classify.Taxonomies, dead *deadletters.Store) func(context.Context, string) (map[string]int64, error) {
	return func(ctx context.Context, user string) (map[string]int64, error) {
		tax, cached, err := repo.PurgeUser(ctx, user)
		if err != nil {
			return nil, err
		}
		taxonomies.Forget(user)
		letters, err := dead.Purge(ctx, user)
		if err != nil {
			return nil, err
		}
		return map[string]int64{"taxonomies": tax, "cache_entries": cached, "dead_letters": letters}, nil
	}
}

// modelTier builds the tiers after the rules: without an OpenAI key none
// (the rules tier runs alone); with keys, the verdict cache in front of the
// language model under the limiter and the budget guard, the limits shared
// with the other replicas. It returns the tiers and what reports the limits.
func (s *Service) modelTier(ctx context.Context, cfg Config, prices pricing.Table, repo *sqlrepo.Repo, js jetstream.JetStream, topo eventbus.Topology) ([]classify.Tier, classify.LimitsReporter, error) {
	tiers := []classify.Tier{rules.Tier{}}
	keys := cfg.APIKeys()
	if len(keys) == 0 {
		s.Logger.Info("classifier mode: rules only (no OPENAI_API_KEY or OPENAI_API_KEYS)", "mode", "rules")
		return tiers, classify.RulesOnly{}, nil
	}
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
	models := cfg.models()
	if missing := prices.Missing(models...); len(missing) > 0 {
		s.Logger.Warn("no price is known for a model in use: its spend is recorded as $0 (no budget is set, so nothing stops it); add it to OPENAI_PRICES", "models", missing)
	}
	lim := limiter.New(limiter.Config{Keys: kcs, Burst: cfg.OpenAIBurst, Models: models})
	guard := budget.New(repo, budget.Config{
		DailyMicros:  int64(cfg.DailyBudgetUSD * 1e6),
		CreditMicros: int64(cfg.CreditUSD * 1e6),
		Logger:       s.Logger,
	})
	if err := s.register(limiter.RegisterMetrics(nil, lim)); err != nil {
		return nil, nil, fmt.Errorf("limiter metrics: %w", err)
	}
	if err := s.register(budget.RegisterMetrics(nil, guard)); err != nil {
		return nil, nil, fmt.Errorf("budget metrics: %w", err)
	}
	model, err := llm.New(llm.Config{
		BaseURL:             cfg.OpenAIBaseURL,
		Model:               cfg.OpenAIModel,
		EscalateModel:       cfg.OpenAIEscalateModel,
		EscalateCategories:  cfg.OpenAIEscalateCategories,
		Keys:                lks,
		Limiter:             lim,
		Budget:              guard,
		Prices:              prices,
		MaxCompletionTokens: cfg.OpenAIMaxCompletionTokens,
		MaxBodyTokens:       cfg.OpenAIMaxBodyTokens,
		RequestTimeout:      cfg.OpenAITimeout,
		MaxAttempts:         cfg.OpenAIMaxAttempts,
		Breaker: breaker.New(breaker.Config{Threshold: cfg.OpenAIBreakerThreshold, OnChange: func(open bool) {
			if open {
				s.Logger.Warn("language model API failing: circuit breaker open, messages held", "threshold", cfg.OpenAIBreakerThreshold)
			} else {
				s.Logger.Info("language model API answering again: circuit breaker closed")
			}
		}}),
		Logger: s.Logger,
	})
	if err != nil {
		return nil, nil, err
	}
	membership, err := replicas.Join(ctx, js, replicas.Config{
		Bucket:   topo.BucketName("CLASSIFIER_REPLICAS"),
		ID:       cfg.replicaID(),
		Replicas: cfg.NATS.StreamReplicas,
		OnChange: func(n int) { lim.SetShare(1 / float64(n)) },
		Logger:   s.Logger,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("join replicas: %w", err)
	}
	s.Go("replicas", func(ctx context.Context) error { membership.Run(ctx); return nil })
	s.Logger.Info("classifier mode: rules, then the language model under the limiter", "mode", "llm",
		"openai_keys", masked, "openai_model", cfg.OpenAIModel, "rpm", cfg.OpenAIRPM, "tpm", cfg.OpenAITPM)
	var (
		paid    classify.Tier = model
		batches *batch.Tier
	)
	if cfg.OpenAIBatch != "off" {
		// Batches go through the first key's organization; ingest hears
		// of the mail waiting in them (mail.batch).
		progress := batchevents.New(js, topo, s.Logger)
		s.OnClose(progress.Close)
		bt := batch.New(model, batch.Config{
			Mode:           cfg.OpenAIBatch,
			Threshold:      cfg.OpenAIBatchThreshold,
			Window:         cfg.OpenAIBatchWindow,
			Poll:           cfg.OpenAIBatchPoll,
			EnqueuedTokens: cfg.OpenAIBatchEnqueuedTokens,
			Client:         openai.NewClient(option.WithAPIKey(keys[0]), option.WithBaseURL(cfg.OpenAIBaseURL), option.WithMaxRetries(2)),
			Budget:         guard,
			Backlog:        backlog(js, topo.ReceivedStreamName(), "classifier-"+string(classify.LaneBackfill)),
			Ledger:         repo,
			Progress:       progress,
			Logger:         s.Logger,
		})
		s.OnClose(bt.Close)
		paid = bt
		batches = bt
	}
	if cfg.VerdictCache {
		paid = classify.CachedTier{Cache: repo, Next: paid}
	}
	tiers = append(tiers, paid)
	return tiers, &limitsReporter{l: lim, budget: guard, membership: membership, model: cfg.OpenAIModel, batches: batches}, nil
}

// backlog returns how many events wait undelivered for the durable
// consumer (0 when that cannot be read: the mail then counts alone).
func backlog(js jetstream.JetStream, stream, durable string) func(context.Context) int {
	return func(ctx context.Context) int {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			return 0
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0
		}
		return int(info.NumPending)
	}
}

// backlogOf returns what reads the mail waiting in the work stream: the
// lanes' consumers' pending (not yet delivered) and ack pending (delivered,
// not yet acknowledged) messages, added up.
func backlogOf(js jetstream.JetStream, lags []consumer.Lag) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int64
		for _, l := range lags {
			c, err := js.Consumer(ctx, l.Stream, l.Consumer)
			if err != nil {
				return 0, fmt.Errorf("consumer %s: %w", l.Consumer, err)
			}
			info, err := c.Info(ctx)
			if err != nil {
				return 0, fmt.Errorf("consumer %s: %w", l.Consumer, err)
			}
			n += int64(info.NumPending) + int64(info.NumAckPending)
		}
		return n, nil
	}
}

// register keeps the observable gauges' callbacks registered until Close.
func (s *Service) register(reg metric.Registration, err error) error {
	if err != nil {
		return err
	}
	s.OnClose(reg.Unregister)
	return nil
}

// expireCache deletes the cached verdicts older than ttl.
func expireCache(ctx context.Context, logger *slog.Logger, repo *sqlrepo.Repo, ttl time.Duration) {
	if n, err := repo.ExpireCache(ctx, time.Now().Add(-ttl)); err != nil {
		logger.Warn("expiring cached verdicts failed", "error", err.Error())
	} else if n > 0 {
		logger.Info("expired cached verdicts", "count", n)
	}
}

// limitsReporter reports the limiter, the replicas and the budget.
type limitsReporter struct {
	l          *limiter.Limiter
	budget     *budget.Guard
	membership *replicas.Membership
	model      string
	batches    *batch.Tier // nil with OPENAI_BATCH=off
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
		ll := llm.LimiterLane(lane)
		out.Lanes = append(out.Lanes, classify.LaneQueue{Lane: lane, Waiting: int64(st.Waiting[ll]), OldestWait: st.OldestWait[ll]})
	}
	if r.batches != nil {
		st := r.batches.Stats()
		out.Batches = classify.BatchQueue{Waiting: int64(st.Waiting), Batches: st.Batches, Answered: st.Answered, Realtime: st.Realtime}
	}
	b := r.budget.Status(ctx)
	out.Budget = classify.BudgetStatus{DailyMicros: b.DailyMicros, SpentTodayMicros: b.SpentTodayMicros, CreditRemainingMicros: b.CreditRemainingMicros, Exhausted: b.Exhausted}
	return out
}

// Migrate applies the classifier service's embedded migrations to the
// database that databaseURL names, under a lock on Postgres, as New does at
// start (`mailroom migrate` runs it alone).
func Migrate(ctx context.Context, databaseURL string) error {
	if err := sqldb.Migrate(ctx, databaseURL, sqlrepo.Migrations()); err != nil {
		return fmt.Errorf("classifier.Migrate: %w", err)
	}
	return nil
}
