package mailbox

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Results of a message in a sync, the result label of
// mailroom_sync_messages_total.
const (
	ResultPublished = "published" // handed to the classifier
	ResultSkipped   = "skipped"   // the mailbox has it already, or it vanished
	ResultExpired   = "expired"   // older than MaxMessageAge
	ResultFailed    = "failed"    // unparsable or over the size limit
)

// metrics are the sync instruments.
type metrics struct {
	messages metric.Int64Counter
	jobs     metric.Int64UpDownCounter
	ended    metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("mailroom.dev/services/ingest/internal/mailbox")
	messages, _ := m.Int64Counter("mailroom_sync_messages_total",
		metric.WithDescription("Messages a sync handled, by provider (gmail, imap) and result: published, skipped, expired, failed."))
	jobs, _ := m.Int64UpDownCounter("mailroom_sync_jobs",
		metric.WithDescription("Sync jobs running in this process, by provider and state (running)."))
	ended, _ := m.Int64Counter("mailroom_sync_jobs_ended_total",
		metric.WithDescription("Sync jobs that ended, by provider and state: succeeded, failed."))
	return &metrics{messages: messages, jobs: jobs, ended: ended}
}

// provider is the provider label of a mailbox kind: gmail, imap, import.
func provider(k Kind) string {
	switch k {
	case KindGmail, KindIMAP, KindImport:
		return strings.ToLower(string(k))
	}
	return "unknown"
}

func (m *metrics) message(ctx context.Context, k Kind, result string, n int) {
	if n > 0 {
		m.messages.Add(ctx, int64(n), metric.WithAttributes(attribute.String("provider", provider(k)), attribute.String("result", result)))
	}
}

func (m *metrics) running(ctx context.Context, k Kind, delta int64) {
	m.jobs.Add(ctx, delta, metric.WithAttributes(attribute.String("provider", provider(k)), attribute.String("state", "running")))
}

func (m *metrics) jobEnded(ctx context.Context, k Kind, state JobState) {
	m.ended.Add(ctx, 1, metric.WithAttributes(attribute.String("provider", provider(k)), attribute.String("state", strings.ToLower(string(state)))))
}
