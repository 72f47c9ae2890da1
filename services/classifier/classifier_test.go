package classifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/authn/authntest"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier"
)

// syncBuffer collects log lines written at once by many goroutines.
type syncBuffer = testenv.Buffer

type env struct {
	addr string
	auth *authntest.Server
	topo eventbus.Topology
	nc   *nats.Conn
	js   jetstream.JetStream
	logs *syncBuffer
}

// start runs the service on 127.0.0.1:0 against the NATS server at url, and
// stops it (checking that it stops cleanly) when the test ends.
func start(t *testing.T, url, prefix string) *env {
	t.Helper()
	return startWith(t, url, prefix, nil)
}

// startWith is start with the config changed by tune first.
func startWith(t *testing.T, url, prefix string, tune func(*classifier.Config)) *env {
	t.Helper()
	auth := authntest.Start(t)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := classifier.Config{Workers: 4}
	cfg.NATS.URL, cfg.NATS.Prefix = url, prefix
	cfg.Addrs.Auth, cfg.DatabaseURL = auth.Addr, testenv.SQLiteURL(t)
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(&cfg)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service logs:\n%s", logs.String())
		}
	})
	svc, err := classifier.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addr, _ := testenv.Serve(t, svc)
	nc, js, err := eventbus.Connect(url, "classifier-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &env{addr: addr, auth: auth, topo: eventbus.Topology{Prefix: prefix}, nc: nc, js: js, logs: logs}
}

// Mail content the logs must never show.
const (
	newsletterSubject = "Weekly digest: gophers everywhere"
	newsletterFrom    = "Gopher Weekly <editor@gopherweekly.example>"
	newsletterBody    = "Secret newsletter body text"
	personalSubject   = "Dinner on Friday?"
	personalFrom      = "Grace Hopper <grace@example.org>"
	personalBody      = "Secret personal body text"
)

func received(user, id, subject, from, body string, headers ...*mailv1.Header) *eventsv1.MailReceived {
	return &eventsv1.MailReceived{
		User:              user,
		Mailbox:           "users/" + user + "/mailboxes/inbox",
		Message:           "users/" + user + "/messages/" + id,
		ProviderMessageId: "p-" + id,
		Lane:              mailv1.Lane_LANE_BACKFILL,
		IngestTime:        timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
		Content: &mailv1.NormalizedMessage{
			MessageIdHeader: id + "@example.com",
			Subject:         subject,
			From:            from,
			To:              []string{"ada@example.com"},
			ReceivedTime:    timestamppb.New(time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)),
			Headers:         headers,
			TextBody:        body,
			Snippet:         body[:10],
			SizeBytes:       1234,
			ContentHash:     strings.Repeat("ab", 32),
		},
	}
}

func publish(t *testing.T, e *env, ev *eventsv1.MailReceived, msgID string) {
	t.Helper()
	publishCtx(t, context.Background(), e, ev, msgID)
}

