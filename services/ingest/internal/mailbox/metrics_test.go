package mailbox_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/sqlrepo"
)

func TestImportMetrics(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testenv.SQLiteURL(t), sqlrepo.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reader := sdkmetric.NewManualReader()
	svc := mailbox.NewService(sqlrepo.New(db.SQL), &recorder{}, mailbox.Config{MaxMessageBytes: 1 << 20, Now: func() time.Time { return now },
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if _, err := svc.CreateMailbox(ctx, "ada", mailbox.Mailbox{Kind: mailbox.KindImport}, "inbox", ""); err != nil {
		t.Fatal(err)
	}
	// Two new messages, then one of them again.
	if _, err := svc.ImportMessages(ctx, "ada", "inbox", [][]byte{mail("one"), mail("two")}, mailbox.LaneLive); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ImportMessages(ctx, "ada", "inbox", [][]byte{mail("one")}, mailbox.LaneLive); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "mailroom_sync_messages_total" {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				pr, _ := p.Attributes.Value(attribute.Key("provider"))
				r, _ := p.Attributes.Value(attribute.Key("result"))
				got[pr.AsString()+"/"+r.AsString()] = p.Value
			}
		}
	}
	if got["import/published"] != 2 || got["import/skipped"] != 1 || len(got) != 2 {
		t.Errorf("mailroom_sync_messages_total = %v, want import/published 2, import/skipped 1", got)
	}
}
