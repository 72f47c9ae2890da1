package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
		deleteStreams(t, js, topo)
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
		deleteStreams(t, js, topo)
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

// deleteStreams deletes topo's streams when the test ends (the shared
// server keeps them otherwise).
func deleteStreams(t *testing.T, js jetstream.JetStream, topo eventbus.Topology) {
	t.Cleanup(func() {
		for _, sc := range topo.StreamConfigs() {
			_ = js.DeleteStream(context.Background(), sc.Name)
		}
	})
}

// A stream made by an older mailroom (limits retention, 7 days' maximum
// age, discard-old) is updated in place: no age limit, a byte limit,
// discard-new, and its messages kept.
func TestEnsureStreamsUpgradesAnOldStream(t *testing.T) {
	servers(t, func(t *testing.T, url, prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, js, err := eventbus.Connect(url, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		topo := eventbus.Topology{Prefix: prefix, MaxBytes: 1 << 20}
		deleteStreams(t, js, topo)
		// What EnsureStreams made before.
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: topo.ReceivedStreamName(), Subjects: []string{topo.ReceivedAll()},
			Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: 1, Duplicates: 2 * time.Minute,
			MaxAge: 7 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := eventbus.Publish(ctx, js, topo.ReceivedSubject("live", "ada"), "m1", &eventsv1.MailReceived{User: "ada"}); err != nil {
			t.Fatal(err)
		}
		if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
			t.Fatalf("EnsureStreams over the old stream: %v", err)
		}
		s, err := js.Stream(ctx, topo.ReceivedStreamName())
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		if c := info.Config; c.MaxAge != 0 || c.MaxBytes != 1<<20 || c.Discard != jetstream.DiscardNew || c.Retention != jetstream.LimitsPolicy {
			t.Errorf("upgraded stream: max age %v, max bytes %d, discard %v, retention %v; want 0, %d, new, limits",
				c.MaxAge, c.MaxBytes, c.Discard, c.Retention, 1<<20)
		}
		if info.State.Msgs != 1 {
			t.Errorf("upgraded stream keeps %d messages, want 1", info.State.Msgs)
		}
	})
}

// A full work stream refuses the next mail with ErrStreamFull and keeps
// the mail it holds.
func TestFullStreamRefusesNewMail(t *testing.T) {
	servers(t, func(t *testing.T, url, prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, js, err := eventbus.Connect(url, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		topo := eventbus.Topology{Prefix: prefix, MaxBytes: 8 << 10}
		deleteStreams(t, js, topo)
		if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
			t.Fatal(err)
		}
		ev := &eventsv1.MailReceived{User: "ada", Message: strings.Repeat("x", 1000)}
		published := 0
		var perr error
		for i := range 100 {
			if _, perr = eventbus.Publish(ctx, js, topo.ReceivedSubject("live", "ada"), fmt.Sprint(i), ev); perr != nil {
				break
			}
			published++
		}
		if !errors.Is(perr, eventbus.ErrStreamFull) {
			t.Fatalf("after %d mails the publish says %v, want ErrStreamFull", published, perr)
		}
		s, _ := js.Stream(ctx, topo.ReceivedStreamName())
		info, err := s.Info(ctx)
		if err != nil || info.State.Msgs != uint64(published) || info.State.FirstSeq != 1 {
			t.Errorf("stream holds %d messages from %d (%v), want the %d published from 1", info.State.Msgs, info.State.FirstSeq, err, published)
		}
	})
}

