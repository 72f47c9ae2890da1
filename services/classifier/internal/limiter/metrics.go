package limiter

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RegisterMetrics publishes l's state, read from Status at each collection,
// as observable gauges of mp (nil: the global meter provider):
//
//	mailroom_limiter_limit{key,model,resource}      per minute, resource = requests, tokens
//	mailroom_limiter_available{key,model,resource}  in the bucket now
//	mailroom_limiter_in_flight{key,model}           requests out
//	mailroom_limiter_frozen{key,model}              1 while a 429 freeze lasts
//	mailroom_limiter_ceiling{key,model}             fraction of the limit in use after 429s
//	mailroom_lane_waiting{lane}                     requests waiting for capacity
//	mailroom_limiter_share                          this replica's share of the limits
//
// The key label is the key's ID (KeyConfig.ID), which must not reveal the
// key. Unregister the returned registration when l is dropped.
func RegisterMetrics(mp metric.MeterProvider, l *Limiter) (metric.Registration, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("mailroom.dev/services/classifier/internal/limiter")
	limit, err1 := m.Float64ObservableGauge("mailroom_limiter_limit",
		metric.WithDescription("Rate the limiter admits at now, per minute (the limit in force × share × ceiling)."))
	available, err2 := m.Float64ObservableGauge("mailroom_limiter_available",
		metric.WithDescription("Requests or tokens in the limiter's bucket now."))
	inFlight, err3 := m.Int64ObservableGauge("mailroom_limiter_in_flight",
		metric.WithDescription("Model requests sent and not yet answered."))
	frozen, err4 := m.Int64ObservableGauge("mailroom_limiter_frozen",
		metric.WithDescription("1 while a 429 keeps the key's pool frozen."))
	ceiling, err5 := m.Float64ObservableGauge("mailroom_limiter_ceiling",
		metric.WithDescription("Fraction of the limit in force the pool uses now (below 1 for a while after a 429)."))
	waiting, err6 := m.Int64ObservableGauge("mailroom_lane_waiting",
		metric.WithDescription("Requests waiting for rate-limit capacity, by lane."))
	share, err7 := m.Float64ObservableGauge("mailroom_limiter_share",
		metric.WithDescription("This replica's share of each key's limits."))
	for _, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
		if err != nil {
			return nil, err
		}
	}
	requests, tokens := attribute.String("resource", "requests"), attribute.String("resource", "tokens")
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := l.Status()
		for _, k := range s.Keys {
			kl := []attribute.KeyValue{attribute.String("key", k.ID), attribute.String("model", k.Model)}
			o.ObserveFloat64(limit, k.RequestsPerMinute, metric.WithAttributes(append(kl, requests)...))
			o.ObserveFloat64(limit, k.TokensPerMinute, metric.WithAttributes(append(kl, tokens)...))
			o.ObserveFloat64(available, k.RequestsAvailable, metric.WithAttributes(append(kl, requests)...))
			o.ObserveFloat64(available, k.TokensAvailable, metric.WithAttributes(append(kl, tokens)...))
			o.ObserveInt64(inFlight, int64(k.InFlight), metric.WithAttributes(kl...))
			var f int64
			if k.Frozen > 0 {
				f = 1
			}
			o.ObserveInt64(frozen, f, metric.WithAttributes(kl...))
			o.ObserveFloat64(ceiling, k.Ceiling, metric.WithAttributes(kl...))
		}
		for _, lane := range Lanes() {
			o.ObserveInt64(waiting, int64(s.Waiting[lane]), metric.WithAttributes(attribute.String("lane", lane.String())))
		}
		o.ObserveFloat64(share, s.Share)
		return nil
	}, limit, available, inFlight, frozen, ceiling, waiting, share)
}
