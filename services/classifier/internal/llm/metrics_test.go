package llm_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
)

// collected is one collection of a ManualReader, summed by metric name and
// one label's value ("" sums every series of the metric).
type collected struct{ rm metricdata.ResourceMetrics }

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var c collected
	if err := r.Collect(context.Background(), &c.rm); err != nil {
		t.Fatal(err)
	}
	return c
}

// sum adds the points of metric name whose label key has value (any value
// when key is ""); histograms add their counts.
func (c collected) sum(name, key, value string) float64 {
	var total float64
	match := func(s attribute.Set) bool {
		if key == "" {
			return true
		}
		v, ok := s.Value(attribute.Key(key))
		return ok && v.Emit() == value
	}
	for _, sm := range c.rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						total += float64(p.Value)
					}
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						total += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						total += float64(p.Count)
					}
				}
			}
		}
	}
	return total
}

// TestMetricsAgreeWithTheFake drives the fake OpenAI into 429s (its own
// rate limiter and injected storms), 5xx, resets, timeouts and broken
// answers, and checks every mailroom_llm_* counter against the fake's
// statistics.
func TestMetricsAgreeWithTheFake(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	const secret = "sk-test-key-0001"
	// The fake admits 10 requests a second from a bucket of 10 and answers
	// in 300 ms; the limiter believes in 60,000 a minute until the first
	// answers say otherwise, so a burst meets the fake's own 429s.
	f := setup(t, fakeopenai.Config{Keys: map[string]fakeopenai.Limits{secret: {RPM: 600, TPM: 10_000_000}}, Window: time.Second, Latency: 300 * time.Millisecond},
		func(c *llm.Config) {
			c.MeterProvider = mp
			c.Limiter = limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "key-1", RPM: 60_000, TPM: 1e9}}})
			c.MaxAttempts = 3
			c.RequestTimeout = time.Second
		})

	ctx := context.Background()
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		gaveUp, classified int
		wantCost           int64
		verdictRequests    int64
	)
	classify1 := func(i int) {
		wg.Go(func() {
			req := request(fmt.Sprintf("Invoice %d", i), "Payment is due in 14 days.")
			req.Received = time.Now().Add(-time.Second)
			v, err := f.tier.Classify(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			var g *classify.GiveUpError
			switch {
			case errors.As(err, &g):
				gaveUp++
				wantCost += g.Usage.CostMicros
				verdictRequests += g.Usage.Requests
			case err != nil:
				t.Errorf("classify: %v", err)
			default:
				classified++
				wantCost += v.Usage.CostMicros
				verdictRequests += v.Usage.Requests
			}
		})
	}
	// A burst first, before the limiter learns the fake's lower limit.
	for i := range 30 {
		classify1(i)
	}
	wg.Wait()
	// Then every kind of fault.
	f.fake.Inject(fakeopenai.RateLimitStorm(20*time.Millisecond), 3)
	f.fake.Inject(fakeopenai.ServerError, 2)
	f.fake.Inject(fakeopenai.Overloaded, 2)
	f.fake.Inject(fakeopenai.ConnReset, 2)
	f.fake.Inject(fakeopenai.Slow(3*time.Second), 1)
	f.fake.Inject(fakeopenai.InvalidJSON, 2)
	f.fake.Inject(fakeopenai.OutsideEnum, 2)
	for i := range 20 {
		classify1(30 + i)
	}
	wg.Wait()

	st := f.fake.Stats().Keys[secret]
	c := collect(t, reader)
	t.Logf("fake: %d requests, %d rate limited by its limiter, faults %v; tier: %d classified, %d gave up", st.Requests, st.RateLimited, st.Faults, classified, gaveUp)
	if st.RateLimited == 0 {
		t.Error("the fake's own limiter never answered 429: the test does not test that")
	}
	fault := func(k fakeopenai.FaultKind) float64 { return float64(st.Faults[k]) }
	for _, tc := range []struct {
		what      string
		got, want float64
	}{
		{"requests, every outcome", c.sum("mailroom_llm_requests_total", "", ""), float64(st.Requests)},
		{"requests by the verdicts' usage", c.sum("mailroom_llm_requests_total", "", ""), float64(verdictRequests)},
		{"requests of key-1", c.sum("mailroom_llm_requests_total", "key", "key-1"), float64(st.Requests)},
		{"rate_limited", c.sum("mailroom_llm_requests_total", "outcome", llm.OutcomeRateLimited), float64(st.RateLimited) + fault(fakeopenai.FaultRateLimit)},
		{"server_error", c.sum("mailroom_llm_requests_total", "outcome", llm.OutcomeServerError), fault(fakeopenai.FaultServerError) + fault(fakeopenai.FaultOverloaded)},
		{"timeout", c.sum("mailroom_llm_requests_total", "outcome", llm.OutcomeTimeout), fault(fakeopenai.FaultConnReset) + fault(fakeopenai.FaultSlow)},
		{"invalid_answer", c.sum("mailroom_llm_requests_total", "outcome", llm.OutcomeInvalidAnswer), fault(fakeopenai.FaultInvalidJSON) + fault(fakeopenai.FaultOutsideEnum)},
		{"ok", c.sum("mailroom_llm_requests_total", "outcome", llm.OutcomeOK), float64(classified)},
		{"rejected", c.sum("mailroom_llm_requests_total", "outcome", llm.OutcomeRejected), float64(st.BadRequests)},
		{"lane waits, one per classification", c.sum("mailroom_lane_wait_seconds", "lane", "backfill"), float64(classified + gaveUp)},
		{"durations recorded", c.sum("mailroom_llm_request_duration_seconds", "model", "gpt-4o-mini"), float64(st.Requests)},
		{"prompt tokens", c.sum("mailroom_llm_tokens_total", "kind", "prompt"), float64(st.PromptTokens)},
		{"cached prompt tokens", c.sum("mailroom_llm_tokens_total", "kind", "cached_prompt"), float64(st.CachedTokens)},
		{"completion tokens", c.sum("mailroom_llm_tokens_total", "kind", "completion"), float64(st.CompletionTokens)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: metric %v, fake %v", tc.what, tc.got, tc.want)
		}
	}
	p := llm.Prices["gpt-4o-mini"]
	fakeCost := (float64(st.PromptTokens-st.CachedTokens)*p.Input + float64(st.CachedTokens)*p.CachedInput + float64(st.CompletionTokens)*p.Output) / 1e6
	if got := c.sum("mailroom_llm_cost_usd_total", "model", "gpt-4o-mini"); math.Abs(got-fakeCost) > 1e-6*float64(st.Requests) || math.Abs(got-float64(wantCost)/1e6) > 1e-9 {
		t.Errorf("cost: metric $%.6f, the fake's tokens × price $%.6f, the verdicts' usage $%.6f", got, fakeCost, float64(wantCost)/1e6)
	}
}

