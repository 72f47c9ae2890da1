package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// MetricsOptions configure NewMetrics and SetupMetrics.
type MetricsOptions struct {
	// ServiceName is the resource's service.name ("mailroom-classifier"),
	// unless OTEL_SERVICE_NAME is set.
	ServiceName string
	// Registerer, when set, receives the Prometheus collector instead of a
	// registry of the provider's own (mailroom dev: Suite.Registerer). The
	// handler then serves nothing: the owner of the registerer serves it.
	Registerer prometheus.Registerer
	// Readers are extra readers (tests: an sdkmetric.ManualReader).
	Readers []sdkmetric.Reader
	// NoOTLP keeps the OTLP exporter off whatever OTEL_* says (tests).
	NoOTLP bool

	// fixedName ignores OTEL_SERVICE_NAME (SetupSuite: one process, many
	// services).
	fixedName bool
}

// Metrics is one service's OpenTelemetry meter provider: its instruments
// are exported as Prometheus text by Handler (a registry of its own, never
// the global default one) and, when OTEL_* asks, pushed over OTLP.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// NewMetrics returns a meter provider for one service; SetupMetrics also
// installs it as the global one. OTLP export is on when
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set, or OTEL_EXPORTER_OTLP_ENDPOINT
// is set and OTEL_METRICS_EXPORTER is neither "none" nor "prometheus" (set
// it to "prometheus" when the endpoint is a collector of traces alone, such
// as Jaeger); the protocol is OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: grpc (default) or http/protobuf.
func NewMetrics(ctx context.Context, opts MetricsOptions) (*Metrics, error) {
	name := opts.ServiceName
	if env := os.Getenv("OTEL_SERVICE_NAME"); env != "" && !opts.fixedName {
		name = env
	}
	res, err := serviceResource(name)
	if err != nil {
		return nil, err
	}
	m := &Metrics{}
	reg := opts.Registerer
	if reg == nil {
		m.registry = prometheus.NewRegistry()
		reg = m.registry
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(exp)}
	for _, r := range opts.Readers {
		mpOpts = append(mpOpts, sdkmetric.WithReader(r))
	}
	if !opts.NoOTLP && otlpMetricsWanted() {
		var mexp sdkmetric.Exporter
		switch p := firstEnv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"); p {
		case "", "grpc":
			mexp, err = otlpmetricgrpc.New(ctx)
		case "http/protobuf":
			mexp, err = otlpmetrichttp.New(ctx)
		default:
			return nil, fmt.Errorf("telemetry: OTLP metrics protocol %q is not supported (grpc or http/protobuf)", p)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metrics exporter: %w", err)
		}
		mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)))
	}
	m.provider = sdkmetric.NewMeterProvider(mpOpts...)
	return m, nil
}

// SetupMetrics is NewMetrics, then installs the provider as the global one,
// so that the instruments every package creates with otel.Meter land in it.
func SetupMetrics(ctx context.Context, opts MetricsOptions) (*Metrics, error) {
	m, err := NewMetrics(ctx, opts)
	if err != nil {
		return nil, err
	}
	otel.SetMeterProvider(m.provider)
	return m, nil
}

// MeterProvider returns the provider, for instrumentation that takes one
// (otelgrpc.WithMeterProvider).
func (m *Metrics) MeterProvider() metric.MeterProvider { return m.provider }

// SDK returns the SDK provider.
func (m *Metrics) SDK() *sdkmetric.MeterProvider { return m.provider }

// Gatherer returns the provider's own registry, nil when it was built on a
// Registerer given in the options.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m.registry == nil {
		return nil
	}
	return m.registry
}

// Handler serves the provider's metrics as Prometheus text (the /metrics
// handler). Built on a Registerer given in the options, it answers 404: the
// registerer's owner serves them.
func (m *Metrics) Handler() http.Handler {
	if m.registry == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes the OTLP exporter, if any, and stops the provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }

func otlpMetricsWanted() bool {
	if os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "" {
		return true
	}
	switch os.Getenv("OTEL_METRICS_EXPORTER") {
	case "none", "prometheus":
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// serviceResource is the default resource with service.name set to name,
// or to OTEL_SERVICE_NAME when that is set and name is empty.
func serviceResource(name string) (*resource.Resource, error) {
	if name == "" {
		name = os.Getenv("OTEL_SERVICE_NAME")
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(name)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// MetricsAddr returns the admin HTTP address that serves /metrics: metricsAddr
// (MAILROOM_METRICS_ADDR) when set, else the gRPC address's port + 1000 on
// the same host (127.0.0.1:9103 → 127.0.0.1:10103, :9103 → :10103; port 0,
// as tests use, stays 0). "off" turns the server off (an empty result).
func MetricsAddr(metricsAddr, grpcAddr string) (string, error) {
	switch metricsAddr {
	case "off":
		return "", nil
	case "":
	default:
		return metricsAddr, nil
	}
	host, port, err := net.SplitHostPort(grpcAddr)
	if err != nil {
		return "", fmt.Errorf("telemetry: metrics address from gRPC address %q: %w", grpcAddr, err)
	}
	p, err := strconv.Atoi(port)
	if p == 0 && err == nil {
		return net.JoinHostPort(host, "0"), nil
	}
	if err != nil || p < 0 || p+1000 > 65535 {
		return "", fmt.Errorf("telemetry: metrics address from gRPC address %q: port must be 1 to 64535 (set MAILROOM_METRICS_ADDR)", grpcAddr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1000)), nil
}

// ServeMetrics serves h at /metrics (and 200 at /healthz) on addr until
// ctx ends, then shuts the server down. An empty addr serves nothing and
// returns when ctx ends. ready, when not nil, receives the bound address
// (addr may name port 0).
func ServeMetrics(ctx context.Context, addr string, h http.Handler, ready func(net.Addr)) error {
	return ServeAdmin(ctx, addr, map[string]http.Handler{"GET /metrics": h}, ready)
}

// ServeAdmin is ServeMetrics with the routes given (patterns of
// http.ServeMux, "GET /metrics", "GET /readyz"), beside /healthz.
func ServeAdmin(ctx context.Context, addr string, routes map[string]http.Handler, ready func(net.Addr)) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: metrics listener: %w", err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("telemetry: metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: metrics server shutdown: %w", err)
	}
	return nil
}
