package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/jetstream/consumer"
	"mailroom.dev/services/store/internal/mailstore"
)

// recorder is an in-memory Recorder whose failures the test chooses.
type recorder struct {
	mu       sync.Mutex
	fail     func(ids []string) error
	calls    [][]string
	received map[string]mailstore.Message
	verdicts map[string]mailstore.Classified
	failed   []mailstore.Failed
}

func newRecorder(fail func(ids []string) error) *recorder {
	return &recorder{fail: fail, received: map[string]mailstore.Message{}, verdicts: map[string]mailstore.Classified{}}
}

func (r *recorder) RecordReceived(_ context.Context, msgs []mailstore.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	r.calls = append(r.calls, ids)
	if err := r.fail(ids); err != nil {
		return err
	}
	for _, m := range msgs {
		r.received[m.ID] = m
	}
	return nil
}

func (r *recorder) RecordClassified(_ context.Context, vs []mailstore.Classified) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vs {
		r.verdicts[v.Message.ID] = v
	}
	return nil
}

func (r *recorder) RecordFailed(_ context.Context, fs []mailstore.Failed) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range fs {
		r.failed = append(r.failed, f)
	}
	return nil
}

func (r *recorder) receivedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id := range r.received {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (r *recorder) call(i int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[i]
}

func (r *recorder) attempts(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if slices.Contains(c, id) {
			n++
		}
	}
	return n
}

type harness struct {
	js        jetstream.JetStream
	topo      eventbus.Topology
	consumers *consumer.Consumers
}

func start(t *testing.T, rec consumer.Recorder) harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js, err := eventbus.Connect(testenv.NATS(t), "consumer-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	topo := eventbus.Topology{Prefix: "t."}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	c, err := consumer.New(ctx, js, topo, rec, logger, consumer.Options{
		MaxWait:  300 * time.Millisecond,
		AckWait:  5 * time.Second,
		NakDelay: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return harness{js: js, topo: topo, consumers: c}
}

// run consumes until the test ends.
func (h harness) run(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.consumers.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func (h harness) publishReceived(t *testing.T, id string) {
	t.Helper()
	ev := &eventsv1.MailReceived{
		User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: "users/ada/messages/" + id,
		ProviderMessageId: id,
		Content:           &mailv1.NormalizedMessage{Subject: "s", ReceivedTime: timestamppb.Now()},
	}
	if _, err := eventbus.Publish(context.Background(), h.js, h.topo.ReceivedSubject("live", "ada"), "inbox/"+id, ev); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailedBatchComesBack(t *testing.T) {
	// The database is away for the first two attempts.
	var mu sync.Mutex
	failures := 2
	rec := newRecorder(func([]string) error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return errors.New("connection refused")
		}
		return nil
	})
	h := start(t, rec)
	h.run(t)
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("m%d", i)
		want = append(want, id)
		h.publishReceived(t, id)
	}
	waitFor(t, "all events recorded", func() bool { return slices.Equal(rec.receivedIDs(), want) })
}

func TestPoisonEventDoesNotHoldUpOthers(t *testing.T) {
	rec := newRecorder(func(ids []string) error {
		if slices.Contains(ids, "poison") {
			return errors.New("the database refuses this row")
		}
		return nil
	})
	h := start(t, rec)
	// Published before consuming starts, so that they share one batch.
	h.publishReceived(t, "poison")
	var want []string
	for i := range 10 {
		id := fmt.Sprintf("m%d", i)
		want = append(want, id)
		h.publishReceived(t, id)
	}
	// The server counts a consumer's pending events asynchronously; a
	// no-wait fetch before it has counted them comes back empty.
	c, err := h.js.Consumer(context.Background(), h.topo.ReceivedStreamName(), consumer.ReceivedDurable)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to count the events", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 11
	})
	h.run(t)
	waitFor(t, "the other events recorded", func() bool { return slices.Equal(rec.receivedIDs(), want) })
	if got := len(rec.call(0)); got != 11 {
		t.Errorf("first batch had %d events, want all 11", got)
	}
	// The poison event is Nak'd, not dropped: it keeps coming back.
	waitFor(t, "the poison event redelivered", func() bool { return rec.attempts("poison") >= 3 })
}

func TestUndecodableEventIsTerminated(t *testing.T) {
	rec := newRecorder(func([]string) error { return nil })
	h := start(t, rec)
	h.run(t)
	ctx := context.Background()
	if _, err := h.js.Publish(ctx, h.topo.ReceivedSubject("live", "ada"), []byte("\x0a\xffgarbage")); err != nil {
		t.Fatal(err)
	}
	// A well-formed protobuf whose names do not agree is as useless.
	bad := &eventsv1.MailReceived{User: "ada", Mailbox: "users/bob/mailboxes/inbox", Message: "users/ada/messages/x"}
	if _, err := eventbus.Publish(ctx, h.js, h.topo.ReceivedSubject("live", "ada"), "bad", bad); err != nil {
		t.Fatal(err)
	}
	h.publishReceived(t, "good")
	waitFor(t, "the good event recorded", func() bool { return slices.Equal(rec.receivedIDs(), []string{"good"}) })
	c, err := h.js.Consumer(ctx, h.topo.ReceivedStreamName(), consumer.ReceivedDurable)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nothing left unacked", func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
}

func TestDeadLettersAndIngestTimes(t *testing.T) {
	rec := newRecorder(func([]string) error { return nil })
	h := start(t, rec)
	h.run(t)
	ctx := context.Background()
	ingested := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	ev := &eventsv1.MailDeadLettered{
		Received: &eventsv1.MailReceived{
			User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: "users/ada/messages/d1", ProviderMessageId: "d1",
			Content:    &mailv1.NormalizedMessage{Subject: "s", TextBody: "body", ReceivedTime: timestamppb.New(ingested.Add(-time.Hour))},
			IngestTime: timestamppb.New(ingested),
		},
		Reason:   strings.Repeat("é", 400), // 800 bytes
		Attempts: 5,
	}
	before := time.Now().Add(-time.Second)
	if _, err := eventbus.Publish(ctx, h.js, h.topo.DeadLetterSubject("ada"), "dead/d1", ev); err != nil {
		t.Fatal(err)
	}
	h.publishReceived(t, "no-ingest-time")
	waitFor(t, "the dead letter and the MailReceived recorded", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.failed) == 1 && len(rec.received) == 1
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	f := rec.failed[0]
	if f.Message.ID != "d1" || f.Message.Body != "body" || !f.Message.IngestTime.Equal(ingested) {
		t.Errorf("failure = %+v; want d1 with its body and ingest time", f.Message)
	}
	if len(f.Reason) > 500 || !utf8.ValidString(f.Reason) || f.Reason == "" {
		t.Errorf("reason of %d bytes (valid UTF-8: %t); want at most 500, valid", len(f.Reason), utf8.ValidString(f.Reason))
	}
	if f.FailTime.Before(before) {
		t.Errorf("fail time %v: without a dead time, want when the stream stored the event", f.FailTime)
	}
	// An event without an ingest time is taken as ingested when the stream stored it.
	if got := rec.received["no-ingest-time"].IngestTime; got.Before(before) {
		t.Errorf("ingest time %v; want the stream's time", got)
	}
}
