package gmailsync

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/api/googleapi"

	"mailroom.dev/services/ingest/internal/mailbox"
)

func TestQuotaUnitsCounted(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	g := New(Config{Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 3,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	s := &session{g: g, quota: g.quota("users/ada/mailboxes/m"), run: &mailbox.SyncRun{Logger: slog.New(slog.DiscardHandler)}}
	calls := 0
	err := s.call(context.Background(), g.cfg.Quota.Get, "messages.get", func() error {
		calls++
		if calls == 1 {
			return &googleapi.Error{Code: 429, Message: "Too many requests"}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := p.Attributes.Value(attribute.Key("result"))
				got[m.Name+"/"+r.AsString()] = p.Value
			}
		}
	}
	want := map[string]int64{
		"mailroom_gmail_quota_units_total/used":    2 * int64(DefaultQuota.Get),
		"mailroom_gmail_quota_units_total/refused": int64(DefaultQuota.Get),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