// publishCtx publishes ev as ingest does, with ctx's trace context.
func publishCtx(t *testing.T, ctx context.Context, e *env, ev *eventsv1.MailReceived, msgID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := eventbus.Publish(ctx, e.js, e.topo.ReceivedSubject("backfill", ev.GetUser()), msgID, ev); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// classifiedInStream returns the stream's classified events by message name,
// waiting until there are want of them.
func classifiedInStream(t *testing.T, e *env, want int) map[string]*eventsv1.MailClassified {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stream, err := e.js.Stream(ctx, e.topo.ClassifiedStreamName())
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int(info.State.Msgs) >= want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("classified stream holds %d events, want %d", info.State.Msgs, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
	out := map[string]*eventsv1.MailClassified{}
	info, _ := stream.Info(ctx)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		var ev eventsv1.MailClassified
		if err := proto.Unmarshal(raw.Data, &ev); err != nil {
			t.Fatalf("classified event %d: %v", seq, err)
		}
		if got, want := raw.Header.Get(jetstream.MsgIDHeader), "classified/"+ev.GetMessage(); got != want {
			t.Errorf("Nats-Msg-Id = %q, want %q", got, want)
		}
		if got, want := raw.Subject, e.topo.ClassifiedSubject(ev.GetUser()); got != want {
			t.Errorf("subject = %q, want %q", got, want)
		}
		out[ev.GetMessage()] = &ev
	}
	return out
}

// waitSettled waits until the consumer has acknowledged every event.
func waitSettled(t *testing.T, e *env) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// One durable consumer per lane; the sum tells whether all is done.
	var conss []jetstream.Consumer
	for _, lane := range []string{"interactive", "live", "backfill"} {
		cons, err := e.js.Consumer(ctx, e.topo.ReceivedStreamName(), "classifier-"+lane)
		if err != nil {
			t.Fatal(err)
		}
		conss = append(conss, cons)
	}
	for {
		sum := &jetstream.ConsumerInfo{}
		for _, cons := range conss {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sum.NumPending += info.NumPending
			sum.NumAckPending += info.NumAckPending
			sum.NumRedelivered += info.NumRedelivered
		}
		if sum.NumPending == 0 && sum.NumAckPending == 0 {
			return sum
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumers not settled: pending %d, ack pending %d", sum.NumPending, sum.NumAckPending)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func checkClassified(t *testing.T, got *eventsv1.MailClassified, sent *eventsv1.MailReceived, category, rule string) {
	t.Helper()
	c := got.GetClassification()
	if c.GetCategory() != category || c.GetRule() != rule {
		t.Errorf("%s: classified (%s, %s), want (%s, %s)", sent.GetMessage(), c.GetCategory(), c.GetRule(), category, rule)
	}
	if c.GetSource() != mailv1.ClassificationSource_CLASSIFICATION_SOURCE_RULES {
		t.Errorf("%s: source = %v, want RULES", sent.GetMessage(), c.GetSource())
	}
	if c.GetConfidence() <= 0 || c.GetConfidence() > 1 {
		t.Errorf("%s: confidence = %v", sent.GetMessage(), c.GetConfidence())
	}
	if c.GetClassifyTime() == nil {
		t.Errorf("%s: no classify_time", sent.GetMessage())
	}
	if got.GetContent().GetTextBody() != "" {
		t.Errorf("%s: text_body is present in the classified event", sent.GetMessage())
	}
	if got.GetContent().GetSubject() != sent.GetContent().GetSubject() {
		t.Errorf("%s: subject = %q, want %q", sent.GetMessage(), got.GetContent().GetSubject(), sent.GetContent().GetSubject())
	}
	want := proto.CloneOf(sent.GetContent())
	want.TextBody = ""
	if !proto.Equal(got.GetContent(), want) {
		t.Errorf("%s: content = %v, want the received content without its body", sent.GetMessage(), got.GetContent())
	}
	if got.GetUser() != sent.GetUser() || got.GetMailbox() != sent.GetMailbox() || got.GetProviderMessageId() != sent.GetProviderMessageId() ||
		!proto.Equal(got.GetIngestTime(), sent.GetIngestTime()) {
		t.Errorf("%s: identity fields not copied: %v", sent.GetMessage(), got)
	}
	if u := got.GetUsage(); u.GetPromptTokens() != 0 || u.GetCompletionTokens() != 0 || u.GetCostMicros() != 0 || u.GetRequests() != 0 {
		t.Errorf("%s: usage = %v, want zero for rules", sent.GetMessage(), u)
	}
}

// runFlow is the consumer's whole contract, on whichever server e uses.
func runFlow(t *testing.T, e *env) {
	// Every publish on the classified subjects, duplicates included (the
	// stream de-duplicates; a plain subscription sees them all).
	seen := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe(e.topo.ClassifiedAll(), seen)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	terminated := make(chan *nats.Msg, 8)
	adv, err := e.nc.ChanSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."+e.topo.ReceivedStreamName()+".classifier-backfill", terminated)
	if err != nil {
		t.Fatal(err)
	}
	defer adv.Unsubscribe()
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	newsletter := received("ada", "m1", newsletterSubject, newsletterFrom, newsletterBody,
		&mailv1.Header{Name: "List-Unsubscribe", Value: "<mailto:unsubscribe@gopherweekly.example>"})
	personal := received("ada", "m2", personalSubject, personalFrom, personalBody)

	publish(t, e, newsletter, "inbox/p-m1")
	// A payload that is no MailReceived: terminated, and the consumer goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	garbage, err := e.js.Publish(ctx, e.topo.ReceivedSubject("backfill", "ada"), []byte("this is not protobuf"), jetstream.WithMsgID("garbage/1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal([]byte("this is not protobuf"), &eventsv1.MailReceived{}); err == nil {
		t.Fatal("the garbage payload unmarshals; pick another")
	}
	publish(t, e, personal, "inbox/p-m2")

	got := classifiedInStream(t, e, 2)
	if len(got) != 2 {
		t.Fatalf("classified %d messages, want 2: %v", len(got), got)
	}
	checkClassified(t, got[newsletter.GetMessage()], newsletter, "newsletters", "list-unsubscribe")
	checkClassified(t, got[personal.GetMessage()], personal, "other", "fallback")

	select {
	case m := <-terminated:
		var a struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatal(err)
		}
		if a.StreamSeq != garbage.Sequence {
			t.Errorf("terminated stream seq %d, want the garbage's %d", a.StreamSeq, garbage.Sequence)
		}
	case <-time.After(10 * time.Second):
		t.Error("the garbage payload was not terminated")
	}

	// A redelivery (here: the same event published again under another
	// de-duplication id) yields the same verdict, and the classified
	// stream keeps one event per message.
	publish(t, e, newsletter, "inbox/p-m1-again")
	info := waitSettled(t, e)
	if info.NumRedelivered != 0 {
		t.Errorf("redelivered %d events, want 0", info.NumRedelivered)
	}
	if got := classifiedInStream(t, e, 2); len(got) != 2 {
		t.Errorf("classified stream holds %d messages after the redelivery, want 2", len(got))
	}

	var published []*eventsv1.MailClassified
	timeout := time.After(10 * time.Second)
	for len(published) < 3 {
		select {
		case m := <-seen:
			var ev eventsv1.MailClassified
			if err := proto.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			published = append(published, &ev)
		case <-timeout:
			t.Fatalf("saw %d classified publishes, want 3", len(published))
		}
	}
	select {
	case m := <-seen:
		t.Errorf("an extra classified publish on %s (the garbage must publish nothing)", m.Subject)
	case <-time.After(300 * time.Millisecond):
	}
	var first, again *eventsv1.MailClassified
	for _, ev := range published {
		if ev.GetMessage() != newsletter.GetMessage() {
			continue
		}
		if first == nil {
			first = ev
		} else {
			again = ev
		}
	}
	if first == nil || again == nil {
		t.Fatalf("want two classified publishes of %s, got %v", newsletter.GetMessage(), published)
	}
	checkClassified(t, again, newsletter, "newsletters", "list-unsubscribe")
	a, b := proto.CloneOf(first), proto.CloneOf(again)
	a.Classification.ClassifyTime, b.Classification.ClassifyTime = nil, nil
	if !proto.Equal(a, b) {
		t.Errorf("redelivery classified differently:\n first %v\n again %v", a, b)
	}

	for _, secret := range []string{newsletterSubject, newsletterBody, "gopherweekly", personalSubject, personalBody, "grace@example.org", "this is not protobuf"} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the logs contain mail content %q", secret)
		}
	}
}