// Trim removes what every work consumer has acknowledged, nothing while
// one of them is missing, and nothing while advisories wait.
func TestTrimRemovesOnlyWhatEveryConsumerFinished(t *testing.T) {
	servers(t, func(t *testing.T, url, prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, js, err := eventbus.Connect(url, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		topo := eventbus.Topology{Prefix: prefix}
		deleteStreams(t, js, topo)
		if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
			t.Fatal(err)
		}
		stream := topo.ReceivedStreamName()
		for i := range 6 {
			lane := []string{"live", "backfill"}[i%2]
			if _, err := eventbus.Publish(ctx, js, topo.ReceivedSubject(lane, "ada"), fmt.Sprint(i), &eventsv1.MailReceived{User: "ada"}); err != nil {
				t.Fatal(err)
			}
		}
		consume := func(name, filter string, acks int) {
			t.Helper()
			c, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: name, FilterSubject: filter,
				AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if acks == 0 {
				return
			}
			b, err := c.Fetch(acks, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range b.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		consume("all", topo.ReceivedAll(), 6)
		consume("live", topo.ReceivedLane("live"), 3)         // seqs 1, 3, 5: all its mail
		consume("backfill", topo.ReceivedLane("backfill"), 1) // seq 2 of 2, 4, 6
		names := []string{"all", "live", "backfill"}
		if first, err := eventbus.Trim(ctx, js, stream, append(names, "missing")); err != nil || first != 0 {
			t.Errorf("Trim with a consumer missing = %d, %v; want nothing removed", first, err)
		}
		adv := eventbus.ConsumerRef{Stream: topo.AdvisoryStreamName(), Consumer: "adv"}
		if _, err := eventbus.Publish(ctx, js, topo.MaxDeliveriesSubject("live"), "a1", &eventsv1.MailReceived{}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, adv.Stream, jetstream.ConsumerConfig{Durable: adv.Consumer, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
		if first, err := eventbus.Trim(ctx, js, stream, names, adv); err != nil || first != 0 {
			t.Errorf("Trim while an advisory waits = %d, %v; want nothing removed", first, err)
		}
		first, err := eventbus.Trim(ctx, js, stream, names)
		if err != nil || first != 3 {
			t.Fatalf("Trim = %d, %v; want 3 (backfill has acknowledged up to 2)", first, err)
		}
		s, _ := js.Stream(ctx, stream)
		info, err := s.Info(ctx)
		if err != nil || info.State.FirstSeq != 3 || info.State.Msgs != 4 {
			t.Errorf("stream keeps %d messages from %d (%v), want 4 from 3", info.State.Msgs, info.State.FirstSeq, err)
		}
	})
}

// A message whose last delivery is never acknowledged is named by a
// max-deliveries advisory, which the advisory stream keeps.
func TestMaxDeliveriesAdvisoryIsKept(t *testing.T) {
	servers(t, func(t *testing.T, url, prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		nc, js, err := eventbus.Connect(url, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		topo := eventbus.Topology{Prefix: prefix}
		deleteStreams(t, js, topo)
		if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
			t.Fatal(err)
		}
		ack, err := eventbus.Publish(ctx, js, topo.ReceivedSubject("live", "ada"), "m1", &eventsv1.MailReceived{User: "ada"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := js.CreateOrUpdateConsumer(ctx, topo.ReceivedStreamName(), jetstream.ConsumerConfig{Durable: "never-acks",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: 2})
		if err != nil {
			t.Fatal(err)
		}
		adv, err := js.CreateOrUpdateConsumer(ctx, topo.AdvisoryStreamName(), jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		// Deliveries without an ack: the server redelivers after AckWait,
		// then gives up and says so.
		for ctx.Err() == nil {
			b, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for range b.Messages() {
			}
			a, err := adv.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range a.Messages() {
				var got eventbus.MaxDeliveries
				if err := json.Unmarshal(m.Data(), &got); err != nil {
					t.Fatal(err)
				}
				if got.StreamSeq != ack.Sequence || got.Consumer != "never-acks" || got.Stream != topo.ReceivedStreamName() {
					t.Errorf("advisory %+v, want stream %s consumer never-acks seq %d", got, topo.ReceivedStreamName(), ack.Sequence)
				}
				return
			}
		}
		t.Fatal("no max-deliveries advisory")
	})
}
