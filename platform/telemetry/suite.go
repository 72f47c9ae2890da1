package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	membedded "go.opentelemetry.io/otel/metric/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tembedded "go.opentelemetry.io/otel/trace/embedded"
)

// ServiceLabel is the label that tells services apart on the one /metrics
// of mailroom dev. Its values are the services' short names (classifier),
// which are also the Kubernetes Services' names, so that the label means
// the same as the one Prometheus adds to a ServiceMonitor's targets.
const ServiceLabel = "service"

// SuiteOptions configure SetupSuite.
type SuiteOptions struct {
	// Services are the services' short names ("auth", "ingest",
	// "classifier", "store", "gateway"); each gets service.name
	// "mailroom-<name>".
	Services []string
	// Default is the service (one of Services) whose providers take what
	// names no service: instrumentation scopes outside
	// mailroom.dev/services/<name>/ and mailroom.dev/<name>/.
	Default string
	// SpanExporter, when set, receives every service's spans instead of
	// OTLP (tests).
	SpanExporter sdktrace.SpanExporter
	// MetricReaders, when set, gives each service an extra reader (tests:
	// a ManualReader per service).
	MetricReaders map[string]sdkmetric.Reader
	// NoOTLP keeps the OTLP metrics exporter off (tests).
	NoOTLP bool
}

// Suite is the telemetry of several services in one process (mailroom
// dev): a tracer provider and a meter provider per service, each with its
// own service.name, and one Prometheus registry in which every series
// carries the service label.
//
// Instruments and tracers that packages create with otel.Meter and
// otel.Tracer reach the right service's provider by their scope name: the
// global providers SetupSuite installs route "mailroom.dev/services/<name>/…"
// and "mailroom.dev/<name>…" to <name>'s providers and anything else
// to Default's. Instrumentation shared by every service (otelgrpc) must be
// given the service's providers (TracerProvider, MeterProvider).
type Suite struct {
	registry *prometheus.Registry
	def      string
	tracers  map[string]*sdktrace.TracerProvider
	meters   map[string]*Metrics
}

// SetupSuite builds the providers of every service in opts.Services and
// installs the routing global providers and the propagator.
func SetupSuite(ctx context.Context, opts SuiteOptions) (*Suite, error) {
	if len(opts.Services) == 0 {
		return nil, errors.New("telemetry: SetupSuite: no services")
	}
	s := &Suite{registry: prometheus.NewRegistry(), def: opts.Default,
		tracers: map[string]*sdktrace.TracerProvider{}, meters: map[string]*Metrics{}}
	if _, ok := indexOf(opts.Services, opts.Default); !ok {
		s.def = opts.Services[0]
	}
	for _, name := range opts.Services {
		if _, dup := s.tracers[name]; dup {
			return nil, fmt.Errorf("telemetry: SetupSuite: service %q twice", name)
		}
		tp, err := NewTracerProvider(ctx, "mailroom-"+name, opts.SpanExporter)
		if err != nil {
			return nil, err
		}
		s.tracers[name] = tp
		mo := MetricsOptions{ServiceName: "mailroom-" + name, Registerer: s.Registerer(name), NoOTLP: opts.NoOTLP, fixedName: true}
		if r := opts.MetricReaders[name]; r != nil {
			mo.Readers = []sdkmetric.Reader{r}
		}
		m, err := NewMetrics(ctx, mo)
		if err != nil {
			_ = s.Shutdown(ctx)
			return nil, err
		}
		s.meters[name] = m
	}
	otel.SetTextMapPropagator(Propagator)
	otel.SetTracerProvider(s.tracerRouter())
	otel.SetMeterProvider(s.meterRouter())
	return s, nil
}

// TracerProvider returns the service's tracer provider (for
// otelgrpc.WithTracerProvider); an unknown name gets Default's.
func (s *Suite) TracerProvider(service string) trace.TracerProvider {
	if tp, ok := s.tracers[service]; ok {
		return tp
	}
	return s.tracers[s.def]
}

// MeterProvider returns the service's meter provider (for
// otelgrpc.WithMeterProvider); an unknown name gets Default's.
func (s *Suite) MeterProvider(service string) metric.MeterProvider {
	if m, ok := s.meters[service]; ok {
		return m.provider
	}
	return s.meters[s.def].provider
}

// Registerer returns a registerer into the suite's registry that adds
// service=<service> to every series: for metrics made with the Prometheus
// client directly (the gateway's HTTP metrics).
func (s *Suite) Registerer(service string) prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{ServiceLabel: service}, s.registry)
}

// Gatherer returns the registry holding every service's series.
func (s *Suite) Gatherer() prometheus.Gatherer { return s.registry }

// Handler serves every service's metrics as Prometheus text (the gateway's
// /metrics in mailroom dev).
func (s *Suite) Handler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops every provider.
func (s *Suite) Shutdown(ctx context.Context) error {
	var errs []error
	for _, tp := range s.tracers {
		errs = append(errs, tp.Shutdown(ctx))
	}
	for _, m := range s.meters {
		errs = append(errs, m.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// serviceOf returns the service a scope name belongs to, "" when none of
// the suite's.
func (s *Suite) serviceOf(scope string) string {
	rest, ok := strings.CutPrefix(scope, "mailroom.dev/")
	if !ok {
		return s.def
	}
	rest = strings.TrimPrefix(rest, "services/")
	name, _, _ := strings.Cut(rest, "/")
	if _, ok := s.tracers[name]; ok {
		return name
	}
	return s.def
}

func (s *Suite) tracerRouter() trace.TracerProvider { return tracerRouter{s: s} }
func (s *Suite) meterRouter() metric.MeterProvider  { return meterRouter{s: s} }

type tracerRouter struct {
	tembedded.TracerProvider
	s *Suite
}

func (r tracerRouter) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return r.s.tracers[r.s.serviceOf(name)].Tracer(name, opts...)
}

type meterRouter struct {
	membedded.MeterProvider
	s *Suite
}

func (r meterRouter) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return r.s.meters[r.s.serviceOf(name)].provider.Meter(name, opts...)
}

func indexOf(xs []string, x string) (int, bool) {
	for i, v := range xs {
		if v == x {
			return i, true
		}
	}
	return 0, false
}

// Providers are the telemetry a service is given instead of the global
// one. Binaries leave the tracer and meter providers nil (the globals are
// theirs); mailroom dev gives each service its own (Suite.Providers), so
// that instrumentation shared by every service (otelgrpc) reports under
// the right service.name.
type Providers struct {
	// Tracer and Meter are the service's providers; nil means the global ones.
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
	// Registerer receives the metrics a service makes with the Prometheus
	// client directly (the gateway's); nil: a registry of the service's own.
	Registerer prometheus.Registerer
	// Gatherer is what the service's /metrics serves besides those (its
	// meter provider's registry; in mailroom dev, every service's); nil:
	// a service serves no /metrics of its own.
	Gatherer prometheus.Gatherer
}

// GRPC returns the otelgrpc options that make otelgrpc report to p's
// providers (none when they are nil: the globals).
func (p Providers) GRPC() []otelgrpc.Option {
	var opts []otelgrpc.Option
	if p.Tracer != nil {
		opts = append(opts, otelgrpc.WithTracerProvider(p.Tracer))
	}
	if p.Meter != nil {
		opts = append(opts, otelgrpc.WithMeterProvider(p.Meter))
	}
	return opts
}

// Providers returns the service's tracer and meter providers.
func (s *Suite) Providers(service string) Providers {
	return Providers{Tracer: s.TracerProvider(service), Meter: s.MeterProvider(service)}
}
