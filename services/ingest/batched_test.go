package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"mailroom.dev/fakes/fakegmail"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
)

// TestSyncJobCountsBatchedMail plays the classifier: the job's mail enters
// an OpenAI batch (mail.batch events, one of them twice), one is answered
// (mail.classified), the rest leave for the realtime path. GetSyncJob
// shows the batched count at each step, and deleting the user removes her
// batch events from the stream.
func TestSyncJobCountsBatchedMail(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	fake.AddAccount("ada@gmail.example").AddMessages(5)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	mb := connectGmail(t, h, fake, "gmail")
	ada := h.as(t, "ada", "user")
	job := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	evs := h.events(t)
	if len(evs) != 5 {
		t.Fatalf("%d received events, want 5", len(evs))
	}
	var names []string
	for _, e := range evs {
		names = append(names, e.e.GetMessage())
	}
	ctx := context.Background()
	seq := 0
	move := func(state eventsv1.MailBatched_State, at time.Time, msgs ...string) {
		t.Helper()
		seq++
		ev := &eventsv1.MailBatched{User: "ada", Messages: msgs, State: state, EventTime: timestamppb.New(at)}
		if _, err := eventbus.Publish(ctx, h.js, h.topo.BatchSubject("ada"), fmt.Sprint("move-", seq), ev); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step string, batched, classified int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := h.client.GetSyncJob(ada, &ingestv1.GetSyncJobRequest{Name: job.GetName()})
			if err != nil {
				t.Fatal(err)
			}
			p := got.GetSyncJob().GetProgress()
			if p.GetBatched() == batched && p.GetClassified() == classified {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: batched %d, classified %d; want %d, %d", step, p.GetBatched(), p.GetClassified(), batched, classified)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t0 := time.Now()
	move(eventsv1.MailBatched_STATE_ENTERED, t0, names...)
	want("all five in a batch", 5, 0)
	move(eventsv1.MailBatched_STATE_ENTERED, t0, names...) // the same move again, past de-duplication
	c := &eventsv1.MailClassified{User: "ada", Mailbox: evs[0].e.GetMailbox(), Message: evs[0].e.GetMessage(),
		ProviderMessageId: evs[0].e.GetProviderMessageId(), SyncJob: evs[0].e.GetSyncJob()}
	if _, err := eventbus.Publish(ctx, h.js, h.topo.ClassifiedSubject("ada"), "classified-0", c); err != nil {
		t.Fatal(err)
	}
	want("one answered by its batch", 4, 1)
	move(eventsv1.MailBatched_STATE_LEFT, t0.Add(time.Second), names[1:]...)
	want("the rest sent to the realtime path", 0, 1)
	time.Sleep(300 * time.Millisecond)
	want("nothing counted twice", 0, 1)

	stream, err := h.js.Stream(ctx, h.topo.BatchStreamName())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Fatalf("batch stream holds %v messages (%v), want 3", info.State.Msgs, err)
	}
	if _, err := h.client.PurgeUserData(h.asService(t, "auth"), &ingestv1.PurgeUserDataRequest{User: "ada"}); err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("after deleting ada the batch stream holds %v messages (%v), want none", info.State.Msgs, err)
	}
}
