package batchevents_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/batch"
	"mailroom.dev/services/classifier/internal/batch/batchevents"
)

// TestPublishesMoves: a move becomes MailBatched events on the user's
// subject, split into events of at most 1,000 messages; the same move
// published again is de-duplicated by its Nats-Msg-Id.
func TestPublishesMoves(t *testing.T) {
	url, prefix := testenv.ExternalNATS(t)
	nc, js, err := eventbus.Connect(url, "batchevents-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{Prefix: prefix}
	ctx := context.Background()
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	p := batchevents.New(js, topo, slog.New(slog.NewTextHandler(io.Discard, nil)))
	at := time.Now().Truncate(time.Microsecond)
	var many []string
	for i := range 2500 {
		many = append(many, fmt.Sprintf("users/ada/messages/m%04d", i))
	}
	entered := batch.Move{User: "ada", Messages: many, Entered: true, At: at}
	left := batch.Move{User: "bob", Messages: []string{"users/bob/messages/x"}, Batch: "batch_1", At: at.Add(time.Second)}
	p.Moved(entered)
	p.Moved(left)
	p.Moved(left) // a repeat: de-duplicated
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	stream, err := js.Stream(ctx, topo.BatchStreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 {
		t.Fatalf("%d events in the stream, want 4 (ada's 2,500 in three, bob's once)", info.State.Msgs)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	seen := map[string]bool{}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev eventsv1.MailBatched
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if msg.Subject() != topo.BatchSubject(ev.GetUser()) {
			t.Errorf("%s's event on %s", ev.GetUser(), msg.Subject())
		}
		if len(ev.GetMessages()) > 1000 {
			t.Errorf("an event of %d messages", len(ev.GetMessages()))
		}
		key := fmt.Sprintf("%s %s %s", ev.GetUser(), ev.GetState(), ev.GetBatch())
		got[key] += len(ev.GetMessages())
		for _, m := range ev.GetMessages() {
			if seen[m] {
				t.Errorf("%s in two events", m)
			}
			seen[m] = true
		}
		if want := map[string]time.Time{"ada": at, "bob": at.Add(time.Second)}[ev.GetUser()]; !ev.GetEventTime().AsTime().Equal(want) {
			t.Errorf("%s's event time %v, want %v", ev.GetUser(), ev.GetEventTime().AsTime(), want)
		}
	}
	want := map[string]int{"ada STATE_ENTERED ": 2500, "bob STATE_LEFT batch_1": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}
