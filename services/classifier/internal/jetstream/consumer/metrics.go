package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"mailroom.dev/services/classifier/internal/classify"
)

const scope = "mailroom.dev/services/classifier/internal/jetstream/consumer"

// Dead-letter reasons, the reason label of mailroom_dead_letters_total.
const (
	// ReasonGaveUp: the model tier gave up (every attempt failed, or the
	// request can never be sent).
	ReasonGaveUp = "gave_up"
	// ReasonMaxDeliver: the last delivery the server makes failed.
	ReasonMaxDeliver = "max_deliver"
	// ReasonUnacknowledged: the last delivery was never acknowledged (the
	// process crashed, was stopped, or ran out of AckWait), and the
	// server's max-deliveries advisory named the mail.
	ReasonUnacknowledged = "unacknowledged"
)

// metrics are the consumer's instruments.
type metrics struct {
	classifications metric.Int64Counter
	deadLetters     metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(scope)
	classifications, _ := m.Int64Counter("mailroom_classifications_total",
		metric.WithDescription("Mail classified and handed on, by the tier that decided (rules, cache, llm) and category (custom categories count as custom)."))
	deadLetters, _ := m.Int64Counter("mailroom_dead_letters_total",
		metric.WithDescription(deadLettersDescription))
	return &metrics{classifications: classifications, deadLetters: deadLetters}
}

func (m *metrics) classified(ctx context.Context, v classify.Verdict) {
	source, category := ClassificationLabels(v)
	m.classifications.Add(ctx, 1, metric.WithAttributes(attribute.String("source", source), attribute.String("category", category)))
}

func (m *metrics) deadLettered(ctx context.Context, reason string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

const deadLettersDescription = "Mail written to the dead letters, by reason: gave_up, max_deliver, unacknowledged."

// DeadLettered returns a function that counts one dead letter of reason in
// mailroom_dead_letters_total of mp (nil: the global provider), for those
// written outside a consumer (the max-deliveries advisories).
func DeadLettered(mp metric.MeterProvider, reason string) func(context.Context) {
	m := newMetrics(mp)
	return func(ctx context.Context) { m.deadLettered(ctx, reason) }
}

// ClassificationLabels are the source and category labels of a verdict.
// A category outside the default taxonomy is "custom": users name their own
// categories, and a label must have a bounded set of values (and never
// carry what a user wrote).
func ClassificationLabels(v classify.Verdict) (source, category string) {
	switch v.Source {
	case classify.SourceRules:
		source = "rules"
	case classify.SourceCache:
		source = "cache"
	case classify.SourceLLM:
		source = "llm"
	default:
		source = "unspecified"
	}
	category = "custom"
	if classify.DefaultTaxonomy().Has(v.Category) {
		category = v.Category
	}
	return source, category
}

// Lag names one durable consumer whose lag RegisterMetrics reports.
type Lag struct {
	Stream, Consumer string
}

// RegisterMetrics reports, at each collection, the JetStream lag of the
// consumers named, read from their consumer info (a request to the server,
// bounded by 2 s), as observable gauges of mp (nil: the global provider):
//
//	mailroom_consumer_pending{stream,consumer}      messages not yet delivered
//	mailroom_consumer_ack_pending{stream,consumer}  delivered and not yet acknowledged
//	mailroom_consumer_redelivered{stream,consumer}  delivered more than once, not yet acknowledged
//	mailroom_dead_letters                           messages in deadStream (waiting for replay), when deadStream is not ""
//
// A consumer that cannot be read is left out of that collection.
func RegisterMetrics(mp metric.MeterProvider, js jetstream.JetStream, lags []Lag, deadStream string) (metric.Registration, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(scope)
	pending, err1 := m.Int64ObservableGauge("mailroom_consumer_pending",
		metric.WithDescription("Messages of the stream the durable consumer has not delivered yet."))
	ackPending, err2 := m.Int64ObservableGauge("mailroom_consumer_ack_pending",
		metric.WithDescription("Messages delivered and not yet acknowledged (delivery stops at MaxAckPending)."))
	redelivered, err3 := m.Int64ObservableGauge("mailroom_consumer_redelivered",
		metric.WithDescription("Messages delivered more than once and not yet acknowledged."))
	dead, err4 := m.Int64ObservableGauge("mailroom_dead_letters",
		metric.WithDescription("Dead letters waiting for replay."))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for _, l := range lags {
			c, err := js.Consumer(ctx, l.Stream, l.Consumer)
			if err != nil {
				continue
			}
			info, err := c.Info(ctx)
			if err != nil {
				continue
			}
			attrs := metric.WithAttributes(attribute.String("stream", l.Stream), attribute.String("consumer", l.Consumer))
			o.ObserveInt64(pending, int64(info.NumPending), attrs)
			o.ObserveInt64(ackPending, int64(info.NumAckPending), attrs)
			o.ObserveInt64(redelivered, int64(info.NumRedelivered), attrs)
		}
		if deadStream != "" {
			if s, err := js.Stream(ctx, deadStream); err == nil {
				if info, err := s.Info(ctx); err == nil {
					o.ObserveInt64(dead, int64(info.State.Msgs))
				}
			}
		}
		return nil
	}, pending, ackPending, redelivered, dead)
}
