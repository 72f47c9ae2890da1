package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/jetstream/consumer"
)

func TestClassificationLabels(t *testing.T) {
	for _, tc := range []struct {
		v                     classify.Verdict
		wantSource, wantCateg string
	}{
		{classify.Verdict{Source: classify.SourceLLM, Category: "finance"}, "llm", "finance"},
		{classify.Verdict{Source: classify.SourceRules, Category: "newsletters"}, "rules", "newsletters"},
		{classify.Verdict{Source: classify.SourceCache, Category: "other"}, "cache", "other"},
		// A user's own category never becomes a label value.
		{classify.Verdict{Source: classify.SourceLLM, Category: "ada's secret project"}, "llm", "custom"},
	} {
		s, c := consumer.ClassificationLabels(tc.v)
		if s != tc.wantSource || c != tc.wantCateg {
			t.Errorf("ClassificationLabels(%+v) = %q, %q; want %q, %q", tc.v, s, c, tc.wantSource, tc.wantCateg)
		}
	}
}

func TestRegisterMetricsReadsConsumerInfo(t *testing.T) {
	ctx := context.Background()
	nc, js, err := eventbus.Connect(testenv.NATS(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, topo.ReceivedStreamName(), jetstream.ConsumerConfig{Durable: "classifier-live", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, topo.ReceivedSubject("live", "u1"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, topo.DeadLetterSubject("u1"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	reg, err := consumer.RegisterMetrics(mp, js, []consumer.Lag{
		{Stream: topo.ReceivedStreamName(), Consumer: "classifier-live"},
		{Stream: topo.ReceivedStreamName(), Consumer: "nobody"}, // left out
	}, topo.DeadLetterStreamName())
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	collect := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
					c, _ := p.Attributes.Value(attribute.Key("consumer"))
					got[m.Name+"/"+c.AsString()] = p.Value
				}
			}
		}
		return got
	}
	// The server may count the published messages as pending a moment
	// after their PubAcks, on a loaded machine.
	got := collect()
	for deadline := time.Now().Add(5 * time.Second); got["mailroom_consumer_pending/classifier-live"] != 3 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		got = collect()
	}
	want := map[string]int64{
		"mailroom_consumer_pending/classifier-live":     3,
		"mailroom_consumer_ack_pending/classifier-live": 0,
		"mailroom_consumer_redelivered/classifier-live": 0,
		"mailroom_dead_letters/":                        1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
