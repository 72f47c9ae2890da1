// Package gateway is mailroom's REST front door: a grpc-gateway mux for
// every public RPC of auth, ingest, classifier and store, behind an
// authentication middleware that trades the caller's API key for an
// identity token, plus /openapi.json, /healthz, /readyz, /metrics, the
// Gmail OAuth callback and the web console (/console/, package console). Errors are google.rpc.Status JSON with grpc-gateway's
// mapping of gRPC codes to HTTP statuses.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"mailroom.dev/gateway/console"
	"mailroom.dev/gateway/internal/reqdecode"
	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/transport"
)

// Config configures the gateway; cmd/gateway fills it from the
// environment, and code that builds one decodes it with config.Load or
// config.Defaults, so the tags hold every default.
type Config struct {
	// HTTPAddr is where cmd/gateway listens.
	HTTPAddr string `env:"MAILROOM_HTTP_ADDR, default=127.0.0.1:8080"`
	// MetricsAddr, when set, is an internal address where /metrics is
	// served to anyone who reaches it (Prometheus); on HTTPAddr /metrics
	// answers admins only.
	MetricsAddr string `env:"MAILROOM_METRICS_ADDR"`
	// Addrs are the services' gRPC addresses.
	Addrs grpcconn.Addrs
	// MaxMessageBytes is ingest's limit on one raw message (the same
	// variable as ingest's). Unless MaxBodyBytes says otherwise, a request
	// body may hold one such message in base64 plus JSON framing.
	MaxMessageBytes int64 `env:"MAILROOM_MAX_MESSAGE_BYTES, default=26214400"`
	// MaxBodyBytes caps a request body; larger ones get 413. Zero: what an
	// import of one message of MaxMessageBytes takes (see BodyLimit).
	MaxBodyBytes int64 `env:"MAILROOM_MAX_BODY_BYTES"`
	// MaxBodyBytesInFlight bounds the request body bytes that all requests
	// together hold; a request that would go over it gets 503 with
	// Retry-After. At least the body cap.
	MaxBodyBytesInFlight int64 `env:"MAILROOM_MAX_BODY_BYTES_IN_FLIGHT, default=268435456"`
	// ReadHeaderTimeout bounds the reading of a request's headers, and
	// ReadTimeout of its headers and body; once the body is read the
	// request has no read deadline (net/http lifts it), so that streams
	// (…:watch) and slow calls last as long as they need. There is no
	// write timeout, for the same reason. IdleTimeout closes idle
	// keep-alive connections.
	ReadHeaderTimeout time.Duration `env:"MAILROOM_HTTP_READ_HEADER_TIMEOUT, default=10s"`
	ReadTimeout       time.Duration `env:"MAILROOM_HTTP_READ_TIMEOUT, default=1m"`
	IdleTimeout       time.Duration `env:"MAILROOM_HTTP_IDLE_TIMEOUT, default=2m"`
	// KeyCacheTTL is how long an API key's identity token is reused.
	KeyCacheTTL time.Duration `env:"MAILROOM_KEY_CACHE_TTL, default=30s"`
	// AuthTimeout bounds one API key exchange with auth.
	AuthTimeout time.Duration `env:"MAILROOM_AUTH_TIMEOUT, default=5s"`
	// ReadyTimeout bounds the health checks behind /readyz.
	ReadyTimeout time.Duration `env:"MAILROOM_READY_TIMEOUT, default=2s"`
	// ShutdownTimeout bounds the drain of in-flight requests at shutdown.
	ShutdownTimeout time.Duration `env:"MAILROOM_SHUTDOWN_TIMEOUT, default=10s"`
	// KeyRate is how many requests a second each API key may make, with
	// bursts of KeyBurst (zero: twice the rate); past it, 429 with
	// Retry-After. Zero disables the limit.
	KeyRate  float64 `env:"MAILROOM_KEY_RATE, default=20"`
	KeyBurst int     `env:"MAILROOM_KEY_BURST, default=40"`
	// UserRate and UserBurst limit each user across all of their API keys
	// (a user can make many keys), likewise; zero disables the limit.
	UserRate  float64 `env:"MAILROOM_USER_RATE, default=40"`
	UserBurst int     `env:"MAILROOM_USER_BURST, default=80"`
	// NATSURL is the NATS server whose revocation bucket (written by auth)
	// the gateway watches, so that a deleted API key or user is refused
	// within a second. Unset, or while NATS is unreachable, an API key's
	// exchange is cached for one second only (a revoked key is then
	// refused by auth at the next exchange).
	NATSURL string `env:"NATS_URL"`
	// NATSPrefix is the prefix of every subject, stream and bucket.
	NATSPrefix string `env:"MAILROOM_NATS_PREFIX"`
	// Transport secures the connections to the services (MAILROOM_TLS_*).
	Transport transport.Config
	// ServiceKey is the gateway's own key (named "gateway" in auth's
	// MAILROOM_SERVICE_KEYS): auth exchanges users' API keys only for a
	// caller with a service identity.
	ServiceKey string `env:"MAILROOM_SERVICE_KEY"`
	// GmailPush configures POST /push/gmail (Gmail push notifications).
	GmailPush GmailPush
	// Telemetry are the providers the gateway reports to and the metrics
	// its /metrics serves besides its own (set by program and mailroom
	// dev, never read from the environment).
	Telemetry telemetry.Providers
}

