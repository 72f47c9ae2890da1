package limiter_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mailroom.dev/services/classifier/internal/limiter"
)

// gauge returns the value of a gauge's point whose labels include want.
func gauge(t *testing.T, r *sdkmetric.ManualReader, name string, want ...attribute.KeyValue) (float64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	match := func(s attribute.Set) bool {
		for _, kv := range want {
			if v, ok := s.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return p.Value, true
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return float64(p.Value), true
					}
				}
			}
		}
	}
	return 0, false
}

func TestRegisterMetricsReadsStatus(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	const id = "key-1 (…abcd)"
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: id, RPM: 6000, TPM: 600_000}}, Models: []string{"gpt-4o-mini"}})
	reg, err := limiter.RegisterMetrics(mp, l)
	if err != nil {
		t.Fatal(err)
	}
	key, model := attribute.String("key", id), attribute.String("model", "gpt-4o-mini")
	check := func(name string, want float64, labels ...attribute.KeyValue) {
		t.Helper()
		got, ok := gauge(t, reader, name, labels...)
		if !ok || got != want {
			t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, ok, want)
		}
	}
	check("mailroom_limiter_limit", 6000, key, model, attribute.String("resource", "requests"))
	check("mailroom_limiter_limit", 600_000, key, model, attribute.String("resource", "tokens"))
	check("mailroom_limiter_in_flight", 0, key, model)
	check("mailroom_limiter_frozen", 0, key, model)
	check("mailroom_limiter_share", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := l.Acquire(ctx, limiter.Request{User: "u", Lane: limiter.Live, Model: "gpt-4o-mini", Tokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	check("mailroom_limiter_in_flight", 1, key, model)
	if got, ok := gauge(t, reader, "mailroom_limiter_available", key, model, attribute.String("resource", "tokens")); !ok || got < 0 || got > 600_000 {
		t.Errorf("available tokens = %v (found %v), want a bucket level", got, ok)
	}
	p.Done(limiter.Outcome{Status: 429, Header: http.Header{"Retry-After": {"30"}}})
	check("mailroom_limiter_in_flight", 0, key, model)
	check("mailroom_limiter_frozen", 1, key, model)

	// A request waits for the freeze to end: the live lane counts it.
	done := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, limiter.Request{User: "u", Lane: limiter.Live, Model: "gpt-4o-mini", Tokens: 100})
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if got, _ := gauge(t, reader, "mailroom_lane_waiting", attribute.String("lane", "live")); got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mailroom_lane_waiting{lane=live} never reached 1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	check("mailroom_lane_waiting", 0, attribute.String("lane", "backfill"))
	cancel()
	<-done

	// Unregistered, the limiter is no longer read.
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if _, ok := gauge(t, reader, "mailroom_limiter_limit"); ok {
		t.Error("gauges still reported after Unregister")
	}
}
