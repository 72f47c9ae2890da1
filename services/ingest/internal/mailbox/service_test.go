package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/sqlrepo"
)

// recorder is a Publisher that keeps what it is given, reports repeats of a
// de-duplication id as duplicates (as JetStream does), and fails from the
// failAt-th call on when failAt > 0.
type recorder struct {
	got    []mailbox.Received
	seen   map[string]bool
	calls  int
	failAt int
}

func (r *recorder) PublishReceived(_ context.Context, m mailbox.Received) (bool, error) {
	r.calls++
	if r.failAt > 0 && r.calls >= r.failAt {
		return false, errors.New("nats: timeout")
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	dup := r.seen[m.DedupID()]
	r.seen[m.DedupID()] = true
	r.got = append(r.got, m)
	return dup, nil
}

var now = time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)

func newService(t *testing.T, pub mailbox.Publisher) (*mailbox.Service, mailbox.Repository) {
	t.Helper()
	db, err := sqldb.Open(context.Background(), testenv.SQLiteURL(t), sqlrepo.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	repo := sqlrepo.New(db.SQL)
	return mailbox.NewService(repo, pub, mailbox.Config{MaxMessageBytes: 1 << 20, Now: func() time.Time { return now }}), repo
}

func mail(subject string) []byte {
	return []byte("From: Ada <ada@example.com>\r\nSubject: " + subject + "\r\nDate: Mon, 2 Jun 2025 10:00:00 +0000\r\n\r\nHello.\r\n")
}

func kindOf(err error) apierror.Kind { return apierror.KindOf(err) }

func TestImportMessages(t *testing.T) {
	ctx := context.Background()
	pub := &recorder{}
	svc, _ := newService(t, pub)
	if _, err := svc.CreateMailbox(ctx, "ada", mailbox.Mailbox{Kind: mailbox.KindImport}, "inbox", ""); err != nil {
		t.Fatal(err)
	}
	got, err := svc.ImportMessages(ctx, "ada", "inbox", [][]byte{mail("one"), mail("two"), mail("one")}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Subject != "one" || got[1].Subject != "two" {
		t.Fatalf("imported %+v", got)
	}
	// The same bytes give the same ids; the stream reports the repeat.
	if got[0].MessageID != got[2].MessageID || got[0].ProviderMessageID != got[2].ProviderMessageID || !got[2].Duplicate || got[0].Duplicate {
		t.Errorf("repeat not recognized: %+v", got)
	}
	if got[0].MessageID != mailbox.MessageID("users/ada/mailboxes/inbox", mailbox.ImportProviderMessageID(mail("one"))) {
		t.Errorf("message id %q is not derived from the mailbox name and provider id", got[0].MessageID)
	}
	for _, r := range pub.got {
		if r.Lane != mailbox.LaneBackfill || r.User != "ada" || r.MailboxID != "inbox" || !r.IngestTime.Equal(now) {
			t.Errorf("published %+v, want ada's inbox on the backfill lane at %v", r, now)
		}
		if !strings.HasPrefix(r.DedupID(), "ada/inbox/") {
			t.Errorf("DedupID = %q, want ada/inbox/<provider id>", r.DedupID())
		}
	}
	m, err := svc.GetMailbox(ctx, "ada", "inbox")
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageCount != 2 {
		t.Errorf("MessageCount = %d, want 2 (the repeat is not new)", m.MessageCount)
	}
}

func TestImportMessagesPublishFailure(t *testing.T) {
	ctx := context.Background()
	pub := &recorder{failAt: 3}
	svc, _ := newService(t, pub)
	if _, err := svc.CreateMailbox(ctx, "ada", mailbox.Mailbox{Kind: mailbox.KindImport}, "inbox", ""); err != nil {
		t.Fatal(err)
	}
	_, err := svc.ImportMessages(ctx, "ada", "inbox", [][]byte{mail("a"), mail("b"), mail("c"), mail("d")}, mailbox.LaneLive)
	if kindOf(err) != apierror.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if e, _ := apierror.As(err); !strings.Contains(e.Message, "messages[2]") || strings.Contains(e.Message, "nats") {
		t.Errorf("message %q should name the failed index and hide the cause", e.Message)
	}
	m, _ := svc.GetMailbox(ctx, "ada", "inbox")
	if m.MessageCount != 2 {
		t.Errorf("MessageCount = %d, want the 2 published before the failure", m.MessageCount)
	}
}

func TestImportMessagesRefusals(t *testing.T) {
	ctx := context.Background()
	pub := &recorder{}
	svc, repo := newService(t, pub)
	if _, err := svc.CreateMailbox(ctx, "ada", mailbox.Mailbox{Kind: mailbox.KindImport}, "inbox", ""); err != nil {
		t.Fatal(err)
	}
	// A GMAIL mailbox, straight into the repository (no Gmail here).
	if err := repo.CreateMailbox(ctx, mailbox.Mailbox{User: "ada", ID: "gmail", Kind: mailbox.KindGmail, State: mailbox.StateActive, CreateTime: now}); err != nil {
		t.Fatal(err)
	}
	big := append(mail("y"), make([]byte, 1<<20)...)
	tests := []struct {
		name    string
		mailbox string
		raws    [][]byte
		kind    apierror.Kind
		message string
		reason  string
	}{
		{"not an import mailbox", "gmail", [][]byte{mail("x")}, apierror.FailedPrecondition,
			"mailbox users/ada/mailboxes/gmail is a GMAIL mailbox: only IMPORT mailboxes accept imported messages", "FAILED_PRECONDITION"},
		{"too large", "inbox", [][]byte{mail("x"), big}, apierror.InvalidArgument,
			fmt.Sprintf("is %d bytes, over the limit of 1048576 bytes per message", len(big)), "MESSAGE_TOO_LARGE"},
		{"white space only", "inbox", [][]byte{[]byte("\r\n \r\n")}, apierror.InvalidArgument, "is empty", "INVALID_ARGUMENT"},
		{"too deep", "inbox", [][]byte{deep(30)}, apierror.InvalidArgument,
			"is beyond what ingest parses: multipart parts nest deeper than 20 levels", "MESSAGE_TOO_COMPLEX"},
		{"unknown mailbox", "nope", [][]byte{mail("x")}, apierror.NotFound, "mailbox users/ada/mailboxes/nope does not exist", "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.ImportMessages(ctx, "ada", tt.mailbox, tt.raws, "")
			e, ok := apierror.As(err)
			if !ok {
				t.Fatalf("err = %v, want an *apierror.Error", err)
			}
			if e.Kind != tt.kind || e.Message != tt.message || e.Reason != tt.reason {
				t.Errorf("err = kind %v %q reason %s, want kind %v %q reason %s", e.Kind, e.Message, e.Reason, tt.kind, tt.message, tt.reason)
			}
		})
	}
	t.Run("interactive lane", func(t *testing.T) {
		_, err := svc.ImportMessages(ctx, "ada", "inbox", [][]byte{mail("x")}, mailbox.LaneInteractive)
		e, ok := apierror.As(err)
		if !ok || e.Kind != apierror.InvalidArgument || e.Field != "lane" {
			t.Errorf("err = %v, want InvalidArgument naming the field lane", err)
		}
	})
	if len(pub.got) != 0 {
		t.Errorf("published %d messages of refused batches", len(pub.got))
	}
}

func deep(depth int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: deep\r\n")
	for i := range depth {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + string(rune('a'+i%26)) + strings.Repeat("x", i) + "\r\n\r\n--b" + string(rune('a'+i%26)) + strings.Repeat("x", i) + "\r\n")
	}
	b.WriteString("\r\nleaf\r\n")
	return []byte(b.String())
}