// jsonFraming is what a body may hold besides one base64 message: the
// JSON around it and the other fields of the request.
const jsonFraming = 1 << 20

// BodyLimit is the request body cap: MaxBodyBytes when set, else an
// import of one message of MaxMessageBytes, base64-encoded (4 bytes for
// every 3), with jsonFraming around it.
func (c Config) BodyLimit() int64 {
	if c.MaxBodyBytes > 0 {
		return c.MaxBodyBytes
	}
	return 4*((c.MaxMessageBytes+2)/3) + jsonFraming
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	switch {
	case c.MaxMessageBytes <= 0 && c.MaxBodyBytes <= 0:
		return errors.New("MAILROOM_MAX_MESSAGE_BYTES must be positive")
	case c.MaxBodyBytes < 0:
		return errors.New("MAILROOM_MAX_BODY_BYTES must not be negative")
	case c.MaxBodyBytesInFlight < c.BodyLimit():
		return fmt.Errorf("MAILROOM_MAX_BODY_BYTES_IN_FLIGHT is %d bytes, less than one request body may be (%d bytes)", c.MaxBodyBytesInFlight, c.BodyLimit())
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.IdleTimeout <= 0:
		return errors.New("MAILROOM_HTTP_READ_HEADER_TIMEOUT, MAILROOM_HTTP_READ_TIMEOUT and MAILROOM_HTTP_IDLE_TIMEOUT must be positive")
	}
	return nil
}

// UseTelemetry sets the providers the gateway reports to.
func (c *Config) UseTelemetry(p telemetry.Providers) { c.Telemetry = p }

// LogValue logs the configuration (it holds no secret).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Any("addrs", c.Addrs),
		slog.Int64("max_body_bytes", c.BodyLimit()),
		slog.Int64("max_body_bytes_in_flight", c.MaxBodyBytesInFlight),
		slog.String("read_header_timeout", c.ReadHeaderTimeout.String()),
		slog.String("read_timeout", c.ReadTimeout.String()),
		slog.String("idle_timeout", c.IdleTimeout.String()),
		slog.String("key_cache_ttl", c.KeyCacheTTL.String()),
		slog.String("auth_timeout", c.AuthTimeout.String()),
		slog.String("ready_timeout", c.ReadyTimeout.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.Float64("key_rate", c.KeyRate),
		slog.Int("key_burst", c.KeyBurst),
		slog.Float64("user_rate", c.UserRate),
		slog.Int("user_burst", c.UserBurst),
		slog.Any("transport", c.Transport),
		slog.String("nats_url", redact.URL(c.NATSURL)),
		slog.String("nats_prefix", c.NATSPrefix),
		slog.Bool("service_key_set", c.ServiceKey != ""),
		slog.String("gmail_push_audience", c.GmailPush.Audience),
		slog.String("google_jwks_url", c.GmailPush.JWKSURL),
	)
}

