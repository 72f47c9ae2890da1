package ingest_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"mailroom.dev/fakes/fakegmail"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
)

// gmailConfig points a service at fake, with the quota raised and the
// backoff shortened so that tests run fast.
func gmailConfig(fake *fakegmail.Server) func(*ingest.Config) {
	return func(c *ingest.Config) {
		c.GoogleClientID = fake.ClientID
		c.GoogleClientSecret = fake.ClientSecret
		c.PublicURL = "http://mailroom.test:8080"
		c.GoogleAuthURL = fake.AuthURL
		c.GoogleTokenURL = fake.TokenURL
		c.GoogleRevokeURL = fake.RevokeURL
		c.GmailEndpoint = fake.URL
		c.GmailQuotaPerMinute = 100_000_000
		c.GmailConcurrency = 8
		c.GmailBackoff = time.Millisecond
	}
}

// event is one mail.received event as a test checks it.
type event struct {
	msgID   string
	subject string
	e       *eventsv1.MailReceived
}

// events reads the whole received stream through an ordered consumer.
func (h *harness) events(t *testing.T) []event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := h.js.Stream(ctx, h.topo.ReceivedStreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.State.Msgs)
	if total == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []event
	for len(out) < total {
		batch, err := cons.Fetch(min(1000, total-len(out)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			var e eventsv1.MailReceived
			if err := proto.Unmarshal(m.Data(), &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, event{msgID: m.Headers().Get(jetstream.MsgIDHeader), subject: m.Subject(), e: &e})
			n++
		}
		if n == 0 {
			t.Fatalf("read %d of %d events", len(out), total)
		}
	}
	return out
}

// checkUnique fails when two events share a Nats-Msg-Id or a message name.
func checkUnique(t *testing.T, evs []event) {
	t.Helper()
	ids, names := map[string]bool{}, map[string]bool{}
	for _, e := range evs {
		if ids[e.msgID] || names[e.e.GetMessage()] {
			t.Fatalf("message %s (%s) published twice", e.e.GetMessage(), e.msgID)
		}
		ids[e.msgID], names[e.e.GetMessage()] = true, true
	}
}

// connectGmail creates a GMAIL mailbox for ada and completes its consent at fake.
// startConsent does what the gateway's /oauth/google/start does for a
// browser opening authURL: it binds the consent to a new browser binding
// and returns Google's consent URL and the binding.
func startConsent(t *testing.T, h *harness, authURL string) (googleURL, binding string) {
	t.Helper()
	u := mustURL(t, authURL)
	if got := u.Scheme + "://" + u.Host + u.Path; got != "http://mailroom.test:8080/oauth/google/start" {
		t.Fatalf("authorization URL %s, want the gateway's /oauth/google/start", authURL)
	}
	binding = "browser-" + testenv.RandomID(16)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := h.client.StartAuthorization(ctx, &ingestv1.StartAuthorizationRequest{State: u.Query().Get("state"), Binding: binding})
	if err != nil {
		t.Fatalf("StartAuthorization: %v", err)
	}
	return resp.GetGoogleAuthorizationUrl(), binding
}

func connectGmail(t *testing.T, h *harness, fake *fakegmail.Server, id string) *ingestv1.Mailbox {
	t.Helper()
	ada := h.as(t, "ada", "user")
	created, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{
		Parent: "users/me", MailboxId: id, Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_GMAIL},
	})
	if err != nil {
		t.Fatalf("CreateMailbox GMAIL: %v", err)
	}
	mb := created.GetMailbox()
	if mb.GetState() != ingestv1.MailboxState_MAILBOX_STATE_PENDING_AUTHORIZATION || mb.GetAuthorizationUrl() == "" {
		t.Fatalf("created = %v, want PENDING_AUTHORIZATION with an authorization URL", mb)
	}
	googleURL, binding := startConsent(t, h, mb.GetAuthorizationUrl())
	redirect, err := fake.Consents(googleURL)
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	q := mustURL(t, redirect).Query()
	// The callback is public: no credential on this call.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := h.client.CompleteAuthorization(ctx, &ingestv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code"), Binding: binding})
	if err != nil {
		t.Fatalf("CompleteAuthorization: %v", err)
	}
	return done.GetMailbox()
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// syncAndWait starts a sync and watches it to its end.
func syncAndWait(t *testing.T, h *harness, mailbox string, mode ingestv1.SyncMode, max int32) *ingestv1.SyncJob {
	t.Helper()
	ada := h.as(t, "ada", "user")
	started, err := h.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: mailbox, Mode: mode, MaxMessages: max})
	if err != nil {
		t.Fatalf("SyncMailbox: %v", err)
	}
	return waitJob(t, h, started.GetSyncJob().GetName())
}

