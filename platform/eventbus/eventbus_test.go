package eventbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
)

// servers runs fn against the embedded NATS library and the shared server
// on :4222 (Debian's 2.9, the minimum version mailroom supports).
func servers(t *testing.T, fn func(t *testing.T, url, prefix string)) {
	t.Run("embedded", func(t *testing.T) { fn(t, testenv.NATS(t), "") })
	t.Run("external", func(t *testing.T) {
		url, prefix := testenv.ExternalNATS(t)
		fn(t, url, prefix)
	})
}

func TestPublishDeduplicatesAndCarriesTrace(t *testing.T) {
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
		// EnsureStreams is idempotent: a second service starting does the same.
		if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
			t.Fatalf("second EnsureStreams: %v", err)
		}

		tp := trace.NewTracerProvider()
		sctx, span := tp.Tracer("test").Start(ctx, "publish")
		ev := &eventsv1.MailReceived{User: "ada", Message: "users/ada/messages/m1", ProviderMessageId: "p1"}
		subj := topo.ReceivedSubject("backfill", "ada")
		ack1, err := eventbus.Publish(sctx, js, subj, "mb1/p1", ev)
		if err != nil {
			t.Fatal(err)
		}
		ack2, err := eventbus.Publish(sctx, js, subj, "mb1/p1", ev)
		if err != nil {
			t.Fatal(err)
		}
		span.End()
		if ack1.Duplicate || !ack2.Duplicate || ack1.Sequence != ack2.Sequence {
			t.Errorf("acks %+v then %+v: want the second to be a duplicate of the first", ack1, ack2)
		}

		cons, err := js.CreateOrUpdateConsumer(ctx, topo.ReceivedStreamName(), jetstream.ConsumerConfig{
			Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: topo.ReceivedAll(),
		})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []jetstream.Msg
		for m := range batch.Messages() {
			got = append(got, m)
		}
		if len(got) != 1 {
			t.Fatalf("fetched %d messages, want 1 (the duplicate must not be stored)", len(got))
		}
		var back eventsv1.MailReceived
		if err := proto.Unmarshal(got[0].Data(), &back); err != nil || !proto.Equal(&back, ev) {
			t.Errorf("event = %v (%v), want %v", &back, err, ev)
		}
		rctx := eventbus.Extract(context.Background(), got[0])
		if gotID, wantID := oteltrace.SpanContextFromContext(rctx).TraceID(), span.SpanContext().TraceID(); gotID != wantID {
			t.Errorf("trace id = %s, want %s", gotID, wantID)
		}
		if err := got[0].DoubleAck(ctx); err != nil {
			t.Errorf("DoubleAck: %v", err)
		}
	})
}

func TestTopologyPrefixes(t *testing.T) {
	topo := eventbus.Topology{Prefix: "t1a2."}
	if got, want := topo.ReceivedSubject("live", "ada"), "t1a2.mail.received.live.ada"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	if got, want := topo.ReceivedStreamName(), "T1A2_MAIL_RECEIVED"; got != want {
		t.Errorf("stream = %q, want %q", got, want)
	}
	if got, want := (eventbus.Topology{}).ClassifiedSubject("ada"), "mail.classified.ada"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
}

func TestPurgeSubjectTakesOneUsersEvents(t *testing.T) {
	servers(t, func(t *testing.T, url, prefix string) {
		ctx := context.Background()
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
		for i, subj := range []string{
			topo.ReceivedSubject("live", "bob"), topo.ReceivedSubject("backfill", "bob"),
			topo.ReceivedSubject("backfill", "bob"), topo.ReceivedSubject("backfill", "ada"),
		} {
			if _, err := eventbus.Publish(ctx, js, subj, fmt.Sprint(i), &eventsv1.MailReceived{User: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := eventbus.PurgeSubject(ctx, js, topo.ReceivedStreamName(), topo.ReceivedOfUser("bob"))
		if err != nil || n != 3 {
			t.Fatalf("purged %d, %v; want bob's 3", n, err)
		}
		s, _ := js.Stream(ctx, topo.ReceivedStreamName())
		info, err := s.Info(ctx)
		if err != nil || info.State.Msgs != 1 {
			t.Fatalf("stream keeps %d messages, %v; want ada's 1", info.State.Msgs, err)
		}
		if n, err := eventbus.PurgeSubject(ctx, js, topo.ReceivedStreamName(), topo.ReceivedOfUser("bob")); err != nil || n != 0 {
			t.Errorf("second purge = %d, %v; want 0", n, err)
		}
	})
}
