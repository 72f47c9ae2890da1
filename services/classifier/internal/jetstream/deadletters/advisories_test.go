package deadletters_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/jetstream/consumer"
	"mailroom.dev/services/classifier/internal/jetstream/deadletters"
)

func mailEvent(id string) *eventsv1.MailReceived {
	return &eventsv1.MailReceived{
		User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: "users/ada/messages/" + id,
		ProviderMessageId: "p-" + id, Lane: mailv1.Lane_LANE_BACKFILL, IngestTime: timestamppb.Now(),
		Content: &mailv1.NormalizedMessage{Subject: "Question " + id, From: "grace@example.org",
			TextBody: "Could you look at it?", ContentHash: strings.Repeat("ab", 32)},
	}
}

// Dead letters written from JetStream's max-deliveries advisory count in
// mailroom_dead_letters_total (reason unacknowledged) like the consumer's
// own; one the consumer had written already (its ack was lost) is not
// written nor counted twice.
func TestAdvisoryDeadLettersAreCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, js, err := eventbus.Connect(testenv.NATS(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	// Two mails on a subject no lane takes; the second was dead-lettered
	// by the consumer already, with the id the consumer gives it.
	subject := topo.ReceivedSubject("nolane", "ada")
	var seqs []uint64
	for _, id := range []string{"m-unseen", "m-written"} {
		ack, err := eventbus.Publish(ctx, js, subject, id, mailEvent(id))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	written := &eventsv1.MailDeadLettered{Received: mailEvent("m-written"), Reason: "gave up", Attempts: 1, DeadTime: timestamppb.Now()}
	if _, err := eventbus.Publish(ctx, js, topo.DeadLetterSubject("ada"), deadletters.MsgID("users/ada/messages/m-written", seqs[1]), written); err != nil {
		t.Fatal(err)
	}
	// A consumer that never acknowledges: each mail's one delivery runs
	// out, and the server sends a max-deliveries advisory for it.
	never, err := js.CreateOrUpdateConsumer(ctx, topo.ReceivedStreamName(), jetstream.ConsumerConfig{
		Durable: "never-acks", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 500 * time.Millisecond, MaxDeliver: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := never.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range b.Messages() {
		n++
	}
	if n != 2 {
		t.Fatalf("fetched %d mails, want 2", n)
	}

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	adv := deadletters.NewAdvisories(js, topo, slog.New(slog.NewTextHandler(io.Discard, nil)))
	adv.Counted = consumer.DeadLettered(mp, consumer.ReasonUnacknowledged)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = adv.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// Both advisories handled: acknowledged, none pending.
	for {
		if ctx.Err() != nil {
			t.Fatal("the advisories were not handled within a minute")
		}
		time.Sleep(100 * time.Millisecond)
		c, err := js.Consumer(ctx, topo.AdvisoryStreamName(), eventbus.DeadLetterDurable)
		if err != nil {
			continue
		}
		info, err := c.Info(ctx)
		if err == nil && info.AckFloor.Stream >= 2 && info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
	}
	s, err := js.Stream(ctx, topo.DeadLetterStreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("%d dead letters, want 2 (one each)", info.State.Msgs)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "mailroom_dead_letters_total" {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := p.Attributes.Value(attribute.Key("reason"))
				got[r.AsString()] += p.Value
			}
		}
	}
	if len(got) != 1 || got[consumer.ReasonUnacknowledged] != 1 {
		t.Errorf("mailroom_dead_letters_total by reason = %v, want %s: 1", got, consumer.ReasonUnacknowledged)
	}
}