// waitJob watches a job until it ends and returns its last state.
func waitJob(t *testing.T, h *harness, name string) *ingestv1.SyncJob {
	t.Helper()
	ada := h.as(t, "ada", "user")
	stream, err := h.client.WatchSyncJob(ada, &ingestv1.WatchSyncJobRequest{Name: name})
	if err != nil {
		t.Fatalf("WatchSyncJob: %v", err)
	}
	var last *ingestv1.SyncJob
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		last = resp.GetSyncJob()
	}
	switch last.GetState() {
	case ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED:
	default:
		t.Fatalf("watch of %s ended on %v", name, last)
	}
	return last
}

func wantProgress(t *testing.T, j *ingestv1.SyncJob, state ingestv1.SyncJobState, published int64) {
	t.Helper()
	if j.GetState() != state || j.GetProgress().GetPublished() != published {
		t.Fatalf("job = %v %v (error %q), want %v with %d published", j.GetState(), j.GetProgress(), j.GetError(), state, published)
	}
}

// TestGmailTenThousand syncs a mailbox of 10,000 messages in capped steps,
// then 10 new mails incrementally, then fills the gap left by an expired
// history: every message is published exactly once.
func TestGmailTenThousand(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(10_000)
	h := newWorld(t).start(t, testenv.PostgresURL(t), gmailConfig(fake))

	mb := connectGmail(t, h, fake, "gmail")
	if mb.GetState() != ingestv1.MailboxState_MAILBOX_STATE_ACTIVE || mb.GetAddress() != "ada@gmail.example" {
		t.Fatalf("connected mailbox = %v", mb)
	}
	if secret, ok := h.auth.Secret(mb.GetName() + "/credential"); !ok || !strings.HasPrefix(string(secret), "1//") {
		t.Fatalf("vault holds %q, %v; want the refresh token", secret, ok)
	}

	// The backfill, 3,000 at a time: newest first, then on down.
	var steps []*ingestv1.SyncJob
	for range 5 {
		j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 3000)
		steps = append(steps, j)
		if j.GetState() != ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED {
			t.Fatalf("step %d: %v", len(steps), j)
		}
		if j.GetProgress().GetFetched() == 0 {
			break
		}
	}
	var published []int64
	for _, j := range steps {
		published = append(published, j.GetProgress().GetPublished())
	}
	if want := []int64{3000, 3000, 3000, 1000, 0}; !equal(published, want) {
		t.Fatalf("published per step = %v, want %v", published, want)
	}
	if steps[0].GetMode() != ingestv1.SyncMode_SYNC_MODE_FULL || steps[1].GetMode() != ingestv1.SyncMode_SYNC_MODE_INCREMENTAL {
		t.Errorf("modes = %v, %v; want FULL then INCREMENTAL", steps[0].GetMode(), steps[1].GetMode())
	}
	evs := h.events(t)
	if len(evs) != 10_000 {
		t.Fatalf("%d events after the backfill, want 10000", len(evs))
	}
	checkUnique(t, evs)
	newest := acct.IDs()
	if got := evs[0].e.GetProviderMessageId(); got != newest[0] && got != newest[1] && evs[0].e.GetLane() != mailv1.Lane_LANE_BACKFILL {
		t.Errorf("first event is %s on %v, want one of the newest on the backfill lane", got, evs[0].e.GetLane())
	}
	if s := evs[0].subject; !strings.HasPrefix(s, h.topo.Prefix+"mail.received.backfill.ada") {
		t.Errorf("subject = %s", s)
	}

	// Ten new mails: exactly ten new events, on the live lane.
	added := acct.AddMessages(10)
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_INCREMENTAL, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 10)
	evs = h.events(t)
	if len(evs) != 10_010 {
		t.Fatalf("%d events after the incremental sync, want 10010", len(evs))
	}
	checkUnique(t, evs)
	wantNew(t, evs[10_000:], added, mailv1.Lane_LANE_LIVE)
	if calls := fake.Calls(fakegmail.EndpointHistory); calls == 0 {
		t.Errorf("the incremental sync did not read the history")
	}

	// Nothing new: nothing published.
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 0)

	// Mail arrives, then the history expires: the resync fills the gap.
	gap := acct.AddMessages(7)
	acct.ExpireHistory()
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 7)
	if j.GetProgress().GetFetched() != 7 {
		t.Errorf("the resync fetched %d messages, want only the 7 of the gap", j.GetProgress().GetFetched())
	}
	evs = h.events(t)
	if len(evs) != 10_017 {
		t.Fatalf("%d events after the resync, want 10017", len(evs))
	}
	checkUnique(t, evs)
	wantNew(t, evs[10_010:], gap, mailv1.Lane_LANE_LIVE)

	// And incremental syncs work again from the new historyId.
	more := acct.AddMessages(2)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 2)
	evs = h.events(t)
	checkUnique(t, evs)
	wantNew(t, evs[10_017:], more, mailv1.Lane_LANE_LIVE)

	got, err := h.client.GetMailbox(h.as(t, "ada", "user"), &ingestv1.GetMailboxRequest{Name: mb.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetMailbox().GetMessageCount() != 10_019 || got.GetMailbox().GetLastSyncTime() == nil {
		t.Errorf("mailbox = %v, want 10019 messages and a last sync time", got.GetMailbox())
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wantNew checks that evs are exactly the messages ids, on lane.
func wantNew(t *testing.T, evs []event, ids []string, lane mailv1.Lane) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	if len(evs) != len(ids) {
		t.Fatalf("%d new events, want %d", len(evs), len(ids))
	}
	for _, e := range evs {
		if !want[e.e.GetProviderMessageId()] || e.e.GetLane() != lane || e.e.GetSyncJob() == "" {
			t.Errorf("new event %s on %v (job %q), want one of %v on %v", e.e.GetProviderMessageId(), e.e.GetLane(), e.e.GetSyncJob(), ids, lane)
		}
		delete(want, e.e.GetProviderMessageId())
	}
}

// TestGmailRestart stops ingest in the middle of a sync and starts another
// on the same database and NATS: it takes the job over, and the mailbox
// ends up complete with nothing published twice.
func TestGmailRestart(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(2000)
	fake.SetLatency(fakegmail.EndpointGet, 2*time.Millisecond)
	w := newWorld(t)
	dbURL := testenv.PostgresURL(t)
	configure := func(c *ingest.Config) {
		gmailConfig(fake)(c)
		c.GmailConcurrency = 4
		c.SyncLease = 600 * time.Millisecond
	}
	first := w.start(t, dbURL, configure)
	mb := connectGmail(t, first, fake, "gmail")
	started, err := first.client.SyncMailbox(first.as(t, "ada", "user"), &ingestv1.SyncMailboxRequest{Name: mb.GetName(), MaxMessages: 5000})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for fake.Calls(fakegmail.EndpointGet) < 400 {
		if time.Now().After(deadline) {
			t.Fatal("the sync did not get going")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.stop() // mid-sync

	fake.SetLatency(fakegmail.EndpointGet, 0)
	second := w.start(t, dbURL, configure)
	j := waitJob(t, second, started.GetSyncJob().GetName())
	// The counters may count a message that the first process published
	// but had not recorded when it stopped: the second publishes it again
	// (JetStream drops the repeat). The stream below is the truth.
	if p := j.GetProgress(); j.GetState() != ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED ||
		p.GetPublished() < 2000 || p.GetPublished() > 2000+200 || p.GetFetched() > 2000+200 {
		t.Fatalf("job = %v %v, want SUCCEEDED with 2000 published", j.GetState(), p)
	}
	evs := second.events(t)
	if len(evs) != 2000 {
		t.Fatalf("%d events, want 2000", len(evs))
	}
	checkUnique(t, evs)
	got, err := second.client.GetMailbox(second.as(t, "ada", "user"), &ingestv1.GetMailboxRequest{Name: mb.GetName()})
	if err != nil || got.GetMailbox().GetMessageCount() != 2000 {
		t.Errorf("mailbox = %v, %v; want 2000 messages", got.GetMailbox(), err)
	}
	// Nothing left: the next sync publishes nothing.
	j = syncAndWait(t, second, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 0)
}

// TestSyncSkipsMailOlderThanRetention: with a retention window, a sync does
// not publish mail dated before it (the store would purge it after the
// classifier had paid for it); it counts it as skipped, and does not fetch
// it again.
func TestSyncSkipsMailOlderThanRetention(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(5) // dated 2024: outside a 30-day window
	recent := []byte("From: Grace <grace@example.org>\r\nTo: ada@gmail.example\r\nSubject: Today\r\nDate: " +
		time.Now().UTC().Format(time.RFC1123Z) + "\r\nMessage-ID: <today@example.org>\r\n\r\nHello.\r\n")
	acct.Add(recent)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		gmailConfig(fake)(c)
		c.RetentionDays = 30
	})
	mb := connectGmail(t, h, fake, "gmail")
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_FULL, 100)
	if p := j.GetProgress(); p.GetPublished() != 1 || p.GetSkipped() != 5 || p.GetFailed() != 0 {
		t.Fatalf("progress = %v, want 1 published and 5 skipped", p)
	}
	if evs := h.events(t); len(evs) != 1 {
		t.Fatalf("%d events, want only today's mail", len(evs))
	}
	gets := fake.Calls(fakegmail.EndpointGet)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_FULL, 100)
	if p := j.GetProgress(); p.GetPublished() != 0 || fake.Calls(fakegmail.EndpointGet) != gets {
		t.Errorf("second sync: %v, %d more gets; want nothing fetched again", p, fake.Calls(fakegmail.EndpointGet)-gets)
	}
}

