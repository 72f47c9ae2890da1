package store_test

import (
	"context"
	"testing"
	"time"

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
