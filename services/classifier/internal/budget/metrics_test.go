package budget_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mailroom.dev/services/classifier/internal/budget"
)

func TestRegisterMetrics(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	store := &memStore{days: map[string]int64{budget.Day(now): 1_500_000, "2000-01-01": 2_000_000}}
	g := budget.New(store, budget.Config{DailyMicros: 5_000_000, CreditMicros: 10_000_000, Now: func() time.Time { return now }})
	reader := sdkmetric.NewManualReader()
	reg, err := budget.RegisterMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), g)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					s, _ := p.Attributes.Value(attribute.Key("scope"))
					got[m.Name+"/"+s.AsString()] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = float64(p.Value)
				}
			}
		}
	}
	want := map[string]float64{
		"mailroom_budget_remaining_usd/daily":  3.5,
		"mailroom_budget_remaining_usd/credit": 6.5,
		"mailroom_budget_limit_usd/daily":      5,
		"mailroom_budget_limit_usd/credit":     10,
		"mailroom_budget_exhausted":            0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
