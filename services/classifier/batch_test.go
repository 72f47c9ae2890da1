package classifier_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"mailroom.dev/fakes/fakeopenai"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/authn/authntest"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier"
)

func withBatches(c *classifier.Config) {
	c.OpenAIBatchThreshold = 10
	c.OpenAIBatchWindow = 300 * time.Millisecond
	c.OpenAIBatchPoll = 50 * time.Millisecond
	c.LearnSenders = false
}

// TestBackfillGoesThroughTheBatchAPI sends a backfill larger than the
// threshold: it goes through the fake's Files and Batch APIs (no realtime
// call), and every mail is classified exactly once, at the batch price.
func TestBackfillGoesThroughTheBatchAPI(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{Batch: fakeopenai.BatchConfig{Validation: 100 * time.Millisecond, Completion: 300 * time.Millisecond}}, withBatches)
	e := startWith(t, testenv.NATS(t), "", tune)
	evs := personal("ada", 30)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	got := classifiedInStream(t, e, len(evs))
	waitSettled(t, e)
	got = classifiedNow(t, e) // fails on a message classified twice
	if len(got) != len(evs) {
		t.Fatalf("%d classified, want %d", len(got), len(evs))
	}
	for _, ev := range evs {
		c := got[ev.GetMessage()]
		if c == nil {
			t.Errorf("%s not classified", ev.GetMessage())
			continue
		}
		u := c.GetUsage()
		if c.GetClassification().GetSource() != mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LLM || len(u.GetModels()) != 1 || !u.GetModels()[0].GetBatch() || u.GetCostMicros() <= 0 {
			t.Errorf("%s: %v usage %v; want the model's verdict through a batch, paid", ev.GetMessage(), c.GetClassification(), u)
		}
	}
	if st := fake.BatchStats(); st.Batches != 1 || st.Requests != int64(len(evs)) {
		t.Errorf("batch stats = %+v; want one batch of %d", st, len(evs))
	}
	if n := fake.Stats().Keys[fakeKey].Requests; n != 0 {
		t.Errorf("%d realtime requests; want none", n)
	}
	if in, out := batchMoves(t, e); in != len(evs) || out != 0 {
		t.Errorf("mail.batch events: %d entered, %d left; want %d, 0", in, out, len(evs))
	}
}

// TestExpiredBatchSendsTheRestToRealtime: a batch that expires part-way
// has its finished mail classified from the batch and the rest through the
// realtime path; none lost, none twice.
func TestExpiredBatchSendsTheRestToRealtime(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{Batch: fakeopenai.BatchConfig{Completion: 200 * time.Millisecond}}, withBatches)
	fake.InjectBatch(fakeopenai.BatchFate{Status: "expired", Done: 12})
	e := startWith(t, testenv.NATS(t), "", tune)
	evs := personal("ada", 30)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	classifiedInStream(t, e, len(evs))
	waitSettled(t, e)
	got := classifiedNow(t, e)
	batched := 0
	for _, ev := range evs {
		c := got[ev.GetMessage()]
		if c == nil {
			t.Errorf("%s lost", ev.GetMessage())
			continue
		}
		if c.GetUsage().GetModels()[0].GetBatch() {
			batched++
		}
	}
	if batched != 12 {
		t.Errorf("%d classified from the batch, want 12", batched)
	}
	c, _ := client(t, e)
	resp, err := c.GetLimits(as(t, e.auth.Token("ada", false)), &classifierv1.GetLimitsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b := resp.GetBatches(); b.GetBatches() != 1 || b.GetAnswered() != 12 || b.GetRealtime() != 18 || b.GetWaiting() != 0 {
		t.Errorf("GetLimits batches = %v; want 1 batch, 12 answered, 18 realtime, none waiting", b)
	}
	if n := fake.Stats().Keys[fakeKey].Requests; n != 18 {
		t.Errorf("%d realtime requests, want 18 (the unfinished)", n)
	}
	// Ingest heard of it: the 30 entered the batch, the 18 unfinished left it.
	if in, out := batchMoves(t, e); in != 30 || out != 18 {
		t.Errorf("mail.batch events: %d entered, %d left; want 30, 18", in, out)
	}
}

// batchMoves waits a moment for the background publishes, then counts
// the distinct messages of the mail.batch events that entered a batch and
// that left one.
func batchMoves(t *testing.T, e *env) (entered, left int) {
	t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, e.topo.BatchStreamName())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	in, out := map[string]bool{}, map[string]bool{}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev eventsv1.MailBatched
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		for _, m := range ev.GetMessages() {
			if ev.GetState() == eventsv1.MailBatched_STATE_ENTERED {
				in[m] = true
			} else {
				out[m] = true
			}
		}
	}
	return len(in), len(out)
}

