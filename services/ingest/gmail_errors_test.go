package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"mailroom.dev/fakes/fakegmail"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
)

// TestGmailConsent checks the authorization URL and the consent's edges:
// a state works once, a refusal disconnects the mailbox.
func TestGmailConsent(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	fake.AddAccount("ada@gmail.example")
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	ada := h.as(t, "ada", "user")

	created, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "gm",
		Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_GMAIL}})
	if err != nil {
		t.Fatal(err)
	}
	googleURL, binding := startConsent(t, h, created.GetMailbox().GetAuthorizationUrl())
	// The authorization URL binds once: another browser opening it later
	// is refused.
	_, err = h.client.StartAuthorization(context.Background(), &ingestv1.StartAuthorizationRequest{
		State: mustURL(t, created.GetMailbox().GetAuthorizationUrl()).Query().Get("state"), Binding: "another-browser-" + testenv.RandomID(8)})
	wantStatus(t, err, codes.InvalidArgument, "state: is unknown, was used already or was opened in another browser: start the connection again by reconnecting the mailbox")
	u := mustURL(t, googleURL)
	q := u.Query()
	for k, want := range map[string]string{
		"client_id":             fake.ClientID,
		"redirect_uri":          "http://mailroom.test:8080/oauth/google/callback",
		"scope":                 "https://www.googleapis.com/auth/gmail.readonly",
		"code_challenge_method": "S256",
		"access_type":           "offline",
		"response_type":         "code",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("authorization URL %s = %q, want %q", k, got, want)
		}
	}
	if u.Scheme+"://"+u.Host+u.Path != fake.AuthURL || len(q.Get("state")) < 40 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("authorization URL = %s", u)
	}
	// A GET does not hand the URL (and its state) out again.
	got, err := h.client.GetMailbox(ada, &ingestv1.GetMailboxRequest{Name: "users/ada/mailboxes/gm"})
	if err != nil || got.GetMailbox().GetAuthorizationUrl() != "" || !strings.Contains(got.GetMailbox().GetStateReason(), "consent") {
		t.Errorf("GetMailbox of a pending mailbox = %v, %v", got.GetMailbox(), err)
	}
	if _, err := h.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: "users/ada/mailboxes/gm"}); codeOf(err) != codes.FailedPrecondition {
		t.Errorf("sync of a pending mailbox: %v, want FailedPrecondition", err)
	}

	redirect, err := fake.Consents(u.String())
	if err != nil {
		t.Fatal(err)
	}
	rq := mustURL(t, redirect).Query()
	public := context.Background()
	// A wrong state, then a wrong code (the state is then used up).
	_, err = h.client.CompleteAuthorization(public, &ingestv1.CompleteAuthorizationRequest{State: "forged", Code: rq.Get("code")})
	wantStatus(t, err, codes.InvalidArgument, "state: is unknown or was used already: start the connection again by creating the mailbox")
	if _, err := h.client.CompleteAuthorization(public, &ingestv1.CompleteAuthorizationRequest{State: rq.Get("state"), Code: rq.Get("code"), Binding: binding}); err != nil {
		t.Fatalf("CompleteAuthorization: %v", err)
	}
	_, err = h.client.CompleteAuthorization(public, &ingestv1.CompleteAuthorizationRequest{State: rq.Get("state"), Code: rq.Get("code"), Binding: binding})
	wantStatus(t, err, codes.InvalidArgument, "state: is unknown or was used already: start the connection again by creating the mailbox")

	// The user refuses consent on a second mailbox.
	created, err = h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "refused",
		Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_GMAIL}})
	if err != nil {
		t.Fatal(err)
	}
	state := mustURL(t, created.GetMailbox().GetAuthorizationUrl()).Query().Get("state")
	_, binding = startConsent(t, h, created.GetMailbox().GetAuthorizationUrl())
	_, err = h.client.CompleteAuthorization(public, &ingestv1.CompleteAuthorizationRequest{State: state, Error: "access_denied", Binding: binding})
	wantStatus(t, err, codes.FailedPrecondition, "Google did not grant access to mailbox users/ada/mailboxes/refused (access_denied)")
	got, _ = h.client.GetMailbox(ada, &ingestv1.GetMailboxRequest{Name: "users/ada/mailboxes/refused"})
	if got.GetMailbox().GetState() != ingestv1.MailboxState_MAILBOX_STATE_DISCONNECTED {
		t.Errorf("refused mailbox = %v", got.GetMailbox())
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

// TestGmailFaults syncs through rate limits and server errors, then loses
// the consent: the mailbox is disconnected once, its token deleted.
func TestGmailFaults(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(30)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	mb := connectGmail(t, h, fake, "gmail")

	fake.Fail(fakegmail.EndpointList, 1, fakegmail.Fault{Status: 429, Reason: "rateLimitExceeded"})
	fake.Fail(fakegmail.EndpointGet, 3, fakegmail.Fault{Status: 403, Reason: "userRateLimitExceeded"})
	fake.Fail(fakegmail.EndpointGet, 1, fakegmail.Fault{Status: 403, Reason: "rateLimitExceeded"})
	fake.Fail(fakegmail.EndpointGet, 1, fakegmail.Fault{Status: 503, Reason: "backendError"})
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_FULL, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 30)
	if got := fake.Calls(fakegmail.EndpointGet); got != 35 {
		t.Errorf("messages.get calls = %d, want 30 and 5 retries", got)
	}
	if got := fake.Calls(fakegmail.EndpointList); got != 2 {
		t.Errorf("messages.list calls = %d, want 1 and 1 retry", got)
	}
	acct.AddMessages(3)
	fake.Fail(fakegmail.EndpointHistory, 2, fakegmail.Fault{Status: 429, Reason: "rateLimitExceeded"})
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 3)
	checkUnique(t, h.events(t))

	// A permanent refusal fails the job without looping.
	fake.Fail(fakegmail.EndpointHistory, 1, fakegmail.Fault{Status: 403, Reason: "insufficientPermissions"})
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	if j.GetState() != ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "insufficientPermissions") {
		t.Errorf("job = %v %q, want FAILED naming the reason", j.GetState(), j.GetError())
	}

	// Revoked consent: invalid_grant.
	fake.Revoke("ada@gmail.example")
	tokenCalls := fake.Calls(fakegmail.EndpointToken)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	if j.GetState() != ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "invalid_grant") {
		t.Fatalf("job = %v %q, want FAILED for invalid_grant", j.GetState(), j.GetError())
	}
	if n := fake.Calls(fakegmail.EndpointToken) - tokenCalls; n > 2 {
		t.Errorf("%d token requests after the revocation, want no retry loop", n)
	}
	ada := h.as(t, "ada", "user")
	got, err := h.client.GetMailbox(ada, &ingestv1.GetMailboxRequest{Name: mb.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetMailbox().GetState() != ingestv1.MailboxState_MAILBOX_STATE_DISCONNECTED || !strings.Contains(got.GetMailbox().GetStateReason(), "invalid_grant") {
		t.Errorf("mailbox = %v, want DISCONNECTED saying invalid_grant", got.GetMailbox())
	}
	if _, ok := h.auth.Secret(mb.GetName() + "/credential"); ok {
		t.Errorf("the dead token is still in the vault")
	}
	if _, err := h.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: mb.GetName()}); codeOf(err) != codes.FailedPrecondition {
		t.Errorf("sync of a disconnected mailbox: %v, want FailedPrecondition", err)
	}
}