func TestConsumerEmbeddedNATS(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	runFlow(t, e)
}

// TestConsumerExternalNATS runs the same flow on the shared server on :4222,
// NATS 2.9: the oldest server mailroom supports.
func TestConsumerExternalNATS(t *testing.T) {
	url, prefix := testenv.ExternalNATS(t)
	topo := eventbus.Topology{Prefix: prefix}
	// Registered first, so it runs after the service has stopped.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nc, js, err := eventbus.Connect(url, "classifier-test-cleanup")
		if err != nil {
			return
		}
		defer nc.Close()
		for _, s := range []string{topo.ReceivedStreamName(), topo.ClassifiedStreamName(), topo.DeadLetterStreamName()} {
			_ = js.DeleteStream(ctx, s)
		}
	})
	runFlow(t, start(t, url, prefix))
}

// TestConsumerTerminatesInvalidEvents checks that well-formed events
// that cannot be processed (no valid user, a message of another user, no
// content) are terminated, not retried, and block nothing.
func TestConsumerTerminatesInvalidEvents(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	bad := []*eventsv1.MailReceived{
		{User: "Not Valid", Message: "users/x/messages/1", Content: &mailv1.NormalizedMessage{}},
		{User: "ada", Message: "users/bob/messages/1", Content: &mailv1.NormalizedMessage{}},
		{User: "ada", Message: "users/ada/messages/3"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, ev := range bad {
		// Published on a valid subject, so that only the content is at fault.
		data, _ := proto.Marshal(ev)
		if _, err := e.js.Publish(ctx, e.topo.ReceivedSubject("live", "ada"), data, jetstream.WithMsgID("bad/"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	good := received("ada", "m9", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in")
	publish(t, e, good, "inbox/p-m9")
	got := classifiedInStream(t, e, 1)
	checkClassified(t, got[good.GetMessage()], good, "security", "security-notice")
	info := waitSettled(t, e)
	if info.NumRedelivered != 0 {
		t.Errorf("redelivered %d events, want 0 (invalid events are terminated)", info.NumRedelivered)
	}
	if n := len(classifiedInStream(t, e, 1)); n != 1 {
		t.Errorf("classified %d events, want only the valid one", n)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	var cfg classifier.Config
	err := config.Load(context.Background(), &cfg, envconfig.MapLookuper(map[string]string{
		"OPENAI_API_KEYS": "sk-first-key-000011111, sk-second-key-22223333",
		"OPENAI_API_KEY":  "sk-first-key-000011111",
		"DATABASE_URL":    "sqlite://x.db",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr(service.Classifier) != "127.0.0.1:9103" || cfg.OpenAIModel != "gpt-4o-mini" || cfg.AckWait != 30*time.Second ||
		cfg.MaxDeliver != 10 || cfg.MaxAckPending != 1000 || cfg.OpenAIRPM != 0 || cfg.OpenAITPM != 0 ||
		cfg.OpenAIBurst != 500*time.Millisecond || !slices.Equal(cfg.OpenAIEscalateCategories, []string{"important"}) {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if got := cfg.APIKeys(); len(got) != 2 || got[0] != "sk-first-key-000011111" || got[1] != "sk-second-key-22223333" {
		t.Errorf("APIKeys() = %v, want the two distinct keys", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", cfg)
	if strings.Contains(buf.String(), "sk-first") || strings.Contains(buf.String(), "sk-second") {
		t.Errorf("logged config reveals a key: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "1111") || !strings.Contains(buf.String(), "3333") {
		t.Errorf("logged config does not tell the keys apart: %s", buf.String())
	}
}

// TestPublishFailureIsRetried removes the classified stream, so that the
// classifier's publish fails: the event is handed back (Nak with a delay),
// not acknowledged, and classified once the stream is back.
func TestPublishFailureIsRetried(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	ctx := t.Context()
	if err := e.js.DeleteStream(ctx, e.topo.ClassifiedStreamName()); err != nil {
		t.Fatal(err)
	}
	ev := received("ada", "m5", "Lunch?", "Grace <grace@example.org>", "Are you free?")
	publish(t, e, ev, "inbox/p-m5")

	cons, err := e.js.Consumer(ctx, e.topo.ReceivedStreamName(), "classifier-backfill")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Delivered twice: the first publish failed and the event came back.
		if info.Delivered.Consumer >= 2 {
			if info.AckFloor.Stream != 0 {
				t.Errorf("ack floor %d: an event whose publish failed was acknowledged", info.AckFloor.Stream)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event was not redelivered after the failed publish: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := eventbus.EnsureStreams(ctx, e.js, e.topo); err != nil {
		t.Fatal(err)
	}
	got := classifiedInStream(t, e, 1)
	checkClassified(t, got[ev.GetMessage()], ev, "other", "fallback")
	waitSettled(t, e)
}