// Gateway serves mailroom's REST API.
type Gateway struct {
	cfg      Config
	logger   *slog.Logger
	conns    []*grpc.ClientConn
	backends []backend
	keys     *authn.KeyCache
	// exchange asks auth for an API key's identity token, uncached.
	exchange authn.ExchangeFunc
	verifier *authn.Verifier
	revoked  *authn.Revocations
	limits   *limiter
	inflight *inflight
	mux      *runtime.ServeMux
	metrics  *metrics
	handler  http.Handler
	draining atomic.Bool
	// streams ends the watch streams at shutdown.
	streams *streams
	// console serves the web console under /console/.
	console *console.Handler
	// own is the gateway's service identity; pushKeys Google's keys.
	own      *authn.ServiceIdentity
	pushKeys *jwksCache
}

// backend is a service behind the gateway, for /readyz.
type backend struct {
	name    string // "auth"
	service string // the grpc.health.v1 service name
	health  healthpb.HealthClient
}

// target is a service behind the gateway: its name, its grpc.health.v1
// service name, and the generated registration of its REST handlers.
type target struct {
	name, service string
	register      func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
}

// targets are the services behind the gateway, auth first.
var targets = []target{
	{authn.ServiceAuth, authv1.AuthService_ServiceDesc.ServiceName, authv1.RegisterAuthServiceHandler},
	{authn.ServiceIngest, ingestv1.IngestService_ServiceDesc.ServiceName, ingestv1.RegisterIngestServiceHandler},
	{authn.ServiceClassifier, classifierv1.ClassifierService_ServiceDesc.ServiceName, classifierv1.RegisterClassifierServiceHandler},
	{authn.ServiceStore, storev1.StoreService_ServiceDesc.ServiceName, storev1.RegisterStoreServiceHandler},
}

// connect dials t at addr (lazily) and registers its REST handlers.
func (g *Gateway) connect(ctx context.Context, t target, addr string, creds credentials.TransportCredentials) error {
	if addr == "" {
		return fmt.Errorf("no address for %s", t.name)
	}
	cc, err := grpcconn.DialInstrumented(addr, g.cfg.Telemetry.GRPC(), grpcconn.WithCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial %s: %w", t.name, err)
	}
	g.conns = append(g.conns, cc)
	g.backends = append(g.backends, backend{name: t.name, service: t.service, health: healthpb.NewHealthClient(cc)})
	if err := t.register(ctx, g.mux, cc); err != nil {
		return fmt.Errorf("register %s handlers: %w", t.name, err)
	}
	return nil
}

// The query parameter parser is a package variable of grpc-gateway's
// runtime, not an option of one mux: set it once.
var setQueryParser sync.Once

// New connects to the services (lazily: nothing needs to be up yet) and
// builds the HTTP handler.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Gateway, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway.New: %w", err)
	}
	cfg.MaxBodyBytes = cfg.BodyLimit()
	m, err := newMetrics(cfg.Telemetry)
	if err != nil {
		return nil, fmt.Errorf("gateway.New: %w", err)
	}
	g := &Gateway{cfg: cfg, logger: logger, metrics: m, limits: newLimiter(cfg.KeyRate, cfg.KeyBurst, cfg.UserRate, cfg.UserBurst),
		inflight: &inflight{limit: cfg.MaxBodyBytesInFlight}, streams: newStreams(), pushKeys: newJWKSCache()}
	creds, err := cfg.Transport.ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("gateway.New: client credentials: %w", err)
	}

	// The default marshaler of grpc-gateway (EmitUnpopulated, DiscardUnknown,
	// HttpBody passthrough), with short enum names accepted on input and
	// decoding errors that name the field instead of echoing the value.
	marshaler := &runtime.HTTPBodyMarshaler{Marshaler: reqdecode.Marshaler{JSONPb: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}}
	g.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithMarshalerOption(mimeEventStream, sseMarshaler{Marshaler: marshaler}),
		runtime.WithErrorHandler(g.handleError),
		runtime.WithStreamErrorHandler(g.streamError),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithMiddlewares(g.authenticate),
	)
	setQueryParser.Do(func() { runtime.SetQueryParameterParser(&reqdecode.QueryParser{})(g.mux) })
	for _, t := range targets {
		if err := g.connect(ctx, t, cfg.Addrs.Of(t.name), creds); err != nil {
			_ = g.Close()
			return nil, fmt.Errorf("gateway.New: %w", err)
		}
	}
	authClient := authv1.NewAuthServiceClient(g.conns[0])
	var own *authn.ServiceIdentity
	if cfg.ServiceKey == "" {
		logger.WarnContext(ctx, "MAILROOM_SERVICE_KEY is not set: auth exchanges users' API keys only for the gateway's service identity, so requests with an API key will be refused")
	} else {
		own = authn.NewServiceIdentity(authn.ServiceGateway, authn.KeyToken(authn.NewKeyCache(authn.ClientExchange(authClient), 10*time.Minute), cfg.ServiceKey))
	}
	g.own = own
	g.exchange = g.recordRefusals(authn.ClientExchangeAs(authClient, own))
	g.keys = authn.NewKeyCache(g.exchange, cfg.KeyCacheTTL)
	g.verifier = authn.NewVerifier(authn.ClientKeys(authClient))
	g.revoked = authn.NewRevocations()
	g.revoked.Logger = logger
	g.keys.WatchRevocations(g.revoked)
	g.verifier.Revocations = g.revoked
	if g.console, err = console.New(); err != nil {
		_ = g.Close()
		return nil, fmt.Errorf("gateway.New: %w", err)
	}
	g.handler = g.buildHandler()
	return g, nil
}

