package llm

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mailroom.dev/services/classifier/internal/classify"
)

// Outcomes of one model call, the outcome label of
// mailroom_llm_requests_total.
const (
	// OutcomeOK: an answer that fits the schema.
	OutcomeOK = "ok"
	// OutcomeRateLimited: a 429 that freezes the key (not a failure).
	OutcomeRateLimited = "rate_limited"
	// OutcomeServerError: a 5xx, 408 or 409; tried again.
	OutcomeServerError = "server_error"
	// OutcomeTimeout: no answer at all (timed out, connection reset or
	// refused); tried again.
	OutcomeTimeout = "timeout"
	// OutcomeInvalidAnswer: a 200 whose answer breaks the schema; tried again.
	OutcomeInvalidAnswer = "invalid_answer"
	// OutcomeRefused: the model declined to classify (the mail becomes other).
	OutcomeRefused = "refused"
	// OutcomeRejected: any other 4xx (bad request, bad key, insufficient
	// quota, a request larger than the limit); never tried again.
	OutcomeRejected = "rejected"
)

// durationBuckets are the bounds of mailroom_llm_request_duration_seconds:
// a classification takes 0.3 to a few seconds; a timeout is 30 s.
var durationBuckets = []float64{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60}

// waitBuckets are the bounds of mailroom_lane_wait_seconds: the live lane
// should send within seconds, a backfill may wait an hour.
var waitBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200}

// metrics are the tier's instruments.
type metrics struct {
	laneWait metric.Float64Histogram
	requests metric.Int64Counter
	tokens   metric.Int64Counter
	cost     metric.Float64Counter
	duration metric.Float64Histogram
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("mailroom.dev/services/classifier/internal/llm")
	// Errors come only from invalid names or options, fixed here; a nil
	// instrument is never returned (a no-op one is).
	requests, _ := m.Int64Counter("mailroom_llm_requests_total",
		metric.WithDescription("Model calls by outcome: ok, rate_limited, server_error, timeout, invalid_answer, refused, rejected."))
	tokens, _ := m.Int64Counter("mailroom_llm_tokens_total",
		metric.WithDescription("Tokens the model API reported by kind: prompt (cached ones included), cached_prompt, completion."))
	cost, _ := m.Float64Counter("mailroom_llm_cost_usd_total",
		metric.WithDescription("Spend on model calls in US dollars, by the price table."))
	duration, _ := m.Float64Histogram("mailroom_llm_request_duration_seconds",
		metric.WithDescription("Latency of one model call, whatever its outcome."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	laneWait, _ := m.Float64Histogram("mailroom_lane_wait_seconds",
		metric.WithDescription("Time from the mail's arrival (ingest) to its first request to the model, by lane."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(waitBuckets...))
	return &metrics{laneWait: laneWait, requests: requests, tokens: tokens, cost: cost, duration: duration}
}

// call records one model call. key is the limiter's key ID, which shows at
// most the key's last four characters.
func (m *metrics) call(ctx context.Context, model, key, outcome string, took time.Duration, r result, costMicros int64) {
	mod := attribute.String("model", model)
	m.requests.Add(ctx, 1, metric.WithAttributes(mod, attribute.String("key", key), attribute.String("outcome", outcome)))
	m.duration.Record(ctx, took.Seconds(), metric.WithAttributes(mod))
	if r.prompt > 0 {
		m.tokens.Add(ctx, r.prompt, metric.WithAttributes(mod, attribute.String("kind", "prompt")))
	}
	if r.cached > 0 {
		m.tokens.Add(ctx, r.cached, metric.WithAttributes(mod, attribute.String("kind", "cached_prompt")))
	}
	if r.completion > 0 {
		m.tokens.Add(ctx, r.completion, metric.WithAttributes(mod, attribute.String("kind", "completion")))
	}
	if costMicros > 0 {
		m.cost.Add(ctx, float64(costMicros)/1e6, metric.WithAttributes(mod))
	}
}

// sent records the wait of a classification's first request to the model.
func (m *metrics) sent(ctx context.Context, req classify.Request) {
	if req.Received.IsZero() {
		return
	}
	m.laneWait.Record(ctx, max(time.Since(req.Received).Seconds(), 0),
		metric.WithAttributes(attribute.String("lane", LimiterLane(req.Lane).String())))
}

// outcomeOf names a call's outcome; problem is what verdict found wrong
// with an answer ("" when nothing).
func outcomeOf(r result, problem string) string {
	switch {
	case r.rateLimited:
		return OutcomeRateLimited
	case r.err != nil && r.outcome.Status == 0:
		return OutcomeTimeout
	case r.err != nil && r.permanent:
		return OutcomeRejected
	case r.err != nil && r.outcome.Status >= 200 && r.outcome.Status < 300:
		return OutcomeInvalidAnswer // a 200 with no choices
	case r.err != nil:
		return OutcomeServerError
	case problem != "":
		return OutcomeInvalidAnswer
	case r.refusal != "":
		return OutcomeRefused
	}
	return OutcomeOK
}