// TestFailedBatchLeavesForRealtime: a batch that fails sends all its mail
// to the realtime path, and says so on mail.batch (ingest's batched count
// falls back to 0).
func TestFailedBatchLeavesForRealtime(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{Batch: fakeopenai.BatchConfig{Completion: 200 * time.Millisecond}}, withBatches)
	fake.InjectBatch(fakeopenai.BatchFate{Status: "failed"})
	e := startWith(t, testenv.NATS(t), "", tune)
	evs := personal("ada", 20)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	classifiedInStream(t, e, len(evs))
	waitSettled(t, e)
	if got := classifiedNow(t, e); len(got) != len(evs) {
		t.Errorf("%d classified, want %d", len(got), len(evs))
	}
	if st := fake.BatchStats(); st.Failed != 1 {
		t.Errorf("batch stats = %+v; want the one failed batch", st)
	}
	if n := fake.Stats().Keys[fakeKey].Requests; n != int64(len(evs)) {
		t.Errorf("%d realtime requests, want %d", n, len(evs))
	}
	if in, out := batchMoves(t, e); in != len(evs) || out != len(evs) {
		t.Errorf("mail.batch events: %d entered, %d left; want %d, %d", in, out, len(evs), len(evs))
	}
}

// TestSmallBackfillStaysRealtime: below the threshold nothing waits for a
// batch.
func TestSmallBackfillStaysRealtime(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{}, withBatches)
	e := startWith(t, testenv.NATS(t), "", tune)
	evs := personal("ada", 5)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	classifiedInStream(t, e, len(evs))
	if st := fake.BatchStats(); st.Batches != 0 {
		t.Errorf("a batch for 5 mails (threshold 10): %+v", st)
	}
	if in, out := batchMoves(t, e); in != 0 || out != 0 {
		t.Errorf("mail.batch events: %d entered, %d left; want none for mail that never waited in a batch", in, out)
	}
}

// TestBatchSurvivesARestart: the classifier stops while its batch runs;
// the next one gets the mail again (redelivered), finds it in the batch
// the first one created, and waits for that batch: nothing is sent twice,
// nothing is lost, nothing is classified twice.
func TestBatchSurvivesARestart(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{Batch: fakeopenai.BatchConfig{Completion: 3 * time.Second}}, withBatches)
	db := testenv.SQLiteURL(t)
	same := func(c *classifier.Config) {
		tune(c)
		c.DatabaseURL = db
		c.AckWait = 2 * time.Second
	}
	url := testenv.NATS(t)
	prefix := "restart" + testenv.RandomID(6) + "."
	first := startStoppable(t, url, prefix, same)
	e := first.env
	evs := personal("ada", 30)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	deadline := time.Now().Add(20 * time.Second)
	for fake.BatchStats().Batches == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no batch was created")
		}
		time.Sleep(50 * time.Millisecond)
	}
	first.stop()

	second := startWith(t, url, prefix, same)
	classifiedInStream(t, second, len(evs))
	waitSettled(t, second)
	got := classifiedNow(t, second)
	for _, ev := range evs {
		c := got[ev.GetMessage()]
		if c == nil {
			t.Errorf("%s lost", ev.GetMessage())
			continue
		}
		if !c.GetUsage().GetModels()[0].GetBatch() {
			t.Errorf("%s was not answered by the batch", ev.GetMessage())
		}
	}
	if st := fake.BatchStats(); st.Batches != 1 || st.Requests != int64(len(evs)) {
		t.Errorf("batch stats = %+v; want the one batch of %d", st, len(evs))
	}
	if n := fake.Stats().Keys[fakeKey].Requests; n != 0 {
		t.Errorf("%d realtime requests; want none", n)
	}
	if !strings.Contains(second.logs.String(), "following a batch of an earlier process") {
		t.Error("the second classifier did not follow the first one's batch")
	}
	// The first classifier said the 30 entered the batch; stopping is no
	// leaving, and the second one's answers take them out (mail.classified).
	if in, out := batchMoves(t, second); in != 30 || out != 0 {
		t.Errorf("mail.batch events: %d entered, %d left; want 30, 0", in, out)
	}
}

type stoppable struct {
	env  *env
	stop func()
}

// startStoppable is startWith for a service the test stops itself.
func startStoppable(t *testing.T, url, prefix string, tune func(*classifier.Config)) stoppable {
	t.Helper()
	auth := authntest.Start(t)
	cfg := classifier.Config{Workers: 4}
	cfg.NATS.URL, cfg.NATS.Prefix = url, prefix
	cfg.Addrs.Auth, cfg.DatabaseURL = auth.Addr, testenv.SQLiteURL(t)
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	tune(&cfg)
	svc, err := classifier.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addr, stop := testenv.Serve(t, svc)
	nc, js, err := eventbus.Connect(url, "classifier-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return stoppable{env: &env{addr: addr, auth: auth, topo: eventbus.Topology{Prefix: prefix}, nc: nc, js: js, logs: &syncBuffer{}}, stop: stop}
}