// incomingHeader is grpc-gateway's default header matcher without the
// credentials: the Authorization header reaches the services only as the
// identity token the middleware put there (grpc-gateway forwards it as
// "authorization" by itself), and cookies not at all.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Authorization", "Cookie":
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Run serves HTTP on lis until ctx is done, then stops taking requests
// (/readyz turns 503), drains in-flight ones for up to ShutdownTimeout and
// closes the rest. It returns nil after a shutdown that ctx asked for.
func (g *Gateway) Run(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		ReadTimeout:       g.cfg.ReadTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(g.streams.cancel)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(lis) }()
	g.logger.InfoContext(ctx, "gateway listening", "addr", lis.Addr().String())
	if g.cfg.MetricsAddr != "" {
		mlis, err := net.Listen("tcp", g.cfg.MetricsAddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("gateway: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", g.metricsHandler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: g.cfg.ReadHeaderTimeout, ReadTimeout: g.cfg.ReadTimeout, IdleTimeout: g.cfg.IdleTimeout}
		go func() {
			if err := msrv.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
		defer msrv.Close()
		g.logger.InfoContext(ctx, "gateway metrics listening", "addr", mlis.Addr().String())
	}

	if g.cfg.NATSURL != "" {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); g.watchRevocations(wctx) }()
		defer func() { stop(); <-done }()
	} else {
		g.logger.WarnContext(ctx, "NATS_URL is not set: revocations are not watched, and API key exchanges are cached for one second")
	}

	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	g.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		g.logger.Warn("http drain timed out; closing remaining connections", "timeout", g.cfg.ShutdownTimeout.String())
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// watchRevocations keeps the gateway's copy of the revocation bucket
// current until ctx ends: it connects to NATS (retrying while NATS is
// away; meanwhile API key exchanges are cached for a second), waits for
// the bucket that auth creates, and watches it.
func (g *Gateway) watchRevocations(ctx context.Context) {
	tlsOpts, err := eventbus.TLSOptions(g.cfg.NATSURL, g.cfg.Transport)
	if err != nil {
		g.logger.ErrorContext(ctx, "revocations: NATS", "url", redact.URL(g.cfg.NATSURL), "error", err.Error())
		return
	}
	nc, err := nats.Connect(g.cfg.NATSURL, append([]nats.Option{nats.Name("mailroom-gateway"), nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second), nats.RetryOnFailedConnect(true)}, tlsOpts...)...)
	if err != nil {
		g.logger.ErrorContext(ctx, "revocations: NATS", "url", redact.URL(g.cfg.NATSURL), "error", err.Error())
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		g.logger.ErrorContext(ctx, "revocations: JetStream", "error", err.Error())
		return
	}
	bucket := eventbus.Topology{Prefix: g.cfg.NATSPrefix}.BucketName(authn.RevocationBucket)
	for {
		store, err := authn.BindRevocations(ctx, js, bucket)
		if err == nil {
			_ = g.revoked.Watch(ctx, store)
			return
		}
		g.logger.DebugContext(ctx, "revocations: waiting for the bucket", "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Close releases the connections to the services.
func (g *Gateway) Close() error {
	var errs []error
	for _, cc := range g.conns {
		errs = append(errs, cc.Close())
	}
	g.conns = nil
	return errors.Join(errs...)
}
