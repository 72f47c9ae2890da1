package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/jetstream/consumer"
)

// A consumer of the store that is deleted is created again, and the mail
// published meanwhile is recorded.
func TestDeletedConsumersAreRecreated(t *testing.T) {
	e := start(t, testenv.SQLiteURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ada := authn.OutgoingToken(ctx, e.auth.Token("ada", false))
	for _, c := range []struct{ stream, durable string }{
		{e.topo.ReceivedStreamName(), consumer.ReceivedDurable},
		{e.topo.ClassifiedStreamName(), consumer.ClassifiedDurable},
	} {
		if err := e.js.DeleteConsumer(ctx, c.stream, c.durable); err != nil {
			t.Fatalf("delete %s: %v", c.durable, err)
		}
	}
	c := content("After the deletion", time.Now())
	if _, err := eventbus.Publish(ctx, e.js, e.topo.ReceivedSubject("backfill", "ada"), "r1", receivedEvent("m1", c)); err != nil {
		t.Fatal(err)
	}
	waitState(t, e, ada, "users/ada/messages/m1", storev1.MessageState_MESSAGE_STATE_PENDING)
	if _, err := eventbus.Publish(ctx, e.js, e.topo.ClassifiedSubject("ada"), "c1", classifiedEvent("m1", "newsletters", c)); err != nil {
		t.Fatal(err)
	}
	waitState(t, e, ada, "users/ada/messages/m1", storev1.MessageState_MESSAGE_STATE_CLASSIFIED)
}

// The durable consumers are those eventbus.Trim waits for.
func TestConsumersAreTheWorkConsumers(t *testing.T) {
	topo := eventbus.Topology{}
	has := func(stream, name string) bool {
		for _, n := range topo.WorkConsumers()[stream] {
			if n == name {
				return true
			}
		}
		return false
	}
	if !has(topo.ReceivedStreamName(), consumer.ReceivedDurable) || !has(topo.ClassifiedStreamName(), consumer.ClassifiedDurable) {
		t.Errorf("WorkConsumers = %v, want %s and %s among them", topo.WorkConsumers(), consumer.ReceivedDurable, consumer.ClassifiedDurable)
	}
}

// While the database cannot be reached the store says NOT_SERVING and
// stops fetching (its breaker open, one batch at a time probing); once it
// is back, the store serves again and records what arrived meanwhile.
func TestDatabaseOutage(t *testing.T) {
	proxy := testenv.StartProxy(t, testenv.PostgresURL(t))
	e := start(t, proxy.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ada := authn.OutgoingToken(ctx, e.auth.Token("ada", false))
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for ctx.Err() == nil {
			resp, err := e.health.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil && resp.GetStatus() == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("health never %v", want)
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING)
	proxy.SetDown(true)
	const n = 20
	for i := range n {
		id := fmt.Sprintf("out%02d", i)
		if _, err := eventbus.Publish(ctx, e.js, e.topo.ReceivedSubject("backfill", "ada"), id, receivedEvent(id, content("During the outage", time.Now()))); err != nil {
			t.Fatal(err)
		}
	}
	waitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	cons, err := e.js.Consumer(ctx, e.topo.ReceivedStreamName(), consumer.ReceivedDurable)
	if err != nil {
		t.Fatal(err)
	}
	// The store is not serving, its breaker open: from now on the events
	// are held, not redelivered every few seconds.
	time.Sleep(2 * time.Second)
	before := deliveries(ctx, t, cons)
	time.Sleep(8 * time.Second)
	during := deliveries(ctx, t, cons) - before
	proxy.SetDown(false)
	waitHealth(healthpb.HealthCheckResponse_SERVING)
	for i := range n {
		waitState(t, e, ada, fmt.Sprintf("users/ada/messages/out%02d", i), storev1.MessageState_MESSAGE_STATE_PENDING)
	}
	t.Logf("%d deliveries of %d events in 8 s of the outage (%d before)", during, n, before)
	if during > n/2 {
		t.Errorf("%d deliveries of %d events in 8 s of the outage: the store kept fetching", during, n)
	}
}

func deliveries(ctx context.Context, t *testing.T, cons jetstream.Consumer) uint64 {
	t.Helper()
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.Delivered.Consumer
}