// TestRetentionGoesByGmailsReceiptTime: the expired check and the message's
// date use Gmail's internalDate, not the Date header that a sender writes:
// a mail forged to look old is still classified, and one forged to look new
// does not escape the window.
func TestRetentionGoesByGmailsReceiptTime(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	mail := func(id, date string) []byte {
		return []byte("From: Mallory <m@example.org>\r\nTo: ada@gmail.example\r\nSubject: " + id + "\r\nDate: " + date +
			"\r\nMessage-ID: <" + id + "@example.org>\r\n\r\nHello.\r\n")
	}
	old := time.Now().Add(-400 * 24 * time.Hour)
	acct.Add(mail("looks-old", old.Format(time.RFC1123Z)))                                      // received now
	acct.AddReceived(mail("looks-new", time.Now().Format(time.RFC1123Z)), old)                  // received long ago
	acct.Add(mail("from-the-future", time.Now().Add(5*365*24*time.Hour).Format(time.RFC1123Z))) // received now
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		gmailConfig(fake)(c)
		c.RetentionDays = 30
	})
	mb := connectGmail(t, h, fake, "gmail")
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_FULL, 100)
	if p := j.GetProgress(); p.GetPublished() != 2 || p.GetSkipped() != 1 {
		t.Fatalf("progress = %v, want the two received now published and the one received long ago skipped", p)
	}
	for _, ev := range h.events(t) {
		got := ev.e.GetContent().GetReceivedTime().AsTime()
		if d := time.Since(got); d < 0 || d > time.Hour {
			t.Errorf("%q is dated %v, want Gmail's receipt time (now), not its Date header", ev.e.GetContent().GetSubject(), got)
		}
	}
}

