package classifier_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/classify"
)

// A mail whose last delivery is never acknowledged (a consumer that never
// acks stands for a replica that crashes, hangs past AckWait or cannot
// publish the dead letter) ends in the dead letters, through the server's
// max-deliveries advisory.
func TestUnacknowledgedLastDeliveryIsDeadLettered(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A subject of mail.received that none of the lanes takes, so that
	// only the consumer that never acks delivers it.
	ev := received("ada", "m-unacked", personalSubject, personalFrom, personalBody)
	subject := e.topo.Prefix + "mail.received.nolane.ada"
	if _, err := eventbus.Publish(ctx, e.js, subject, "unacked", ev); err != nil {
		t.Fatal(err)
	}
	cons, err := e.js.CreateOrUpdateConsumer(ctx, e.topo.ReceivedStreamName(), jetstream.ConsumerConfig{
		Durable: "never-acks", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxDeliver: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	for ctx.Err() == nil {
		if dead := deadLetters(t, e); dead[ev.GetMessage()] != nil {
			if got := dead[ev.GetMessage()].GetAttempts(); got != 2 {
				t.Errorf("dead letter says %d attempts, want 2", got)
			}
			if deliveries != 2 {
				t.Errorf("delivered %d times, want 2", deliveries)
			}
			return
		}
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for range b.Messages() {
			deliveries++
		}
	}
	t.Fatalf("the mail is not in the dead letters after %d deliveries", deliveries)
}

// The lanes' consumers are the ones eventbus.Trim waits for, and a lane's
// consumer that is deleted is created again, and classifies.
func TestLaneConsumersAreKept(t *testing.T) {
	topo := eventbus.Topology{}
	want := map[string]bool{}
	for _, n := range topo.WorkConsumers()[topo.ReceivedStreamName()] {
		want[n] = true
	}
	for _, lane := range []classify.Lane{classify.LaneInteractive, classify.LaneLive, classify.LaneBackfill} {
		if !want["classifier-"+string(lane)] {
			t.Errorf("classifier-%s is not among the work consumers %v", lane, want)
		}
	}

	e := start(t, testenv.NATS(t), "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.js.DeleteConsumer(ctx, e.topo.ReceivedStreamName(), "classifier-backfill"); err != nil {
		t.Fatal(err)
	}
	publish(t, e, received("ada", "m-after", newsletterSubject, newsletterFrom, newsletterBody), "after")
	classifiedInStream(t, e, 1)
}
