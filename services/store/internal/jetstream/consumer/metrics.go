package consumer

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Kinds of rows, the kind label of the store's write metrics.
const (
	KindMessage        = "message"        // mail.received: a message, pending
	KindClassification = "classification" // mail.classified: its classification
	KindDeadLetter     = "dead_letter"    // mail.dead: a message marked failed
)

// batchBuckets are the bounds of mailroom_store_batch_seconds: a batch
// commits in milliseconds; seconds mean a database in trouble.
var batchBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics are the store consumer's instruments.
type metrics struct {
	rows     metric.Int64Counter
	failures metric.Int64Counter
	batch    metric.Float64Histogram
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("mailroom.dev/services/store/internal/jetstream/consumer")
	rows, _ := m.Int64Counter("mailroom_store_rows_written_total",
		metric.WithDescription("Events recorded in the database (idempotent upserts), by kind: message, classification, dead_letter."))
	failures, _ := m.Int64Counter("mailroom_store_write_failures_total",
		metric.WithDescription("Events whose recording failed and that will be redelivered, by kind."))
	batch, _ := m.Float64Histogram("mailroom_store_batch_seconds",
		metric.WithDescription("Time to record one batch (one transaction), by kind, whatever its result."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(batchBuckets...))
	return &metrics{rows: rows, failures: failures, batch: batch}
}

func (m *metrics) recorded(ctx context.Context, kind string, rows int, took time.Duration) {
	k := metric.WithAttributes(attribute.String("kind", kind))
	m.batch.Record(ctx, took.Seconds(), k)
	if rows > 0 {
		m.rows.Add(ctx, int64(rows), k)
	}
}

func (m *metrics) failed(ctx context.Context, kind string, n int) {
	if n > 0 {
		m.failures.Add(ctx, int64(n), metric.WithAttributes(attribute.String("kind", kind)))
	}
}