// TestDeleteMailboxRevokesTheGoogleGrant: deleting a Gmail mailbox revokes
// mailroom's access at Google, not only the stored token; a grant Google
// already forgot does not stop the deletion.
func TestDeleteMailboxRevokesTheGoogleGrant(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	fake.AddAccount("ada@gmail.example").AddMessages(3)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	ada := h.as(t, "ada", "user")
	for _, revokedBefore := range []bool{false, true} {
		mb := connectGmail(t, h, fake, fmt.Sprintf("gmail-%v", revokedBefore))
		if !fake.Granted("ada@gmail.example") {
			t.Fatal("no grant after the consent")
		}
		if revokedBefore {
			fake.Revoke("ada@gmail.example")
		}
		if _, err := h.client.DeleteMailbox(ada, &ingestv1.DeleteMailboxRequest{Name: mb.GetName()}); err != nil {
			t.Fatalf("DeleteMailbox (revoked before: %v): %v", revokedBefore, err)
		}
		if fake.Granted("ada@gmail.example") {
			t.Errorf("the Google grant is still alive after DeleteMailbox")
		}
		if n := fake.Calls(fakegmail.EndpointRevoke); n != map[bool]int{false: 1, true: 2}[revokedBefore] {
			t.Errorf("revoke calls = %d", n)
		}
	}
}

