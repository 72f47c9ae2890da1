package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"mailroom.dev/platform/telemetry"
)

func TestSuiteKeepsEachServiceApart(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "mailroom-dev") // must not flatten the services
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	s, err := telemetry.SetupSuite(ctx, telemetry.SuiteOptions{
		Services:      []string{"auth", "classifier", "gateway"},
		Default:       "gateway",
		SpanExporter:  spans,
		MetricReaders: map[string]sdkmetric.Reader{"classifier": reader},
		NoOTLP:        true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(ctx)

	// Instruments made through the global provider, as internal packages do.
	c, _ := otel.Meter("mailroom.dev/services/classifier/internal/llm").Int64Counter("mailroom_suite_calls_total")
	c.Add(ctx, 2)
	a, _ := otel.Meter("mailroom.dev/services/auth/internal/keys").Int64Counter("mailroom_suite_calls_total")
	a.Add(ctx, 5)
	o, _ := otel.Meter("go.opentelemetry.io/contrib/whatever").Int64Counter("mailroom_suite_other_total")
	o.Add(ctx, 1)
	// And one through a service's own provider, as otelgrpc is given.
	g, _ := s.MeterProvider("auth").Meter("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc").Int64Counter("mailroom_suite_rpcs_total")
	g.Add(ctx, 3)
	// And a Prometheus client metric (the gateway's own).
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "mailroom_suite_http_total"})
	s.Registerer("gateway").MustRegister(pc)
	pc.Inc()

	body := scrape(t, s.Handler())
	for _, want := range []string{
		`mailroom_suite_calls_total{otel_scope_name="mailroom.dev/services/classifier/internal/llm",otel_scope_schema_url="",otel_scope_version="",service="classifier"} 2`,
		`mailroom_suite_calls_total{otel_scope_name="mailroom.dev/services/auth/internal/keys",otel_scope_schema_url="",otel_scope_version="",service="auth"} 5`,
		`mailroom_suite_other_total{otel_scope_name="go.opentelemetry.io/contrib/whatever",otel_scope_schema_url="",otel_scope_version="",service="gateway"} 1`,
		`service="auth"} 3`,
		`mailroom_suite_http_total{service="gateway"} 1`,
		`target_info{service="classifier",service_name="mailroom-classifier"`,
		`target_info{service="auth",service_name="mailroom-auth"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}

	// The per-service reader sees the classifier's instruments alone.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if got, _ := rm.Resource.Set().Value(semconv.ServiceNameKey); got.AsString() != "mailroom-classifier" {
		t.Errorf("classifier reader resource service.name = %q", got.AsString())
	}
	for _, sm := range rm.ScopeMetrics {
		if !strings.HasPrefix(sm.Scope.Name, "mailroom.dev/services/classifier/") {
			t.Errorf("classifier reader got scope %q", sm.Scope.Name)
		}
	}

	// Spans carry the service.name of the package, or of the provider given.
	for _, tc := range []struct{ tracer, want string }{
		{"mailroom.dev/services/classifier/internal/jetstream/consumer", "mailroom-classifier"},
		{"mailroom.dev/services/auth/internal/grpcapi", "mailroom-auth"},
		{"mailroom.dev/gateway", "mailroom-gateway"},
		{"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "mailroom-gateway"},
		{"mailroom.dev/platform/eventbus", "mailroom-gateway"},
	} {
		spans.Reset()
		_, span := otel.Tracer(tc.tracer).Start(ctx, "x")
		span.End()
		got := spans.GetSpans()
		if len(got) != 1 {
			t.Fatalf("%s: %d spans", tc.tracer, len(got))
		}
		if v, _ := got[0].Resource.Set().Value(semconv.ServiceNameKey); v.AsString() != tc.want {
			t.Errorf("span of tracer %s: service.name %q, want %q", tc.tracer, v.AsString(), tc.want)
		}
	}
	spans.Reset()
	_, span := s.TracerProvider("auth").Tracer("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc").Start(ctx, "x")
	span.End()
	if v, _ := spans.GetSpans()[0].Resource.Set().Value(semconv.ServiceNameKey); v.AsString() != "mailroom-auth" {
		t.Errorf("span of the auth provider: service.name %q", v.AsString())
	}
}

func TestSuiteRejectsNoServices(t *testing.T) {
	if _, err := telemetry.SetupSuite(context.Background(), telemetry.SuiteOptions{}); err == nil {
		t.Error("SetupSuite with no services succeeded")
	}
}