func TestListMailboxesPageToken(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, &recorder{})
	for _, user := range []string{"ada", "bob"} {
		for _, id := range []string{"a", "b", "c"} {
			if _, err := svc.CreateMailbox(ctx, user, mailbox.Mailbox{Kind: mailbox.KindImport}, id, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	page, next, err := svc.ListMailboxes(ctx, "ada", 2, "")
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("first page = %v, %q, %v", page, next, err)
	}
	if strings.Contains(next, "ada") || strings.Contains(next, "b") && len(next) < 8 {
		t.Errorf("token %q is not opaque", next)
	}
	page, last, err := svc.ListMailboxes(ctx, "ada", 2, next)
	if err != nil || len(page) != 1 || page[0].ID != "c" || last != "" {
		t.Errorf("second page = %v, %q, %v; want [c] and no next token", page, last, err)
	}
	// A token is bound to the listing it came from.
	if _, _, err := svc.ListMailboxes(ctx, "bob", 2, next); kindOf(err) != apierror.InvalidArgument {
		t.Errorf("bob using ada's token: %v, want InvalidArgument", err)
	}
}

func TestSyncMailbox(t *testing.T) {
	ctx := context.Background()
	svc, repo := newService(t, &recorder{})
	if _, err := svc.CreateMailbox(ctx, "ada", mailbox.Mailbox{Kind: mailbox.KindImport}, "inbox", ""); err != nil {
		t.Fatal(err)
	}
	job, err := svc.SyncMailbox(ctx, "ada", "inbox", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := mailbox.SyncJob{User: "ada", ID: job.ID, MailboxID: "inbox", Mode: mailbox.SyncFull, MaxMessages: 100,
		State: mailbox.JobSucceeded, CreateTime: now, UpdateTime: now, EndTime: now}
	if job != want {
		t.Errorf("job = %+v\nwant %+v", job, want)
	}
	stored, err := svc.GetSyncJob(ctx, "ada", job.ID)
	if err != nil || stored != want {
		t.Errorf("stored job = %+v, %v", stored, err)
	}
	if err := repo.CreateMailbox(ctx, mailbox.Mailbox{User: "ada", ID: "imap", Kind: mailbox.KindIMAP, State: mailbox.StateActive, CreateTime: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncMailbox(ctx, "ada", "imap", "", 0); kindOf(err) != apierror.FailedPrecondition {
		t.Errorf("sync of an IMAP mailbox without IMAP configured: %v, want FailedPrecondition", err)
	}
	for _, n := range []int{-1, 10001} {
		if _, err := svc.SyncMailbox(ctx, "ada", "inbox", "", n); kindOf(err) != apierror.InvalidArgument {
			t.Errorf("max_messages %d: %v, want InvalidArgument", n, err)
		}
	}
}

// Consents whose authorization URL expired are deleted by PurgeAuthStates;
// live ones stay.
func TestPurgeAuthStates(t *testing.T) {
	ctx := context.Background()
	svc, repo := newService(t, &recorder{})
	for _, id := range []string{"g1", "g2"} {
		if err := repo.CreateMailbox(ctx, mailbox.Mailbox{User: "ada", ID: id, Kind: mailbox.KindGmail, State: mailbox.StateActive, CreateTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []mailbox.AuthState{
		{Hash: "expired", User: "ada", MailboxID: "g1", Verifier: "v1", ExpireTime: now.Add(-time.Second)},
		{Hash: "live", User: "ada", MailboxID: "g2", Verifier: "v2", ExpireTime: now.Add(time.Minute)},
	} {
		if err := repo.CreateAuthState(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	n, err := svc.PurgeAuthStates(ctx)
	if err != nil || n != 1 {
		t.Fatalf("PurgeAuthStates = %d, %v; want 1", n, err)
	}
	if _, err := repo.TakeAuthState(ctx, "expired"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("the expired state: %v, want ErrNotFound", err)
	}
	if a, err := repo.TakeAuthState(ctx, "live"); err != nil || a.MailboxID != "g2" {
		t.Errorf("the live state: %v, %v; want it kept", a, err)
	}
}

// TestWatchSyncJobShowsBatched: a watcher gets an update whenever the
// job's mail enters a batch, leaves one, or is classified out of one.
func TestWatchSyncJobShowsBatched(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testenv.SQLiteURL(t), sqlrepo.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	repo := sqlrepo.New(db.SQL)
	svc := mailbox.NewService(repo, &recorder{}, mailbox.Config{MaxMessageBytes: 1 << 20, WatchInterval: 10 * time.Millisecond})
	if _, err := svc.CreateMailbox(ctx, "ada", mailbox.Mailbox{Kind: mailbox.KindImport}, "inbox", ""); err != nil {
		t.Fatal(err)
	}
	job := mailbox.SyncJob{User: "ada", ID: "job1", MailboxID: "inbox", Mode: mailbox.SyncFull, MaxMessages: 10,
		State: mailbox.JobRunning, Owner: "me", CreateTime: now, UpdateTime: now}
	if err := repo.CreateSyncJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	var recs []mailbox.Record
	for _, id := range []string{"a", "b", "c"} {
		recs = append(recs, mailbox.Record{User: "ada", MailboxID: "inbox", ProviderMessageID: "p" + id, MessageID: "m" + id,
			SyncJobID: "job1", Status: mailbox.RecordPublished, CreateTime: now})
	}
	if _, err := repo.RecordMessages(ctx, recs); err != nil {
		t.Fatal(err)
	}
	updates := make(chan mailbox.Progress, 100)
	done := make(chan error, 1)
	go func() {
		done <- svc.WatchSyncJob(ctx, "ada", "job1", func(j mailbox.SyncJob) error { updates <- j.Progress; return nil })
	}()
	next := func(step string, batched, classified int64) {
		t.Helper()
		select {
		case p := <-updates:
			if p.Batched != batched || p.Classified != classified {
				t.Errorf("%s: update with batched %d, classified %d; want %d, %d", step, p.Batched, p.Classified, batched, classified)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no update", step)
		}
	}
	next("the job as it is", 0, 0)
	at := time.Now()
	if err := svc.CountBatched(ctx, "ada", []string{"ma", "mb", "mc"}, true, at); err != nil {
		t.Fatal(err)
	}
	next("three in a batch", 3, 0)
	if err := svc.CountClassified(ctx, "ada", "inbox", "pa", "job1"); err != nil {
		t.Fatal(err)
	}
	next("one answered", 2, 1)
	if err := svc.CountBatched(ctx, "ada", []string{"mb", "mc"}, false, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	next("two sent to the realtime path", 0, 1)
	job.State, job.EndTime = mailbox.JobSucceeded, now
	if err := repo.UpdateSyncJob(ctx, job, "me"); err != nil {
		t.Fatal(err)
	}
	next("the end", 0, 1)
	if err := <-done; err != nil {
		t.Errorf("WatchSyncJob = %v", err)
	}
}
