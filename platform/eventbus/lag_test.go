package eventbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"mailroom.dev/platform/eventbus"
)

// lagGauges collects reader once and returns every gauge point as
// "name/stream/consumer" → value.
func lagGauges(t *testing.T, reader sdkmetric.Reader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok {
				t.Fatalf("%s is a %T, want an int64 gauge", m.Name, m.Data)
			}
			for _, p := range g.DataPoints {
				if p.Attributes.Len() != 2 {
					t.Errorf("%s has labels %v, want stream and consumer alone", m.Name, p.Attributes.ToSlice())
				}
				s, _ := p.Attributes.Value(attribute.Key("stream"))
				c, _ := p.Attributes.Value(attribute.Key("consumer"))
				got[m.Name+"/"+s.AsString()+"/"+c.AsString()] = p.Value
			}
		}
	}
	return got
}

// The lag gauges follow a durable consumer through publishes, deliveries,
// a nak and acks, as its consumer info reports them; a consumer that does
// not exist is left out.
func TestRegisterLagFollowsTheConsumer(t *testing.T) {
	servers(t, func(t *testing.T, url, prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, js, err := eventbus.Connect(url, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		topo := eventbus.Topology{Prefix: prefix}
		if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, s := range []string{topo.ReceivedStreamName(), topo.ClassifiedStreamName(), topo.DeadLetterStreamName()} {
				_ = js.DeleteStream(context.Background(), s)
			}
		})
		stream := topo.ClassifiedStreamName()
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "store-classified", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: topo.ClassifiedAll(),
			AckWait: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}

		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		reg, err := eventbus.RegisterLag(mp, js,
			eventbus.Durable{Stream: stream, Consumer: "store-classified"},
			eventbus.Durable{Stream: stream, Consumer: "nobody"}) // left out
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Unregister()

		key := func(name string) string { return name + "/" + stream + "/store-classified" }
		check := func(step string, pending, ackPending, redelivered int64) {
			t.Helper()
			got := lagGauges(t, reader)
			want := map[string]int64{
				key("mailroom_consumer_pending"):     pending,
				key("mailroom_consumer_ack_pending"): ackPending,
				key("mailroom_consumer_redelivered"): redelivered,
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s: %s = %d (present %v), want %d", step, k, g, ok, v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%s: got %v, want only %v", step, got, want)
			}
		}

		check("no message", 0, 0, 0)
		for _, user := range []string{"u1", "u2", "u3"} {
			if _, err := js.Publish(ctx, topo.ClassifiedSubject(user), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		check("three published", 3, 0, 0)

		fetch := func(n int) []jetstream.Msg {
			t.Helper()
			batch, err := cons.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var msgs []jetstream.Msg
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			if len(msgs) != n {
				t.Fatalf("fetched %d messages, want %d", len(msgs), n)
			}
			return msgs
		}
		msgs := fetch(2)
		check("two delivered", 1, 2, 0)
		msgs = append(msgs, fetch(1)...)
		check("three delivered", 0, 3, 0)

		// A nak puts one back (nothing else is pending, so the next fetch
		// gets it); delivered again, it counts as redelivered.
		if err := msgs[0].Nak(); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs[1:] {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		again := fetch(1)
		check("one redelivered", 0, 1, 1)

		if err := again[0].DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		check("all acked", 0, 0, 0)
	})
}
