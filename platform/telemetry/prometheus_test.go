package telemetry_test

import (
	"context"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
)

// TestRealPrometheusScrapesTheSuite serves a Suite's /metrics and lets
// Debian's Prometheus scrape it: the exposition is accepted, counters keep
// their _total, histograms have buckets Prometheus can take quantiles of,
// and every series carries its service label.
func TestRealPrometheusScrapesTheSuite(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := telemetry.SetupSuite(ctx, telemetry.SuiteOptions{Services: []string{"classifier", "store", "gateway"}, Default: "gateway", NoOTLP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	calls, _ := otel.Meter("mailroom.dev/services/classifier/internal/llm").Int64Counter("mailroom_llm_requests_total")
	calls.Add(ctx, 7, metric.WithAttributes(attribute.String("outcome", "ok")))
	calls.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "rate_limited")))
	batch, _ := otel.Meter("mailroom.dev/services/store/internal/jetstream/consumer").Float64Histogram("mailroom_store_batch_seconds",
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.01, 0.1, 1))
	for range 20 {
		batch.Record(ctx, 0.05)
	}

	addrc := make(chan net.Addr, 1)
	go func() { _ = telemetry.ServeMetrics(ctx, "127.0.0.1:0", s.Handler(), func(a net.Addr) { addrc <- a }) }()
	prom := testenv.StartPrometheus(t, "dev", (<-addrc).String())

	prom.WaitFor(t, `up{job="dev"} == 1`, 30*time.Second)
	got := prom.WaitFor(t, `sum by (service, outcome) (mailroom_llm_requests_total)`, 30*time.Second)
	want := map[string]string{"ok": "7", "rate_limited": "1"}
	for _, g := range got {
		if g.Metric["service"] != "classifier" || want[g.Metric["outcome"]] != g.Value {
			t.Errorf("series %v = %s; want service classifier and %v", g.Metric, g.Value, want)
		}
	}
	if len(got) != 2 {
		t.Errorf("got %d series, want 2", len(got))
	}
	q := prom.WaitFor(t, `histogram_quantile(0.5, sum by (le, service) (mailroom_store_batch_seconds_bucket))`, 30*time.Second)
	if len(q) != 1 || q[0].Metric["service"] != "store" || q[0].Value == "NaN" {
		t.Errorf("median batch time: %v, want one store series with a value", q)
	}
	ti := prom.WaitFor(t, `target_info{service="gateway"}`, 30*time.Second)
	if ti[0].Metric["service_name"] != "mailroom-gateway" {
		t.Errorf("target_info %v: want service_name mailroom-gateway", ti[0].Metric)
	}
}
