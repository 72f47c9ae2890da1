package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/jetstream/consumer"
)

func TestWriteMetrics(t *testing.T) {
	// The database refuses the first two attempts: whether the first is a
	// batch (retried one by one, the first retry refused) or a single
	// event, at least one event fails and is redelivered.
	var mu sync.Mutex
	failures := 2
	rec := newRecorder(func([]string) error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return errors.New("connection refused")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js, err := eventbus.Connect(testenv.NATS(t), "consumer-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{Prefix: "t."}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	c, err := consumer.New(ctx, js, topo, rec, slog.New(slog.DiscardHandler), consumer.Options{
		MaxWait: 300 * time.Millisecond, AckWait: 5 * time.Second, NakDelay: 20 * time.Millisecond,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := harness{js: js, topo: topo, consumers: c}
	h.run(t)
	var want []string
	for i := range 4 {
		id := fmt.Sprintf("m%d", i)
		want = append(want, id)
		h.publishReceived(t, id)
	}
	waitFor(t, "all events recorded", func() bool { return slices.Equal(rec.receivedIDs(), want) })

	var rows, failed, batches int64
	collect := func() {
		rows, failed, batches = 0, 0, 0
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, p := range d.DataPoints {
						if k, _ := p.Attributes.Value(attribute.Key("kind")); k.AsString() != consumer.KindMessage {
							t.Errorf("%s: kind %q", m.Name, k.AsString())
						}
						switch m.Name {
						case "mailroom_store_rows_written_total":
							rows += p.Value
						case "mailroom_store_write_failures_total":
							failed += p.Value
						}
					}
				case metricdata.Histogram[float64]:
					for _, p := range d.DataPoints {
						batches += int64(p.Count)
					}
				}
			}
		}
	}
	// The metrics follow the recorder's return: wait for them.
	waitFor(t, "rows counted", func() bool { collect(); return rows >= 4 })
	if rows != 4 {
		t.Errorf("rows written = %d, want 4", rows)
	}
	if failed < 1 {
		t.Errorf("write failures = %d, want at least 1", failed)
	}
	rec.mu.Lock()
	calls := int64(len(rec.calls))
	rec.mu.Unlock()
	if batches != calls {
		t.Errorf("batches timed = %d, recorder calls = %d", batches, calls)
	}
}