// TestReconnectKeepsTheMailboxsHistory: a Gmail mailbox disconnected by a
// revoked grant is reconnected through a new consent, without losing its
// cursor: the next sync publishes only what arrived since.
func TestReconnectKeepsTheMailboxsHistory(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(5)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	ada := h.as(t, "ada", "user")
	mb := connectGmail(t, h, fake, "gmail")
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 5)

	if _, err := h.client.ReconnectMailbox(ada, &ingestv1.ReconnectMailboxRequest{Name: mb.GetName()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("reconnecting an ACTIVE mailbox: %v, want FailedPrecondition", err)
	}
	fake.Revoke("ada@gmail.example")
	syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	got, err := h.client.GetMailbox(ada, &ingestv1.GetMailboxRequest{Name: mb.GetName()})
	if err != nil || got.GetMailbox().GetState() != ingestv1.MailboxState_MAILBOX_STATE_DISCONNECTED {
		t.Fatalf("after the revocation: %v, %v; want DISCONNECTED", got.GetMailbox(), err)
	}

	re, err := h.client.ReconnectMailbox(ada, &ingestv1.ReconnectMailboxRequest{Name: mb.GetName()})
	if err != nil {
		t.Fatalf("ReconnectMailbox: %v", err)
	}
	if m := re.GetMailbox(); m.GetState() != ingestv1.MailboxState_MAILBOX_STATE_PENDING_AUTHORIZATION || m.GetAuthorizationUrl() == "" {
		t.Fatalf("reconnected = %v, want PENDING_AUTHORIZATION with a new authorization URL", m)
	}
	googleURL, binding := startConsent(t, h, re.GetMailbox().GetAuthorizationUrl())
	redirect, err := fake.Consents(googleURL)
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	q := mustURL(t, redirect).Query()
	done, err := h.client.CompleteAuthorization(context.Background(), &ingestv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code"), Binding: binding})
	if err != nil || done.GetMailbox().GetState() != ingestv1.MailboxState_MAILBOX_STATE_ACTIVE {
		t.Fatalf("CompleteAuthorization after reconnect: %v, %v", done.GetMailbox(), err)
	}
	acct.AddMessages(2)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 2)
	if evs := h.events(t); len(evs) != 7 {
		t.Errorf("%d events, want the 5 of before and the 2 new ones, none twice", len(evs))
	}
}
