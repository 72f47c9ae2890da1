package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/authn/authntest"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
)

// lockedBuffer collects log lines written at once by many goroutines.
type lockedBuffer = testenv.Buffer

// serviceKey is ingest's service key in tests, adaKey an API key of ada.
const (
	serviceKey = "mr_ingest_service_key"
	adaKey     = "mr_ada_test_key"
)

type harness struct {
	client ingestv1.IngestServiceClient
	auth   *authntest.Server
	js     jetstream.JetStream
	topo   eventbus.Topology
	logs   *lockedBuffer
	// natsURL is the NATS server of the test.
	natsURL string
	// stop stops the service (once); the test's cleanup calls it too.
	stop func()
}

// world is what services of one test share: NATS, the fake auth service,
// the subject prefix. Two services started in one world see the same
// streams (a restart, or two replicas, when they share a database too).
type world struct {
	natsURL string
	auth    *authntest.Server
	topo    eventbus.Topology
}

func newWorld(t *testing.T) *world {
	t.Helper()
	auth := authntest.Start(t)
	auth.AddAPIKey(adaKey, "ada", false)
	auth.AddKey(serviceKey, authn.Caller{Service: authn.ServiceIngest})
	return &world{
		natsURL: testenv.NATS(t), auth: auth,
		topo: eventbus.Topology{Prefix: "t" + testenv.RandomID(4) + ".", Replicas: 1},
	}
}

// start runs the real service on a loopback port, with an embedded NATS
// server, the database at dbURL and a fake auth service.
func start(t *testing.T, dbURL string) *harness {
	t.Helper()
	return newWorld(t).start(t, dbURL, nil)
}

