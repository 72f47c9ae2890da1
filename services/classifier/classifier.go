// Package classifier builds and runs the classifier service: a durable
// JetStream consumer that classifies every received mail and publishes the
// verdict, and the ClassifierService gRPC API (ad-hoc Classify, GetLimits).
//
// This release runs the rules tier alone. The OpenAI settings are read and
// reported, and the language-model tier and its limiter slot into the
// pipeline that New builds.
package classifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/grpcapi"
	"mailroom.dev/services/classifier/internal/jetstream/consumer"
	"mailroom.dev/services/classifier/internal/rules"
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

	// Workers bounds how many received events are classified at once.
	Workers int `env:"MAILROOM_CLASSIFIER_WORKERS, default=8"`
	// MaxAckPending bounds the events the consumer holds unacknowledged.
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
	// (the organization's limits for the model; defaults are OpenAI's usage
	// tier 1 for gpt-4o-mini, so an unconfigured run stays under them).
	OpenAIRPM int `env:"OPENAI_RPM, default=500"`
	OpenAITPM int `env:"OPENAI_TPM, default=200000"`
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
	if c.OpenAIRPM <= 0 {
		c.OpenAIRPM = 500
	}
	if c.OpenAITPM <= 0 {
		c.OpenAITPM = 200000
	}
	// Workers, MaxAckPending, AckWait and MaxDeliver default in the consumer.
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
		slog.String("nats_url", redactURL(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.String("auth_addr", c.AuthAddr),
		slog.Int("workers", c.Workers),
		slog.Int("max_ack_pending", c.MaxAckPending),
		slog.String("ack_wait", c.AckWait.String()),
		slog.Int("max_deliver", c.MaxDeliver),
		slog.Any("openai_keys", c.maskedKeys()),
		slog.String("openai_base_url", c.OpenAIBaseURL),
		slog.String("openai_model", c.OpenAIModel),
		slog.Int("openai_rpm", c.OpenAIRPM),
		slog.Int("openai_tpm", c.OpenAITPM),
	)
}

// redactURL hides a password in a URL such as nats://user:pass@host.
func redactURL(s string) string {
	at := strings.LastIndexByte(s, '@')
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	return s[:scheme+3] + "…@" + s[at+1:]
}

// Service is a running classifier.
type Service struct {
	cfg      Config
	logger   *slog.Logger
	nc       *nats.Conn
	authConn *grpc.ClientConn
	server   *grpcserver.Server
	consumer *consumer.Consumer

	closeOnce sync.Once
}

// New connects to NATS, ensures the streams and the durable consumer, and
// builds the gRPC server. It needs no database.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Service, error) {
	cfg.defaults()
	s := &Service{cfg: cfg, logger: logger}

	nc, js, err := eventbus.Connect(cfg.NATSURL, "mailroom-classifier")
	if err != nil {
		return nil, fmt.Errorf("classifier.New: %w", err)
	}
	s.nc = nc
	topo := eventbus.Topology{Prefix: cfg.NATSPrefix, Replicas: cfg.StreamReplicas}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		s.Close()
		return nil, fmt.Errorf("classifier.New: %w", err)
	}

	// The pipeline: rules now; the content-hash cache goes before them and
	// the language model (under the limiter) after them.
	pipeline := classify.NewPipeline(rules.Tier{})
	var limits classify.LimitsReporter = classify.RulesOnly{}
	if keys := cfg.maskedKeys(); len(keys) > 0 {
		logger.Warn("classifier mode: rules only; OpenAI keys are configured but the language-model tier is not in this release",
			"mode", "rules", "openai_keys", keys, "openai_model", cfg.OpenAIModel)
	} else {
		logger.Info("classifier mode: rules only (no OPENAI_API_KEY or OPENAI_API_KEYS)", "mode", "rules")
	}

	s.consumer = consumer.New(js, consumer.Config{
		Topology:      topo,
		Workers:       cfg.Workers,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
	}, pipeline, logger)
	if _, err := s.consumer.Ensure(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("classifier.New: %w", err)
	}

	guard, authConn, err := authn.Remote(cfg.AuthAddr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("classifier.New: auth: %w", err)
	}
	s.authConn = authConn
	s.server = grpcserver.New(grpcserver.Options{
		Logger: logger,
		Unary:  []grpc.UnaryServerInterceptor{guard.Unary()},
		Stream: []grpc.StreamServerInterceptor{guard.Stream()},
	})
	classifierv1.RegisterClassifierServiceServer(s.server.GRPC(), grpcapi.New(pipeline, limits))
	return s, nil
}

// Run serves gRPC on lis and consumes received mail until ctx is done, then
// drains both. If either stops with an error, the other is stopped too and
// the error returned.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() {
		err := s.server.Serve(ctx, lis)
		if err != nil {
			err = fmt.Errorf("classifier: %w", err)
		}
		cancel()
		errc <- err
	}()
	go func() {
		err := s.consumer.Run(ctx)
		if err != nil {
			err = fmt.Errorf("classifier: %w", err)
		}
		cancel()
		errc <- err
	}()
	return errors.Join(<-errc, <-errc)
}

// Close releases the NATS connection and the connection to auth.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.authConn != nil {
			err = s.authConn.Close()
		}
		if s.nc != nil {
			s.nc.Close()
		}
	})
	return err
}
