package gmailsync

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// quotaMetrics count Gmail quota units: mailroom_gmail_quota_units_total
// with result used (every call made, at its price) or refused (the calls
// Gmail answered with a rate limit, a subset of used).
type quotaMetrics struct {
	units metric.Int64Counter
}

func newQuotaMetrics(mp metric.MeterProvider) *quotaMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	units, _ := mp.Meter("mailroom.dev/services/ingest/internal/gmailsync").Int64Counter("mailroom_gmail_quota_units_total",
		metric.WithDescription("Gmail per-user quota units, by result: used (every call, at its price), refused (calls Gmail rate-limited)."))
	return &quotaMetrics{units: units}
}

var (
	resultUsed    = metric.WithAttributes(attribute.String("result", "used"))
	resultRefused = metric.WithAttributes(attribute.String("result", "refused"))
)

// call records one call of cost units; limited when Gmail refused it for
// a rate limit.
func (m *quotaMetrics) call(ctx context.Context, cost int, limited bool) {
	m.units.Add(ctx, int64(cost), resultUsed)
	if limited {
		m.units.Add(ctx, int64(cost), resultRefused)
	}
}
