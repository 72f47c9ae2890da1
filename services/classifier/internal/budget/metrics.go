package budget

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RegisterMetrics reports g's state at each collection as gauges of mp
// (nil: the global meter provider); a scope without a limit is left out:
//
//	mailroom_budget_remaining_usd{scope}  scope = daily (today's cap less today's spend), credit
//	mailroom_budget_limit_usd{scope}      the configured cap and credit
//	mailroom_budget_exhausted             1 while spending is stopped
func RegisterMetrics(mp metric.MeterProvider, g *Guard) (metric.Registration, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("mailroom.dev/services/classifier/internal/budget")
	remaining, err := m.Float64ObservableGauge("mailroom_budget_remaining_usd",
		metric.WithDescription("US dollars left to spend: scope daily (today's cap) or credit."))
	if err != nil {
		return nil, err
	}
	limit, err := m.Float64ObservableGauge("mailroom_budget_limit_usd",
		metric.WithDescription("The configured daily cap and credit in US dollars."))
	if err != nil {
		return nil, err
	}
	exhausted, err := m.Int64ObservableGauge("mailroom_budget_exhausted",
		metric.WithDescription("1 while the budget stops spending on the model."))
	if err != nil {
		return nil, err
	}
	daily, credit := metric.WithAttributes(attribute.String("scope", "daily")), metric.WithAttributes(attribute.String("scope", "credit"))
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		s := g.Status(ctx)
		if s.DailyMicros > 0 {
			o.ObserveFloat64(remaining, float64(max(0, s.DailyMicros-s.SpentTodayMicros))/1e6, daily)
			o.ObserveFloat64(limit, float64(s.DailyMicros)/1e6, daily)
		}
		if s.CreditRemainingMicros >= 0 {
			o.ObserveFloat64(remaining, float64(s.CreditRemainingMicros)/1e6, credit)
			o.ObserveFloat64(limit, float64(g.cfg.CreditMicros)/1e6, credit)
		}
		var e int64
		if s.Exhausted {
			e = 1
		}
		o.ObserveInt64(exhausted, e)
		return nil
	}, remaining, limit, exhausted)
}
