package store_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/authn/authntest"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store"
)

var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "store-test", Exporter: spans})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = shutdown(context.Background())
	os.Exit(code)
}

func TestService(t *testing.T) {
	for name, dbURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) { testService(t, dbURL(t)) })
	}
}

type env struct {
	auth   *authntest.Server
	client storev1.StoreServiceClient
	health healthpb.HealthClient
	js     jetstream.JetStream
	topo   eventbus.Topology
}

func start(t *testing.T, databaseURL string, tweaks ...func(*store.Config)) env {
	t.Helper()
	natsURL := testenv.NATS(t)
	auth := authntest.Start(t)
	auth.AddAPIKey("mr_adas_key", "ada", false)
	cfg := store.Config{BatchSize: 200}
	cfg.NATS.URL, cfg.NATS.Prefix = natsURL, "t1."
	cfg.Addrs.Auth, cfg.DatabaseURL = auth.Addr, databaseURL
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.RetentionInterval = 0 // the retention test turns the purge job on
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := store.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addr, _ := testenv.Serve(t, svc)
	cc, err := grpcconn.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	nc, js, err := eventbus.Connect(natsURL, "store-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return env{auth: auth, client: storev1.NewStoreServiceClient(cc), health: healthpb.NewHealthClient(cc), js: js, topo: cfg.NATS.Topology()}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func content(subject string, received time.Time) *mailv1.NormalizedMessage {
	return &mailv1.NormalizedMessage{
		Subject:      subject,
		From:         "News <news@example.com>",
		FromAddress:  "news@example.com",
		To:           []string{"ada@example.com"},
		ReceivedTime: timestamppb.New(received),
		Snippet:      "Hello",
		TextBody:     "the body",
		SizeBytes:    1234,
		Attachments:  []*mailv1.Attachment{{Filename: "a.pdf", ContentType: "application/pdf", SizeBytes: 10}},
		Headers:      []*mailv1.Header{{Name: "List-Unsubscribe", Value: "<mailto:x@example.com>"}},
	}
}

func receivedEvent(id string, c *mailv1.NormalizedMessage) *eventsv1.MailReceived {
	return &eventsv1.MailReceived{
		User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: "users/ada/messages/" + id,
		ProviderMessageId: "p-" + id, Lane: mailv1.Lane_LANE_BACKFILL, Content: c,
		IngestTime: timestamppb.Now(),
	}
}

func classifiedEvent(id, category string, c *mailv1.NormalizedMessage) *eventsv1.MailClassified {
	c.TextBody = ""
	return &eventsv1.MailClassified{
		User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: "users/ada/messages/" + id,
		ProviderMessageId: "p-" + id, Content: c,
		Classification: &mailv1.Classification{
			Category: category, Confidence: 0.9, Priority: mailv1.Priority_PRIORITY_LOW,
			Source: mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LLM, Model: "gpt-test",
			ClassifyTime: timestamppb.Now(),
		},
		Usage: &eventsv1.Usage{PromptTokens: 300, CompletionTokens: 12, CachedPromptTokens: 128, CostMicros: 40, Requests: 1},
	}
}

func testService(t *testing.T, databaseURL string) {
	e := start(t, databaseURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ada := authn.OutgoingToken(ctx, e.auth.Token("ada", false))

	// The producer's trace: the store's spans must join it.
	pctx, producer := otel.Tracer("test").Start(ctx, "gateway")
	recvSubj := e.topo.ReceivedSubject("backfill", "ada")
	clsSubj := e.topo.ClassifiedSubject("ada")
	t0 := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)

	// m1 in order; m2 classified before it is received; a poison event; and
	// m1's verdict delivered a second time (as a redelivery would).
	v1 := classifiedEvent("m1", "newsletters", content("Weekly news", t0))
	steps := []struct {
		subject, id string
		ev          proto.Message
	}{
		{recvSubj, "inbox/p-m1", receivedEvent("m1", content("Weekly news", t0))},
		{clsSubj, "classified/users/ada/messages/m1", v1},
		{clsSubj, "classified/users/ada/messages/m2", classifiedEvent("m2", "work", content("Meeting", t0.Add(time.Hour)))},
		{recvSubj, "inbox/p-m2", receivedEvent("m2", content("Meeting (as received)", t0.Add(time.Hour)))},
		{clsSubj, "classified/users/ada/messages/m1#again", v1},
	}
	for _, s := range steps {
		if _, err := eventbus.Publish(pctx, e.js, s.subject, s.id, s.ev); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	if _, err := e.js.Publish(ctx, recvSubj, []byte("\xff\xffnot a protobuf")); err != nil {
		t.Fatalf("publish poison: %v", err)
	}
	producer.End()

	var got []*storev1.Message
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := e.client.ListMessages(ada, &storev1.ListMessagesRequest{Parent: "users/me"})
		if err != nil {
			t.Fatalf("ListMessages: %v", err)
		}
		got = resp.GetMessages()
		if len(got) == 2 && got[0].GetState() == storev1.MessageState_MESSAGE_STATE_CLASSIFIED &&
			got[1].GetState() == storev1.MessageState_MESSAGE_STATE_CLASSIFIED && got[0].GetSubject() == "Meeting (as received)" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages not stored and classified within 20s; have %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Newest first; the late MailReceived's metadata won, the verdict stayed.
	m2, m1 := got[0], got[1]
	if m2.GetName() != "users/ada/messages/m2" || m1.GetName() != "users/ada/messages/m1" {
		t.Fatalf("names = %s, %s; want m2, m1", m2.GetName(), m1.GetName())
	}
	if c := m1.GetClassification(); c.GetCategory() != "newsletters" || c.GetConfidence() != 0.9 ||
		c.GetSource() != mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LLM || c.GetPriority() != mailv1.Priority_PRIORITY_LOW {
		t.Errorf("m1 classification = %v", c)
	}
	if m2.GetClassification().GetCategory() != "work" {
		t.Errorf("m2 category = %q, want work", m2.GetClassification().GetCategory())
	}
	if m1.GetMailbox() != "users/ada/mailboxes/inbox" || m1.GetProviderMessageId() != "p-m1" ||
		m1.GetFrom() != "News <news@example.com>" || !m1.GetReceivedTime().AsTime().Equal(t0) ||
		!slices.Equal(m1.GetAttachmentNames(), []string{"a.pdf"}) || m1.GetSizeBytes() != 1234 {
		t.Errorf("m1 metadata = %v", m1)
	}
	if m1.GetBody() != "" {
		t.Errorf("body stored although MAILROOM_STORE_BODIES is off")
	}

	// The filter reaches the database.
	resp, err := e.client.ListMessages(ada, &storev1.ListMessagesRequest{Parent: "users/ada", Filter: `category = "newsletters"`})
	if err != nil || len(resp.GetMessages()) != 1 || resp.GetMessages()[0].GetName() != "users/ada/messages/m1" {
		t.Errorf("filtered list = %v, err %v; want m1 alone", resp.GetMessages(), err)
	}
	_, err = e.client.ListMessages(ada, &storev1.ListMessagesRequest{Parent: "users/ada", Filter: `subject = "x"`})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad filter: %v, want InvalidArgument", err)
	}
	// Paging through gRPC.
	p1, err := e.client.ListMessages(ada, &storev1.ListMessagesRequest{Parent: "users/ada", PageSize: 1})
	if err != nil || p1.GetNextPageToken() == "" {
		t.Fatalf("page 1: %v, err %v", p1, err)
	}
	p2, err := e.client.ListMessages(ada, &storev1.ListMessagesRequest{Parent: "users/ada", PageSize: 1, PageToken: p1.GetNextPageToken()})
	if err != nil || len(p2.GetMessages()) != 1 || p2.GetMessages()[0].GetName() != "users/ada/messages/m1" || p2.GetNextPageToken() != "" {
		t.Errorf("page 2: %v, err %v; want m1 and no next token", p2, err)
	}

	gm, err := e.client.GetMessage(ada, &storev1.GetMessageRequest{Name: "users/ada/messages/m2"})
	if err != nil || gm.GetMessage().GetSubject() != "Meeting (as received)" {
		t.Errorf("GetMessage = %v, err %v", gm, err)
	}
	_, err = e.client.GetMessage(ada, &storev1.GetMessageRequest{Name: "users/ada/messages/nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetMessage of a missing message: %v, want NotFound", err)
	}

	st, err := e.client.GetStats(ada, &storev1.GetStatsRequest{Name: "users/ada/stats"})
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	if s := st.GetStats(); s.GetTotal() != 2 || s.GetClassified() != 2 || len(s.GetCategories()) != 2 ||
		len(s.GetMailboxes()) != 1 || s.GetMailboxes()[0].GetMailbox() != "users/ada/mailboxes/inbox" {
		t.Errorf("stats = %v", s)
	}

	// m1's verdict arrived twice and counts once.
	u, err := e.client.GetUsage(ada, &storev1.GetUsageRequest{Name: "users/me/usage"})
	if err != nil {
		t.Fatalf("GetUsage: %v", err)
	}
	if got := u.GetUsage(); got.GetClassifications() != 2 || got.GetLlmClassifications() != 2 ||
		got.GetPromptTokens() != 600 || got.GetCachedPromptTokens() != 256 || got.GetCostMicros() != 80 || got.GetName() != "users/ada/usage" {
		t.Errorf("usage = %v; want 2 classifications, 600 prompt tokens (256 cached), 80 micros", got)
	}

	// Authorization: only ada (or an admin) reaches ada's messages.
	bob := authn.OutgoingToken(ctx, e.auth.Token("bob", false))
	if _, err := e.client.ListMessages(bob, &storev1.ListMessagesRequest{Parent: "users/ada"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("bob lists ada's messages: %v, want PermissionDenied", err)
	}
	if _, err := e.client.GetMessage(bob, &storev1.GetMessageRequest{Name: "users/ada/messages/m1"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("bob gets ada's message: %v, want PermissionDenied", err)
	}
	if resp, err := e.client.ListMessages(bob, &storev1.ListMessagesRequest{Parent: "users/me"}); err != nil || len(resp.GetMessages()) != 0 {
		t.Errorf("bob lists his own: %v, err %v; want none", resp.GetMessages(), err)
	}
	admin := authn.OutgoingToken(ctx, e.auth.Token("root", true))
	if resp, err := e.client.ListMessages(admin, &storev1.ListMessagesRequest{Parent: "users/ada"}); err != nil || len(resp.GetMessages()) != 2 {
		t.Errorf("admin lists ada's: %d messages, err %v; want 2", len(resp.GetMessages()), err)
	}
	if _, err := e.client.ListMessages(ctx, &storev1.ListMessagesRequest{Parent: "users/ada"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credential: %v, want Unauthenticated", err)
	}
	apiKey := authn.OutgoingToken(ctx, "mr_adas_key")
	if resp, err := e.client.ListMessages(apiKey, &storev1.ListMessagesRequest{Parent: "users/me"}); err != nil || len(resp.GetMessages()) != 2 {
		t.Errorf("with ada's API key: %d messages, err %v; want 2", len(resp.GetMessages()), err)
	}
	// Bob's page token does not open ada's list, nor with another filter.
	_, err = e.client.ListMessages(admin, &storev1.ListMessagesRequest{Parent: "users/bob", PageSize: 1, PageToken: p1.GetNextPageToken()})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("ada's page token on bob's list: %v, want InvalidArgument", err)
	}

	// Every event was acked after its commit (the poison one terminated).
	for _, c := range []struct{ stream, durable string }{
		{e.topo.ReceivedStreamName(), "store-received"},
		{e.topo.ClassifiedStreamName(), "store-classified"},
	} {
		waitDrained(t, ctx, e.js, c.stream, c.durable)
	}

	// One trace: each event's span in the store is a child of its publish's
	// producer span (under the producer's), and links to it.
	var consumed int
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byID[s.SpanContext.SpanID()] = s
	}
	for _, s := range spans.GetSpans() {
		if s.SpanContext.TraceID() != producer.SpanContext().TraceID() {
			continue
		}
		if s.Name == "store process mail.received" || s.Name == "store process mail.classified" {
			consumed++
			send, ok := byID[s.Parent.SpanID()]
			if !ok || send.SpanKind != trace.SpanKindProducer || send.Parent.SpanID() != producer.SpanContext().SpanID() {
				t.Errorf("span %s has parent %s (%q), want the publish's producer span under the producer's", s.Name, s.Parent.SpanID(), send.Name)
			}
			if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != s.Parent.SpanID() {
				t.Errorf("span %s links to %v, want its publish's producer span", s.Name, s.Links)
			}
		}
	}
	if consumed < 5 {
		t.Errorf("%d store spans in the producer's trace, want at least 5", consumed)
	}
}

func waitDrained(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, durable string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			t.Fatalf("consumer %s: %v", durable, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatalf("consumer %s: %v", durable, err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("consumer %s: %d pending, %d unacked after 10s", durable, info.NumPending, info.NumAckPending)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	for name, dbURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) { testLifecycle(t, dbURL(t)) })
	}
}

// testLifecycle covers dead letters, bodies, the retention job, and
// deleting a user (PurgeUserData) with a late event of theirs.
func testLifecycle(t *testing.T, databaseURL string) {
	e := start(t, databaseURL, func(c *store.Config) {
		c.StoreBodies = true
		c.RetentionInterval = 200 * time.Millisecond
		c.PurgeBatchSize = 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ada := authn.OutgoingToken(ctx, e.auth.Token("ada", false))
	now := time.Now().UTC()
	recvSubj, clsSubj := e.topo.ReceivedSubject("live", "ada"), e.topo.ClassifiedSubject("ada")
	publish := func(subject, id string, ev proto.Message) {
		t.Helper()
		if _, err := eventbus.Publish(ctx, e.js, subject, id, ev); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	// d1 dead-lettered before anything else of it arrived; d2 dead-lettered,
	// then classified after a replay; old is past the retention.
	dead := func(id string) *eventsv1.MailDeadLettered {
		return &eventsv1.MailDeadLettered{
			Received: receivedEvent(id, content("Failing "+id, now.Add(-time.Hour))),
			Reason:   "model answered 500 five times", Attempts: 5, DeadTime: timestamppb.Now(),
		}
	}
	publish(e.topo.DeadLetterSubject("ada"), "dead/d1", dead("d1"))
	publish(e.topo.DeadLetterSubject("ada"), "dead/d2", dead("d2"))
	publish(recvSubj, "inbox/p-old", receivedEvent("old", content("Old", now.Add(-40*24*time.Hour))))
	waitState(t, e, ada, "users/ada/messages/d2", storev1.MessageState_MESSAGE_STATE_FAILED)
	publish(clsSubj, "classified/users/ada/messages/d2", classifiedEvent("d2", "work", content("Failing d2", now.Add(-time.Hour))))
	waitState(t, e, ada, "users/ada/messages/d2", storev1.MessageState_MESSAGE_STATE_CLASSIFIED)

	d1, err := e.client.GetMessage(ada, &storev1.GetMessageRequest{Name: "users/ada/messages/d1"})
	if err != nil {
		t.Fatalf("GetMessage d1: %v", err)
	}
	if m := d1.GetMessage(); m.GetState() != storev1.MessageState_MESSAGE_STATE_FAILED || m.GetSubject() != "Failing d1" || m.GetBody() != "the body" {
		t.Errorf("dead-lettered d1 = state %v, subject %q, body %q; want failed, its metadata and (bodies kept) its body", m.GetState(), m.GetSubject(), m.GetBody())
	}
	// The retention job removed the 40-day-old message.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.client.GetMessage(ada, &storev1.GetMessageRequest{Name: "users/ada/messages/old"})
		if status.Code(err) == codes.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired message is still there after 10s (err %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	list, err := e.client.ListMessages(ada, &storev1.ListMessagesRequest{Parent: "users/ada", Filter: "classified = false"})
	if err != nil || len(list.GetMessages()) != 1 || list.GetMessages()[0].GetName() != "users/ada/messages/d1" {
		t.Errorf("unclassified = %v, err %v; want d1", list.GetMessages(), err)
	}
	for _, m := range list.GetMessages() {
		if m.GetBody() != "" {
			t.Errorf("ListMessages returned the body of %s", m.GetName())
		}
	}

	// Only auth may purge a user's data.
	req := &storev1.PurgeUserDataRequest{User: "ada"}
	admin := authn.OutgoingToken(ctx, e.auth.Token("root", true))
	ingest := authn.OutgoingToken(ctx, e.auth.ServiceToken("ingest"))
	for who, c := range map[string]context.Context{"ada": ada, "an admin": admin, "ingest": ingest} {
		if _, err := e.client.PurgeUserData(c, req); status.Code(err) != codes.PermissionDenied {
			t.Errorf("PurgeUserData by %s: %v, want PermissionDenied", who, err)
		}
	}
	auth := authn.OutgoingToken(ctx, e.auth.ServiceToken("auth"))
	if _, err := e.client.PurgeUserData(auth, &storev1.PurgeUserDataRequest{User: "Not An Id"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PurgeUserData of a bad id: %v, want InvalidArgument", err)
	}
	resp, err := e.client.PurgeUserData(auth, req)
	if err != nil {
		t.Fatalf("PurgeUserData: %v", err)
	}
	if got := resp.GetDeleted(); got["messages"] != 2 || got["usage_records"] != 1 {
		t.Errorf("deleted = %v, want 2 messages and 1 usage record", got)
	}

	// A MailReceived of ada ingested before the deletion arrives late: acked
	// and dropped. One ingested afterwards belongs to a new ada.
	late := receivedEvent("late", content("Late", now))
	late.IngestTime = timestamppb.New(time.Now().Add(-time.Minute))
	publish(recvSubj, "inbox/p-late", late)
	fresh := receivedEvent("fresh", content("Fresh", now))
	fresh.IngestTime = timestamppb.New(time.Now().Add(time.Second))
	publish(recvSubj, "inbox/p-fresh", fresh)
	waitState(t, e, ada, "users/ada/messages/fresh", storev1.MessageState_MESSAGE_STATE_PENDING)
	waitDrained(t, ctx, e.js, e.topo.ReceivedStreamName(), "store-received")
	if _, err := e.client.GetMessage(ada, &storev1.GetMessageRequest{Name: "users/ada/messages/late"}); status.Code(err) != codes.NotFound {
		t.Errorf("the late event of the deleted user: %v, want NotFound", err)
	}
	waitDrained(t, ctx, e.js, e.topo.DeadLetterStreamName(), "store-dead-letters")
}

// waitState waits until the message has state.
func waitState(t *testing.T, e env, ctx context.Context, name string, state storev1.MessageState) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := e.client.GetMessage(ctx, &storev1.GetMessageRequest{Name: name})
		if err == nil && resp.GetMessage().GetState() == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %v within 15s: %v, %v", name, state, resp.GetMessage().GetState(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