// TestGmailMetadataScope syncs under gmail.metadata: headers and snippet only.
func TestGmailMetadataScope(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(5)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		gmailConfig(fake)(c)
		c.GmailScope = "metadata"
	})
	mb := connectGmail(t, h, fake, "gmail")
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 5)
	for _, e := range h.events(t) {
		c := e.e.GetContent()
		if !strings.HasPrefix(c.GetSubject(), "Message ") || c.GetFromAddress() == "" || !strings.Contains(c.GetTextBody(), "of the fake mailbox") {
			t.Errorf("metadata event = %v", c)
		}
	}
}

// TestSyncJobs covers the job API: one running job per mailbox, listing,
// classified progress, deleting a mailbox and purging a user.
func TestSyncJobs(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(40)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	mb := connectGmail(t, h, fake, "gmail")
	ada := h.as(t, "ada", "user")

	fake.SetLatency(fakegmail.EndpointGet, 20*time.Millisecond)
	first, err := h.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: mb.GetName(), MaxMessages: 20})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: mb.GetName()})
	if reason := wantStatus(t, err, codes.Aborted, "mailbox "+mb.GetName()+" has a sync job running already: "+first.GetSyncJob().GetName()); reason != "SYNC_ALREADY_RUNNING" {
		t.Errorf("reason = %q", reason)
	}
	j := waitJob(t, h, first.GetSyncJob().GetName())
	fake.SetLatency(fakegmail.EndpointGet, 0)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 20)
	second := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, second, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 20)

	// Listing, newest first, in pages.
	page, err := h.client.ListSyncJobs(ada, &ingestv1.ListSyncJobsRequest{Parent: "users/me", PageSize: 1})
	if err != nil || len(page.GetSyncJobs()) != 1 || page.GetSyncJobs()[0].GetName() != second.GetName() || page.GetNextPageToken() == "" {
		t.Fatalf("first page = %v, %v", page, err)
	}
	page, err = h.client.ListSyncJobs(ada, &ingestv1.ListSyncJobsRequest{Parent: "users/me", PageSize: 5, PageToken: page.GetNextPageToken()})
	if err != nil || len(page.GetSyncJobs()) != 1 || page.GetSyncJobs()[0].GetName() != first.GetSyncJob().GetName() || page.GetNextPageToken() != "" {
		t.Errorf("second page = %v, %v", page, err)
	}
	if _, err := h.client.ListSyncJobs(h.as(t, "bob", "user"), &ingestv1.ListSyncJobsRequest{Parent: "users/ada"}); codeOf(err) != codes.PermissionDenied {
		t.Errorf("bob listing ada's jobs: %v", err)
	}

	// Classified progress: each of the job's messages counts once.
	evs := h.events(t)
	nc, js, err := eventbus.Connect(h.natsURL, "classifier-stand-in")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i, e := range append(evs[:3], evs[0]) {
		c := &eventsv1.MailClassified{User: "ada", Mailbox: e.e.GetMailbox(), Message: e.e.GetMessage(),
			ProviderMessageId: e.e.GetProviderMessageId(), SyncJob: e.e.GetSyncJob()}
		b, _ := proto.Marshal(c)
		if _, err := js.Publish(context.Background(), h.topo.ClassifiedSubject("ada"), b); err != nil {
			t.Fatalf("publish classified %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := h.client.GetSyncJob(ada, &ingestv1.GetSyncJobRequest{Name: first.GetSyncJob().GetName()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetSyncJob().GetProgress().GetClassified() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("classified = %d, want 3", got.GetSyncJob().GetProgress().GetClassified())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Purging is for the auth service only.
	_, err = h.client.PurgeUserData(ada, &ingestv1.PurgeUserDataRequest{User: "ada"})
	if codeOf(err) != codes.PermissionDenied {
		t.Errorf("PurgeUserData by a user: %v, want PermissionDenied", err)
	}
	if _, err := h.client.DeleteMailbox(ada, &ingestv1.DeleteMailboxRequest{Name: mb.GetName()}); err != nil {
		t.Fatalf("DeleteMailbox: %v", err)
	}
	if _, ok := h.auth.Secret(mb.GetName() + "/credential"); ok {
		t.Errorf("the credential outlived its mailbox")
	}
	if _, err := h.client.GetSyncJob(ada, &ingestv1.GetSyncJobRequest{Name: first.GetSyncJob().GetName()}); codeOf(err) != codes.NotFound {
		t.Errorf("job of a deleted mailbox: %v", err)
	}
	if _, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "archive",
		Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: "users/ada/mailboxes/archive"}); err != nil {
		t.Fatal(err)
	}
	purged, err := h.client.PurgeUserData(h.asService(t, "auth"), &ingestv1.PurgeUserDataRequest{User: "ada"})
	if err != nil {
		t.Fatalf("PurgeUserData: %v", err)
	}
	if d := purged.GetDeleted(); d["mailboxes"] != 1 || d["sync_jobs"] != 1 {
		t.Errorf("deleted = %v, want 1 mailbox and 1 sync job", d)
	}
	list, err := h.client.ListMailboxes(ada, &ingestv1.ListMailboxesRequest{Parent: "users/ada"})
	if err != nil || len(list.GetMailboxes()) != 0 {
		t.Errorf("mailboxes after purge = %v, %v", list.GetMailboxes(), err)
	}
}

