package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mailroom.dev/platform/telemetry"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func mustContain(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q; got:\n%s", w, body)
		}
	}
}

func TestMetricsPrometheusNames(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "")
	ctx := context.Background()
	m, err := telemetry.NewMetrics(ctx, telemetry.MetricsOptions{ServiceName: "mailroom-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(ctx)
	meter := m.MeterProvider().Meter("mailroom.dev/test")
	c, _ := meter.Int64Counter("mailroom_test_requests_total")
	c.Add(ctx, 3, metric.WithAttributes(attribute.String("outcome", "ok")))
	f, _ := meter.Float64Counter("mailroom_test_cost_usd_total")
	f.Add(ctx, 0.25)
	h, _ := meter.Float64Histogram("mailroom_test_duration_seconds", metric.WithUnit("s"))
	h.Record(ctx, 0.5)
	_, _ = meter.Int64ObservableGauge("mailroom_test_level", metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(7)
		return nil
	}))
	body := scrape(t, m.Handler())
	mustContain(t, body,
		`mailroom_test_requests_total{otel_scope_name="mailroom.dev/test",otel_scope_schema_url="",otel_scope_version="",outcome="ok"} 3`,
		"mailroom_test_cost_usd_total{",
		"mailroom_test_duration_seconds_bucket{",
		"mailroom_test_level{",
		`service_name="mailroom-test"`,
	)
	for _, bad := range []string{"_total_total", "_seconds_seconds", "go_goroutines"} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics has %q (a doubled suffix, or the default registry)", bad)
		}
	}
}

func TestSetupMetricsIsGlobal(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	ctx := context.Background()
	m, err := telemetry.SetupMetrics(ctx, telemetry.MetricsOptions{ServiceName: "mailroom-global"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(ctx)
	c, _ := otelMeter("mailroom.dev/services/x/internal/y").Int64Counter("mailroom_global_things_total")
	c.Add(ctx, 1)
	mustContain(t, scrape(t, m.Handler()), "mailroom_global_things_total{")
}

func TestMetricsOTLPFromEnvironment(t *testing.T) {
	// An endpoint nobody listens on: building the exporter must succeed
	// (export failures are reported later, never at start).
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	m, err := telemetry.NewMetrics(context.Background(), telemetry.MetricsOptions{ServiceName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = m.Shutdown(ctx)

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	if _, err := telemetry.NewMetrics(context.Background(), telemetry.MetricsOptions{ServiceName: "x"}); err == nil {
		t.Error("an unknown protocol was accepted")
	}
	// OTEL_METRICS_EXPORTER=prometheus keeps OTLP off, so the unknown
	// protocol does not matter.
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	if _, err := telemetry.NewMetrics(context.Background(), telemetry.MetricsOptions{ServiceName: "x"}); err != nil {
		t.Errorf("OTEL_METRICS_EXPORTER=prometheus: %v", err)
	}
}

func TestMetricsAddr(t *testing.T) {
	for _, tc := range []struct{ metrics, grpc, want string }{
		{"", "127.0.0.1:9103", "127.0.0.1:10103"},
		{"", ":9101", ":10101"},
		{"", "[::1]:9104", "[::1]:10104"},
		{"0.0.0.0:9000", ":9103", "0.0.0.0:9000"},
		{"off", ":9103", ""},
		{"", "127.0.0.1:0", "127.0.0.1:0"},
	} {
		got, err := telemetry.MetricsAddr(tc.metrics, tc.grpc)
		if err != nil || got != tc.want {
			t.Errorf("MetricsAddr(%q, %q) = %q, %v; want %q", tc.metrics, tc.grpc, got, err, tc.want)
		}
	}
	for _, grpcAddr := range []string{"nohost", ":65000", ":http"} {
		if got, err := telemetry.MetricsAddr("", grpcAddr); err == nil {
			t.Errorf("MetricsAddr(\"\", %q) = %q, want an error", grpcAddr, got)
		}
	}
}

func TestServeMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "mailroom_x 1\n") })
	go func() { done <- telemetry.ServeMetrics(ctx, "127.0.0.1:0", h, func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := string(body), "mailroom_x 1\n"; got != want {
		t.Errorf("GET /metrics = %q, want %q", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMetrics: %v", err)
	}
}

func otelMeter(name string) metric.Meter { return otel.Meter(name) }