func TestModelCallSpans(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	f := setup(t, fakeopenai.Config{}, func(c *llm.Config) { c.TracerProvider = tp })
	f.fake.Inject(fakeopenai.RateLimitStorm(10*time.Millisecond), 1)
	const secretSubject = "Quarterly invoice for Ada's secret project"
	if _, err := f.tier.Classify(context.Background(), request(secretSubject, "Payment is due in 14 days.")); err != nil {
		t.Fatal(err)
	}
	got := spans.GetSpans()
	if len(got) != 2 {
		t.Fatalf("%d spans, want 2 (a 429, then the answer)", len(got))
	}
	for i, want := range []string{llm.OutcomeRateLimited, llm.OutcomeOK} {
		s := got[i]
		attrs := map[string]string{}
		for _, kv := range s.Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
			if strings.Contains(kv.Value.Emit(), "secret project") || strings.Contains(kv.Value.Emit(), "Payment") {
				t.Errorf("span attribute %s carries mail text", kv.Key)
			}
		}
		if s.Name != "chat gpt-4o-mini" || s.SpanKind != trace.SpanKindClient || attrs["mailroom.llm.outcome"] != want ||
			attrs["gen_ai.request.model"] != "gpt-4o-mini" || attrs["mailroom.llm.key"] != "key-1" {
			t.Errorf("span %d: %s kind %v attributes %v; want a client span of outcome %s", i, s.Name, s.SpanKind, attrs, want)
		}
	}
	if attrs := got[1].Attributes; !slices.ContainsFunc(attrs, func(kv attribute.KeyValue) bool {
		return kv.Key == "gen_ai.usage.input_tokens" && kv.Value.AsInt64() > 0
	}) {
		t.Errorf("the answer's span has no input tokens: %v", attrs)
	}
}