// start runs a service in w on the database at dbURL; configure, when not
// nil, changes its configuration first.
func (w *world) start(t *testing.T, dbURL string, configure func(*ingest.Config)) *harness {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ctx := context.Background()
	cfg := ingest.Config{SyncPoll: 50 * time.Millisecond}
	cfg.ServiceKey = serviceKey
	cfg.NATS.URL, cfg.NATS.Prefix = w.natsURL, w.topo.Prefix
	cfg.Addrs.Auth, cfg.DatabaseURL = w.auth.Addr, dbURL
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	// Tests start the syncs they want (no scheduler, no IMAP IDLE, whose
	// syncs would race theirs), and their mail may be of any age.
	cfg.SyncInterval, cfg.RetentionDays, cfg.IMAPIdleMax = 0, 0, 0
	if configure != nil {
		configure(&cfg)
	}
	svc, err := ingest.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	addr, stop := testenv.Serve(t, svc)
	cc, err := grpcconn.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	nc, js, err := eventbus.Connect(w.natsURL, "ingest-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &harness{client: ingestv1.NewIngestServiceClient(cc), auth: w.auth, js: js, topo: w.topo, logs: logs, stop: stop, natsURL: w.natsURL}
}

func (h *harness) as(t *testing.T, user, role string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return authn.OutgoingToken(ctx, h.auth.TokenFor(authn.Caller{User: user, Admin: role == "admin"}))
}

// asService is a context calling as the named mailroom service.
func (h *harness) asService(t *testing.T, name string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return authn.OutgoingToken(ctx, h.auth.ServiceToken(name))
}

// received returns every event of the received stream, in order.
func (h *harness) received(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	stream, err := h.js.Stream(ctx, h.topo.ReceivedStreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("GetMsg %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

func mail(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("internal/mailparse/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// wantStatus checks err's code and message, and returns its ErrorInfo reason.
func wantStatus(t *testing.T, err error, code codes.Code, msg string) string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("err = %v, want status %s %q", err, code, msg)
	}
	if st.Code() != code || st.Message() != msg {
		t.Errorf("status = %s %q\n     want %s %q", st.Code(), st.Message(), code, msg)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func TestIngest(t *testing.T) {
	for backend, dbURL := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			h := start(t, dbURL(t))
			testIngest(t, h)
		})
	}
}

func testIngest(t *testing.T, h *harness) {
	ada := h.as(t, "ada", "user")
	c := h.client

	// Mailboxes.
	created, err := c.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{
		Parent:    "users/me",
		MailboxId: "inbox",
		Mailbox:   &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT, DisplayName: "Old archive", Address: "ada@example.com"},
	})
	if err != nil {
		t.Fatalf("CreateMailbox: %v", err)
	}
	mb := created.GetMailbox()
	if mb.GetName() != "users/ada/mailboxes/inbox" || mb.GetState() != ingestv1.MailboxState_MAILBOX_STATE_ACTIVE ||
		mb.GetProvider() != ingestv1.Provider_PROVIDER_IMPORT || mb.GetDisplayName() != "Old archive" || mb.GetCreateTime() == nil {
		t.Errorf("created mailbox = %v", mb)
	}
	_, err = c.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "inbox", Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}})
	wantStatus(t, err, codes.AlreadyExists, "mailbox users/ada/mailboxes/inbox already exists")
	_, err = c.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_GMAIL}})
	wantStatus(t, err, codes.FailedPrecondition, "Gmail is not configured on this server: the operator sets GOOGLE_OAUTH_CLIENT_ID, GOOGLE_OAUTH_CLIENT_SECRET and MAILROOM_PUBLIC_URL")
	_, err = c.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", Mailbox: &ingestv1.Mailbox{}})
	wantStatus(t, err, codes.InvalidArgument, "mailbox.provider: is required: IMPORT, GMAIL or IMAP")
	_, err = c.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "Bad_Id", Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateMailbox with a bad id: %v, want InvalidArgument", err)
	}
	random, err := c.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}})
	if err != nil {
		t.Fatalf("CreateMailbox with a random id: %v", err)
	}
	if !strings.HasPrefix(random.GetMailbox().GetName(), "users/ada/mailboxes/") || random.GetMailbox().GetName() == "users/ada/mailboxes/" {
		t.Errorf("random mailbox name = %q", random.GetMailbox().GetName())
	}

	var names []string
	token := ""
	for page := 0; ; page++ {
		resp, err := c.ListMailboxes(ada, &ingestv1.ListMailboxesRequest{Parent: "users/me", PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatalf("ListMailboxes: %v", err)
		}
		for _, m := range resp.GetMailboxes() {
			names = append(names, m.GetName())
		}
		token = resp.GetNextPageToken()
		if token == "" || page > 5 {
			break
		}
	}
	if len(names) != 2 || !containsAll(names, "users/ada/mailboxes/inbox", random.GetMailbox().GetName()) {
		t.Errorf("listed %v, want inbox and the random mailbox", names)
	}
	_, err = c.ListMailboxes(ada, &ingestv1.ListMailboxesRequest{Parent: "users/ada", PageToken: "bm90LWEtdG9rZW4"})
	wantStatus(t, err, codes.InvalidArgument, "page_token: is not a token returned by ListMailboxes")

	// Import two mails; each becomes one MailReceived event.
	alt, news := mail(t, "alternative.eml"), mail(t, "newsletter.eml")
	resp, err := c.ImportMessages(ada, &ingestv1.ImportMessagesRequest{
		Parent:   "users/me/mailboxes/inbox",
		Messages: []*ingestv1.RawMessage{{Raw: alt}, {Raw: news}},
	})
	if err != nil {
		t.Fatalf("ImportMessages: %v", err)
	}
	wantImported := []*ingestv1.ImportedMessage{
		{ProviderMessageId: hexSum16(string(alt)), Subject: "Re: Compiler review on Thursday"},
		{ProviderMessageId: hexSum16(string(news)), Subject: "The Weekly Gopher #212: logging, iterators, faster tests"},
	}
	for _, w := range wantImported {
		w.Message = "users/ada/messages/" + hexSum16("users/ada/mailboxes/inbox\x00"+w.ProviderMessageId)
	}
	if len(resp.GetMessages()) != 2 {
		t.Fatalf("imported %v, want 2 messages", resp.GetMessages())
	}
	for i, w := range wantImported {
		if !proto.Equal(resp.GetMessages()[i], w) {
			t.Errorf("imported[%d] = %v\nwant %v", i, resp.GetMessages()[i], w)
		}
	}

	events := h.received(t)
	if len(events) != 2 {
		t.Fatalf("stream holds %d events, want 2", len(events))
	}
	for i, ev := range events {
		w := wantImported[i]
		if got, want := ev.Subject, h.topo.Prefix+"mail.received.backfill.ada"; got != want {
			t.Errorf("event %d subject = %q, want %q", i, got, want)
		}
		if got, want := ev.Header.Get("Nats-Msg-Id"), "ada/inbox/"+w.ProviderMessageId; got != want {
			t.Errorf("event %d Nats-Msg-Id = %q, want %q", i, got, want)
		}
		var e eventsv1.MailReceived
		if err := proto.Unmarshal(ev.Data, &e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if e.GetUser() != "ada" || e.GetMailbox() != "users/ada/mailboxes/inbox" || e.GetMessage() != w.Message ||
			e.GetProviderMessageId() != w.ProviderMessageId || e.GetLane() != mailv1.Lane_LANE_BACKFILL ||
			e.GetIngestTime() == nil || e.GetSyncJob() != "" {
			t.Errorf("event %d envelope = user %q mailbox %q message %q pid %q lane %v ingest %v",
				i, e.GetUser(), e.GetMailbox(), e.GetMessage(), e.GetProviderMessageId(), e.GetLane(), e.GetIngestTime())
		}
		if got := e.GetContent().GetSubject(); got != w.Subject {
			t.Errorf("event %d subject = %q, want %q", i, got, w.Subject)
		}
	}
	var first, second eventsv1.MailReceived
	_ = proto.Unmarshal(events[0].Data, &first)
	_ = proto.Unmarshal(events[1].Data, &second)
	if c := first.GetContent(); c.GetFromAddress() != "grace.hopper@navy.example.mil" ||
		c.GetMessageIdHeader() != "CAF7x9q1b2c3d4e5f6@mail.navy.example.mil" ||
		!strings.HasPrefix(c.GetTextBody(), "Hi Ada,\n\nThursday at 2pm works for me.") ||
		c.GetSizeBytes() != int64(len(alt)) || len(c.GetContentHash()) != 64 ||
		!c.GetReceivedTime().AsTime().Equal(time.Date(2025, 6, 3, 16, 14, 2, 0, time.UTC)) || len(c.GetTo()) != 2 {
		t.Errorf("first event content = %v", c)
	}
	if !hasHeader(second.GetContent(), "List-Unsubscribe", "<https://news.example.io/u/8f2e1c>, <mailto:unsubscribe-8f2e1c@news.example.io>") {
		t.Errorf("newsletter event lacks its List-Unsubscribe header: %v", second.GetContent().GetHeaders())
	}
	if got := messageCount(ada, t, c); got != 2 {
		t.Errorf("message_count = %d, want 2", got)
	}

	// Importing the same bytes again is accepted and publishes nothing new;
	// a new mail on the live lane goes to the live subject.
	qp := mail(t, "quoted_printable.eml")
	resp, err = c.ImportMessages(ada, &ingestv1.ImportMessagesRequest{
		Parent:   "users/ada/mailboxes/inbox",
		Messages: []*ingestv1.RawMessage{{Raw: alt}, {Raw: news}, {Raw: qp}},
		Lane:     mailv1.Lane_LANE_LIVE,
	})
	if err != nil {
		t.Fatalf("ImportMessages again: %v", err)
	}
	if len(resp.GetMessages()) != 3 || resp.GetMessages()[0].GetMessage() != wantImported[0].Message {
		t.Errorf("re-import response = %v", resp.GetMessages())
	}
	events = h.received(t)
	if len(events) != 3 {
		t.Fatalf("stream holds %d events after a re-import, want 3", len(events))
	}
	if got, want := events[2].Subject, h.topo.Prefix+"mail.received.live.ada"; got != want {
		t.Errorf("live event subject = %q, want %q", got, want)
	}
	if got := messageCount(ada, t, c); got != 3 {
		t.Errorf("message_count after re-import = %d, want 3", got)
	}

	// Bad input: each refused with its code and message, nothing published.
	big := append([]byte("From: a@example.com\r\nSubject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 30<<20/18)...)
	badCases := []struct {
		name   string
		ctx    context.Context
		req    *ingestv1.ImportMessagesRequest
		code   codes.Code
		msg    string
		reason string
	}{
		{"empty message", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: mail(t, "base64.eml")}, {Raw: nil}}},
			codes.InvalidArgument, "messages[1].raw: is empty", "INVALID_ARGUMENT"},
		{"30 MB message", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: big}}},
			codes.InvalidArgument, fmt.Sprintf("messages[0].raw: is %d bytes, over the limit of 26214400 bytes per message", len(big)), "MESSAGE_TOO_LARGE"},
		{"garbage", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: mail(t, "base64.eml")}, {Raw: mail(t, "garbage.txt")}}},
			codes.InvalidArgument, "messages[1].raw: is not an RFC 822 message: the header is not an RFC 5322 header (a line is neither a field nor a continuation)", "INVALID_ARGUMENT"},
		{"no messages", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox"},
			codes.InvalidArgument, "messages: is empty: send at least one message", "INVALID_ARGUMENT"},
		{"too many messages", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
			Messages: repeat(&ingestv1.RawMessage{Raw: qp}, 1001)},
			codes.InvalidArgument, "messages: has 1001 messages; at most 1000 are accepted per call", "INVALID_ARGUMENT"},
		{"unknown mailbox", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/nope",
			Messages: []*ingestv1.RawMessage{{Raw: qp}}},
			codes.NotFound, "mailbox users/ada/mailboxes/nope does not exist", "NOT_FOUND"},
		{"another user's mailbox", h.as(t, "bob", "user"), &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: qp}}},
			codes.PermissionDenied, "the caller may not access users/ada", "PERMISSION_DENIED"},
		{"no credential", context.Background(), &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: qp}}},
			codes.Unauthenticated, "missing credential: send `authorization: Bearer <API key or identity token>`", "UNAUTHENTICATED"},
		{"bad parent", ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: qp}}},
			codes.InvalidArgument, `parent: "users/ada/inbox" is not a name of the form users/*/mailboxes/*`, "INVALID_ARGUMENT"},
	}
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ImportMessages(tc.ctx, tc.req)
			if reason := wantStatus(t, err, tc.code, tc.msg); reason != tc.reason {
				t.Errorf("reason = %q, want %q", reason, tc.reason)
			}
			// The server still answers, and nothing of the batch was published.
			if got := messageCount(ada, t, c); got != 3 {
				t.Errorf("message_count = %d, want 3", got)
			}
			if n := len(h.received(t)); n != 3 {
				t.Errorf("stream holds %d events, want 3", n)
			}
		})
	}
	_, err = c.GetMailbox(h.as(t, "bob", "user"), &ingestv1.GetMailboxRequest{Name: "users/ada/mailboxes/inbox"})
	wantStatus(t, err, codes.PermissionDenied, "the caller may not access users/ada")
	_, err = c.GetMailbox(h.as(t, "bob", "user"), &ingestv1.GetMailboxRequest{Name: "users/me/mailboxes/inbox"})
	wantStatus(t, err, codes.NotFound, "mailbox users/bob/mailboxes/inbox does not exist")
	if _, err := c.GetMailbox(h.as(t, "root", "admin"), &ingestv1.GetMailboxRequest{Name: "users/ada/mailboxes/inbox"}); err != nil {
		t.Errorf("an admin's GetMailbox: %v", err)
	}
	apiKeyCtx := authn.OutgoingToken(context.Background(), adaKey)
	if _, err := c.GetMailbox(apiKeyCtx, &ingestv1.GetMailboxRequest{Name: "users/me/mailboxes/inbox"}); err != nil {
		t.Errorf("GetMailbox with an API key: %v", err)
	}

	// Sync: an IMPORT mailbox has nothing to fetch, its job succeeds at once.
	job, err := c.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: "users/me/mailboxes/inbox"})
	if err != nil {
		t.Fatalf("SyncMailbox: %v", err)
	}
	j := job.GetSyncJob()
	if !strings.HasPrefix(j.GetName(), "users/ada/syncJobs/") || j.GetMailbox() != "users/ada/mailboxes/inbox" ||
		j.GetState() != ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || j.GetMode() != ingestv1.SyncMode_SYNC_MODE_FULL ||
		j.GetMaxMessages() != 100 || j.GetProgress().GetPublished() != 0 || j.GetEndTime() == nil {
		t.Errorf("sync job = %v", j)
	}
	got, err := c.GetSyncJob(ada, &ingestv1.GetSyncJobRequest{Name: j.GetName()})
	if err != nil {
		t.Fatalf("GetSyncJob: %v", err)
	}
	if !proto.Equal(got.GetSyncJob(), j) {
		t.Errorf("GetSyncJob = %v\nwant %v", got.GetSyncJob(), j)
	}
	again, err := c.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: "users/ada/mailboxes/inbox", MaxMessages: 20})
	if err != nil {
		t.Fatalf("SyncMailbox again: %v", err)
	}
	if again.GetSyncJob().GetMode() != ingestv1.SyncMode_SYNC_MODE_INCREMENTAL || again.GetSyncJob().GetMaxMessages() != 20 {
		t.Errorf("second sync job = %v, want INCREMENTAL with 20 messages", again.GetSyncJob())
	}
	_, err = c.GetSyncJob(ada, &ingestv1.GetSyncJobRequest{Name: "users/ada/syncJobs/nope"})
	wantStatus(t, err, codes.NotFound, "sync job users/ada/syncJobs/nope does not exist")
	_, err = c.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: "users/ada/mailboxes/inbox", MaxMessages: 10001})
	wantStatus(t, err, codes.InvalidArgument, "max_messages: is 10001; at most 10000 messages are fetched by one sync")
	if m, err := c.GetMailbox(ada, &ingestv1.GetMailboxRequest{Name: "users/ada/mailboxes/inbox"}); err != nil || m.GetMailbox().GetLastSyncTime() == nil {
		t.Errorf("mailbox after a sync = %v, %v; want a last sync time", m.GetMailbox(), err)
	}

	// Mail content never reaches the logs.
	logs := h.logs.String()
	if !strings.Contains(logs, "grpc call") {
		t.Errorf("no call was logged; the log check below would prove nothing")
	}
	for _, secret := range []string{"Compiler review", "grace.hopper", "Weekly Gopher", "Thursday at 2pm", "ada@example.com", "Old archive"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold mail content %q", secret)
		}
	}
}

func messageCount(ctx context.Context, t *testing.T, c ingestv1.IngestServiceClient) int64 {
	t.Helper()
	m, err := c.GetMailbox(ctx, &ingestv1.GetMailboxRequest{Name: "users/me/mailboxes/inbox"})
	if err != nil {
		t.Fatalf("GetMailbox: %v", err)
	}
	return m.GetMailbox().GetMessageCount()
}

func hasHeader(m *mailv1.NormalizedMessage, name, value string) bool {
	for _, h := range m.GetHeaders() {
		if h.GetName() == name && h.GetValue() == value {
			return true
		}
	}
	return false
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, s := range list {
			found = found || s == w
		}
		if !found {
			return false
		}
	}
	return true
}

func repeat(m *ingestv1.RawMessage, n int) []*ingestv1.RawMessage {
	out := make([]*ingestv1.RawMessage, n)
	for i := range out {
		out[i] = m
	}
	return out
}