// TestGmailConsentBoundToTheBrowser: eve starts connecting a Gmail mailbox
// and gets ada's browser to come back from Google with ada's consent (the
// login CSRF of OAuth): without the binding of the browser that opened
// eve's authorization URL, the consent does not complete, and ada's
// mailbox is not attached to eve's account.
func TestGmailConsentBoundToTheBrowser(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	fake.AddAccount("ada@gmail.example")
	h := newWorld(t).start(t, testenv.SQLiteURL(t), gmailConfig(fake))
	eve := h.as(t, "eve", "user")
	created, err := h.client.CreateMailbox(eve, &ingestv1.CreateMailboxRequest{Parent: "users/eve", MailboxId: "stolen",
		Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_GMAIL}})
	if err != nil {
		t.Fatal(err)
	}
	// eve's own browser opens the link (or ada's does: either way the
	// binding is that browser's, and ada's browser comes back without it).
	googleURL, _ := startConsent(t, h, created.GetMailbox().GetAuthorizationUrl())
	redirect, err := fake.Consents(googleURL) // ada consents, as ada@gmail.example
	if err != nil {
		t.Fatal(err)
	}
	q := mustURL(t, redirect).Query()
	for _, binding := range []string{"", "adas-browser-" + testenv.RandomID(8)} {
		_, err = h.client.CompleteAuthorization(context.Background(), &ingestv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code"), Binding: binding})
		if codeOf(err) != codes.PermissionDenied && codeOf(err) != codes.InvalidArgument {
			t.Errorf("CompleteAuthorization from another browser (binding %q): %v, want PermissionDenied (then the state is spent)", binding, err)
		}
	}
	got, err := h.client.GetMailbox(eve, &ingestv1.GetMailboxRequest{Name: "users/eve/mailboxes/stolen"})
	if err != nil || got.GetMailbox().GetState() == ingestv1.MailboxState_MAILBOX_STATE_ACTIVE || got.GetMailbox().GetAddress() == "ada@gmail.example" {
		t.Errorf("eve's mailbox after ada's browser came back = %v, %v; want it not connected", got.GetMailbox(), err)
	}
	if _, ok := h.auth.Secret("users/eve/mailboxes/stolen/credential"); ok {
		t.Error("ada's Gmail token is in eve's vault")
	}
}
