package sqlrepo_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/sqlrepo"
)

// TestRepository is the contract every backend of mailbox.Repository keeps.
func TestRepository(t *testing.T) {
	for backend, dbURL := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			url := dbURL(t)
			ctx := context.Background()
			db, err := sqldb.Open(ctx, url, sqlrepo.Migrations())
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			// Opening again finds the migrations applied.
			db2, err := sqldb.Open(ctx, url, sqlrepo.Migrations())
			if err != nil {
				t.Fatalf("open again: %v", err)
			}
			db2.Close()

			repo := sqlrepo.New(db.SQL)
			t.Run("mailboxes", func(t *testing.T) { testMailboxes(t, repo) })
			t.Run("list", func(t *testing.T) { testList(t, repo) })
			t.Run("counts", func(t *testing.T) { testCounts(t, repo) })
			t.Run("sync jobs", func(t *testing.T) { testSyncJobs(t, repo) })
			t.Run("batched", func(t *testing.T) { testBatched(t, repo) })
			t.Run("due", func(t *testing.T) { testDue(t, repo) })
			t.Run("lifecycle", func(t *testing.T) { testMailboxLifecycle(t, repo) })
		})
	}
}

var t0 = time.Date(2025, 6, 1, 12, 30, 45, 123456000, time.UTC)

func newMailbox(user, id string) mailbox.Mailbox {
	return mailbox.Mailbox{
		User: user, ID: id, Kind: mailbox.KindImport, Address: "ada@example.com",
		DisplayName: "Ada's archive", State: mailbox.StateActive, CreateTime: t0,
	}
}

func testMailboxes(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	want := newMailbox("ada", "archive")
	want.StateReason = "none"
	want.Cursor = "history:42"
	want.MessageCount = 7
	if err := repo.CreateMailbox(ctx, want); err != nil {
		t.Fatalf("CreateMailbox: %v", err)
	}
	got, err := repo.GetMailbox(ctx, "ada", "archive")
	if err != nil {
		t.Fatalf("GetMailbox: %v", err)
	}
	if got != want {
		t.Errorf("GetMailbox = %+v\nwant %+v", got, want)
	}
	if !got.LastSyncTime.IsZero() {
		t.Errorf("LastSyncTime = %v, want zero before a sync", got.LastSyncTime)
	}

	if err := repo.CreateMailbox(ctx, newMailbox("ada", "archive")); !errors.Is(err, mailbox.ErrAlreadyExists) {
		t.Errorf("CreateMailbox again: %v, want ErrAlreadyExists", err)
	}
	// The same id under another user is another mailbox.
	if err := repo.CreateMailbox(ctx, newMailbox("bob", "archive")); err != nil {
		t.Errorf("CreateMailbox for bob: %v", err)
	}
	if _, err := repo.GetMailbox(ctx, "ada", "nope"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("GetMailbox unknown: %v, want ErrNotFound", err)
	}
	if _, err := repo.GetMailbox(ctx, "carol", "archive"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("GetMailbox of another user: %v, want ErrNotFound", err)
	}

	synced := t0.Add(time.Hour)
	if err := repo.RecordSync(ctx, "ada", "archive", "history:99", synced); err != nil {
		t.Fatalf("RecordSync: %v", err)
	}
	got, _ = repo.GetMailbox(ctx, "ada", "archive")
	if got.Cursor != "history:99" || !got.LastSyncTime.Equal(synced) {
		t.Errorf("after RecordSync: cursor %q, last sync %v; want history:99, %v", got.Cursor, got.LastSyncTime, synced)
	}
	if err := repo.RecordSync(ctx, "ada", "nope", "", synced); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("RecordSync unknown: %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	for _, id := range []string{"l-c", "l-a", "l-b", "l-d"} {
		if err := repo.CreateMailbox(ctx, newMailbox("lister", id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.CreateMailbox(ctx, newMailbox("other", "l-0")); err != nil {
		t.Fatal(err)
	}
	ids := func(ms []mailbox.Mailbox) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	tests := []struct {
		after string
		limit int
		want  []string
	}{
		{"", 10, []string{"l-a", "l-b", "l-c", "l-d"}},
		{"", 2, []string{"l-a", "l-b"}},
		{"l-b", 2, []string{"l-c", "l-d"}},
		{"l-d", 2, nil},
	}
	for _, tt := range tests {
		ms, err := repo.ListMailboxes(ctx, "lister", tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ms); !equal(got, tt.want) {
			t.Errorf("ListMailboxes(after %q, limit %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
		}
	}
}

func equal(a, b []string) bool {
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

func testCounts(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	if err := repo.CreateMailbox(ctx, newMailbox("counter", "inbox")); err != nil {
		t.Fatal(err)
	}
	rec := func(id string, st mailbox.RecordStatus) mailbox.Record {
		return mailbox.Record{User: "counter", MailboxID: "inbox", ProviderMessageID: id, MessageID: "m-" + id,
			SyncJobID: "job", Status: st, CreateTime: t0}
	}
	// Concurrent records of one mailbox lose no increment, and a repeat
	// of a provider id is no new record.
	var wg sync.WaitGroup
	var mu sync.Mutex
	added := 0
	for i := range 10 {
		wg.Go(func() {
			for j := range 6 {
				ok, err := recordOne(ctx, repo, rec(fmt.Sprintf("p%d", (i*6+j)%30), mailbox.RecordPublished))
				if err != nil {
					t.Errorf("RecordMessage: %v", err)
				}
				if ok {
					mu.Lock()
					added++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if added != 30 {
		t.Errorf("%d records reported new, want 30", added)
	}
	if ok, err := recordOne(ctx, repo, rec("broken", mailbox.RecordFailed)); err != nil || !ok {
		t.Errorf("RecordMessage failed one = %v, %v", ok, err)
	}
	m, err := repo.GetMailbox(ctx, "counter", "inbox")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.MessageCount, int64(30); got != want {
		t.Errorf("MessageCount = %d, want %d (failed records are not counted)", got, want)
	}
	known, err := repo.KnownMessages(ctx, "counter", "inbox", []string{"p1", "p29", "broken", "p30", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"p1": true, "p29": true, "broken": true}; !maps.Equal(known, want) {
		t.Errorf("KnownMessages = %v, want %v", known, want)
	}
	if known, _ := repo.KnownMessages(ctx, "someone", "inbox", []string{"p1"}); len(known) != 0 {
		t.Errorf("another user's mailbox knows %v", known)
	}
	if _, err := recordOne(ctx, repo, mailbox.Record{User: "counter", MailboxID: "nope", ProviderMessageID: "x", Status: mailbox.RecordPublished, CreateTime: t0}); err == nil {
		t.Errorf("RecordMessage into a missing mailbox succeeded")
	}
}

func testSyncJobs(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	if err := repo.CreateMailbox(ctx, newMailbox("syncer", "inbox")); err != nil {
		t.Fatal(err)
	}
	job := mailbox.SyncJob{
		User: "syncer", ID: "job-1", MailboxID: "inbox", Mode: mailbox.SyncFull, MaxMessages: 100,
		State: mailbox.JobPending, CreateTime: t0, UpdateTime: t0,
	}
	if err := repo.CreateSyncJob(ctx, job); err != nil {
		t.Fatalf("CreateSyncJob: %v", err)
	}
	got, err := repo.GetSyncJob(ctx, "syncer", "job-1")
	if err != nil {
		t.Fatalf("GetSyncJob: %v", err)
	}
	if got != job {
		t.Errorf("GetSyncJob = %+v\nwant %+v", got, job)
	}
	if err := repo.CreateSyncJob(ctx, job); !errors.Is(err, mailbox.ErrAlreadyExists) {
		t.Errorf("CreateSyncJob again: %v, want ErrAlreadyExists", err)
	}
	// One active job per mailbox.
	second := job
	second.ID = "job-2"
	second.CreateTime = t0.Add(time.Second)
	if err := repo.CreateSyncJob(ctx, second); !errors.Is(err, mailbox.ErrJobActive) {
		t.Errorf("second active job: %v, want ErrJobActive", err)
	}
	if active, err := repo.ActiveSyncJob(ctx, "syncer", "inbox"); err != nil || active.ID != "job-1" {
		t.Errorf("ActiveSyncJob = %v, %v", active.ID, err)
	}

	// Claiming: one claimer wins; the lease protects the job until it lapses.
	claimed, ok, err := repo.ClaimSyncJob(ctx, "proc-a", t0, t0.Add(30*time.Second))
	if err != nil || !ok || claimed.ID != "job-1" || claimed.State != mailbox.JobRunning || claimed.Owner != "proc-a" {
		t.Fatalf("ClaimSyncJob = %+v, %v, %v", claimed, ok, err)
	}
	if _, ok, _ := repo.ClaimSyncJob(ctx, "proc-b", t0.Add(10*time.Second), t0.Add(40*time.Second)); ok {
		t.Errorf("a job under a live lease was claimed again")
	}
	stolen, ok, err := repo.ClaimSyncJob(ctx, "proc-b", t0.Add(31*time.Second), t0.Add(61*time.Second))
	if err != nil || !ok || stolen.Owner != "proc-b" {
		t.Fatalf("claim after the lease lapsed = %+v, %v, %v", stolen, ok, err)
	}
	// The old owner lost it.
	claimed.Progress.Fetched = 9
	if err := repo.UpdateSyncJob(ctx, claimed, "proc-a"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("UpdateSyncJob by the old owner: %v, want ErrNotFound", err)
	}

	job = stolen
	job.State = mailbox.JobFailed
	job.Progress = mailbox.Progress{Listed: 5, Fetched: 4, Published: 3, Skipped: 1, Failed: 1}
	job.Error = "the provider refused the credential"
	job.UpdateTime = t0.Add(time.Minute)
	job.EndTime = t0.Add(time.Minute)
	if err := repo.UpdateSyncJob(ctx, job, "proc-b"); err != nil {
		t.Fatalf("UpdateSyncJob: %v", err)
	}
	got, err = repo.GetSyncJob(ctx, "syncer", "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if got != job {
		t.Errorf("after UpdateSyncJob = %+v\nwant %+v", got, job)
	}
	if _, ok, _ := repo.ClaimSyncJob(ctx, "proc-c", t0.Add(time.Hour), t0.Add(2*time.Hour)); ok {
		t.Errorf("an ended job was claimed")
	}
	// The mailbox is free again.
	if err := repo.CreateSyncJob(ctx, second); err != nil {
		t.Errorf("job after the first ended: %v", err)
	}

	if _, err := repo.GetSyncJob(ctx, "syncer", "nope"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("GetSyncJob unknown: %v, want ErrNotFound", err)
	}
	if _, err := repo.GetSyncJob(ctx, "someone", "job-1"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("GetSyncJob of another user: %v, want ErrNotFound", err)
	}
	missing := job
	missing.ID = "job-9"
	if err := repo.UpdateSyncJob(ctx, missing, "proc-b"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("UpdateSyncJob unknown: %v, want ErrNotFound", err)
	}

	// Listing: newest first, keyset pages.
	page, err := repo.ListSyncJobs(ctx, "syncer", nil, 1)
	if err != nil || len(page) != 1 || page[0].ID != "job-2" {
		t.Fatalf("ListSyncJobs first page = %v, %v", page, err)
	}
	page, err = repo.ListSyncJobs(ctx, "syncer", &mailbox.JobPage{CreateTime: page[0].CreateTime, ID: page[0].ID}, 5)
	if err != nil || len(page) != 1 || page[0].ID != "job-1" {
		t.Errorf("ListSyncJobs second page = %v, %v", page, err)
	}

	// Classified messages count once in their job.
	rec := mailbox.Record{User: "syncer", MailboxID: "inbox", ProviderMessageID: "p1", MessageID: "m1", SyncJobID: "job-1", Status: mailbox.RecordPublished, CreateTime: t0}
	if _, err := recordOne(ctx, repo, rec); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		first, err := repo.MarkClassified(ctx, "syncer", "inbox", "p1", "job-1")
		if err != nil || first != want {
			t.Errorf("MarkClassified #%d = %v, %v; want %v", i+1, first, err, want)
		}
	}
	// A message published but not recorded yet: the caller must try again.
	if first, err := repo.MarkClassified(ctx, "syncer", "inbox", "unknown", "job-1"); !errors.Is(err, mailbox.ErrNotRecorded) || first {
		t.Errorf("MarkClassified of an unrecorded message = %v, %v; want ErrNotRecorded", first, err)
	}
	if got, _ := repo.GetSyncJob(ctx, "syncer", "job-1"); got.Progress.Classified != 1 {
		t.Errorf("classified = %d, want 1", got.Progress.Classified)
	}
}

// testBatched: a job's batched count follows its messages in and out of
// OpenAI batches, whatever the order and repetition of the events: each
// message's state moves only forward in event time, and classified mail
// leaves its batch with its answer.
func testBatched(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	if err := repo.CreateMailbox(ctx, newMailbox("batcher", "inbox")); err != nil {
		t.Fatal(err)
	}
	if err := repo.CreateMailbox(ctx, newMailbox("eve", "inbox")); err != nil {
		t.Fatal(err)
	}
	job := mailbox.SyncJob{User: "batcher", ID: "job-b", MailboxID: "inbox", Mode: mailbox.SyncFull, MaxMessages: 100,
		State: mailbox.JobRunning, CreateTime: t0, UpdateTime: t0}
	if err := repo.CreateSyncJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	var recs []mailbox.Record
	for i := 1; i <= 5; i++ {
		recs = append(recs, mailbox.Record{User: "batcher", MailboxID: "inbox", ProviderMessageID: fmt.Sprintf("p%d", i),
			MessageID: fmt.Sprintf("m%d", i), SyncJobID: "job-b", Status: mailbox.RecordPublished, CreateTime: t0})
	}
	// Eve has a message with the same id: hers is never touched.
	recs2 := []mailbox.Record{{User: "eve", MailboxID: "inbox", ProviderMessageID: "p1", MessageID: "m1", SyncJobID: "job-e", Status: mailbox.RecordPublished, CreateTime: t0}}
	if _, err := repo.RecordMessages(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.RecordMessages(ctx, recs2); err != nil {
		t.Fatal(err)
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	check := func(step string, wantBatched, wantClassified int64) {
		t.Helper()
		got, err := repo.GetSyncJob(ctx, "batcher", "job-b")
		if err != nil {
			t.Fatal(err)
		}
		if got.Progress.Batched != wantBatched || got.Progress.Classified != wantClassified {
			t.Errorf("%s: batched %d, classified %d; want %d, %d", step, got.Progress.Batched, got.Progress.Classified, wantBatched, wantClassified)
		}
	}
	mark := func(ids []string, entered bool, s int) {
		t.Helper()
		if err := repo.MarkBatched(ctx, "batcher", ids, entered, at(s)); err != nil {
			t.Fatalf("MarkBatched(%v, %v, %d): %v", ids, entered, s, err)
		}
	}
	mark([]string{"m1", "m2", "m3", "m3"}, true, 10)
	check("three entered", 3, 0)
	mark([]string{"m1", "m2", "m3"}, true, 10)
	check("the entry redelivered", 3, 0)
	mark([]string{"m1"}, false, 20)
	check("m1 left for the realtime path", 2, 0)
	mark([]string{"m1"}, false, 20)
	mark([]string{"m1"}, true, 10)
	check("the leave redelivered, the entry late", 2, 0)
	if _, err := repo.MarkClassified(ctx, "batcher", "inbox", "p2", "job-b"); err != nil {
		t.Fatal(err)
	}
	check("m2 answered by its batch", 1, 1)
	mark([]string{"m2"}, true, 30)
	check("a classified message enters no batch", 1, 1)
	if _, err := repo.MarkClassified(ctx, "batcher", "inbox", "p1", "job-b"); err != nil {
		t.Fatal(err)
	}
	check("m1 classified in realtime", 1, 2)
	// A leave overtaking its entry: the entry, older, changes nothing.
	mark([]string{"m4"}, false, 40)
	mark([]string{"m4"}, true, 35)
	check("m4's leave before its entry", 1, 2)
	// A later batch (after a restart) takes m5 after it left an earlier one.
	mark([]string{"m5"}, true, 50)
	mark([]string{"m5"}, false, 51)
	mark([]string{"m5"}, true, 52)
	check("m5 in a second batch", 2, 2)
	// An unrecorded message: the others are marked, the event comes back.
	if err := repo.MarkBatched(ctx, "batcher", []string{"m5", "nope"}, false, at(60)); !errors.Is(err, mailbox.ErrNotRecorded) {
		t.Errorf("MarkBatched with an unrecorded message = %v, want ErrNotRecorded", err)
	}
	check("m5 left, nope unknown", 1, 2)
	// Another user's event names only that user's messages.
	if err := repo.MarkBatched(ctx, "eve", []string{"m3"}, false, at(70)); !errors.Is(err, mailbox.ErrNotRecorded) {
		t.Errorf("eve's event about m3 = %v, want ErrNotRecorded (she has no m3)", err)
	}
	if err := repo.MarkBatched(ctx, "eve", []string{"m1"}, true, at(70)); err != nil {
		t.Fatal(err)
	}
	check("eve's events", 1, 2)
	mark([]string{"m3"}, false, 80)
	check("all out", 0, 2)
}

func testDue(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	mk := func(id string, kind mailbox.Kind, state mailbox.State, last time.Time) {
		m := newMailbox("due", id)
		m.Kind, m.State, m.LastSyncTime = kind, state, last
		if err := repo.CreateMailbox(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	mk("never", mailbox.KindGmail, mailbox.StateActive, time.Time{})
	mk("old", mailbox.KindIMAP, mailbox.StateActive, t0.Add(-time.Hour))
	mk("fresh", mailbox.KindGmail, mailbox.StateActive, t0)
	mk("gone", mailbox.KindGmail, mailbox.StateDisconnected, time.Time{})
	mk("import", mailbox.KindImport, mailbox.StateActive, time.Time{})
	mk("busy", mailbox.KindGmail, mailbox.StateActive, time.Time{})
	if err := repo.CreateSyncJob(ctx, mailbox.SyncJob{User: "due", ID: "j", MailboxID: "busy", Mode: mailbox.SyncFull,
		MaxMessages: 1, State: mailbox.JobRunning, CreateTime: t0, UpdateTime: t0}); err != nil {
		t.Fatal(err)
	}
	due, err := repo.ListDueMailboxes(ctx, []mailbox.Kind{mailbox.KindGmail, mailbox.KindIMAP}, t0.Add(-time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range due {
		if m.User == "due" {
			ids = append(ids, m.ID)
		}
	}
	if want := []string{"never", "old"}; !slices.Equal(ids, want) {
		t.Errorf("due = %v, want %v", ids, want)
	}
}

func testMailboxLifecycle(t *testing.T, repo mailbox.Repository) {
	ctx := context.Background()
	m := newMailbox("life", "imap")
	m.Kind = mailbox.KindIMAP
	m.IMAP = &mailbox.IMAPSettings{Host: "imap.example.com", Port: 993, Username: "ada", Security: mailbox.IMAPTLS, Folders: []string{"INBOX", "Archive"}}
	if err := repo.CreateMailbox(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := repo.GetMailbox(ctx, "life", "imap")
	if err != nil || got.IMAP == nil || !reflect.DeepEqual(*got.IMAP, *m.IMAP) {
		t.Fatalf("IMAP settings = %+v, %v", got.IMAP, err)
	}
	if err := repo.SetMailboxState(ctx, "life", "imap", mailbox.StateDisconnected, "revoked", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := repo.GetMailbox(ctx, "life", "imap"); got.State != mailbox.StateDisconnected || got.StateReason != "revoked" || got.Address != m.Address {
		t.Errorf("after SetMailboxState = %+v", got)
	}
	if err := repo.SetMailboxState(ctx, "life", "imap", mailbox.StateActive, "", "new@example.com"); err != nil {
		t.Fatal(err)
	}
	if got, _ := repo.GetMailbox(ctx, "life", "imap"); got.State != mailbox.StateActive || got.Address != "new@example.com" {
		t.Errorf("after activation = %+v", got)
	}

	// Consent states are taken once.
	a := mailbox.AuthState{Hash: "h1", User: "life", MailboxID: "imap", Verifier: "v", ExpireTime: t0}
	if err := repo.CreateAuthState(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.TakeAuthState(ctx, "h1"); err != nil || got != a {
		t.Errorf("TakeAuthState = %+v, %v", got, err)
	}
	if _, err := repo.TakeAuthState(ctx, "h1"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("second TakeAuthState: %v, want ErrNotFound", err)
	}

	// Deleting a mailbox takes its jobs, records and consents along.
	if err := repo.CreateAuthState(ctx, mailbox.AuthState{Hash: "h2", User: "life", MailboxID: "imap", ExpireTime: t0}); err != nil {
		t.Fatal(err)
	}
	if err := repo.CreateSyncJob(ctx, mailbox.SyncJob{User: "life", ID: "j1", MailboxID: "imap", Mode: mailbox.SyncFull,
		MaxMessages: 1, State: mailbox.JobSucceeded, CreateTime: t0, UpdateTime: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := recordOne(ctx, repo, mailbox.Record{User: "life", MailboxID: "imap", ProviderMessageID: "p", Status: mailbox.RecordPublished, CreateTime: t0}); err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteMailbox(ctx, "life", "imap"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.GetSyncJob(ctx, "life", "j1"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("job of a deleted mailbox: %v", err)
	}
	if _, err := repo.TakeAuthState(ctx, "h2"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("consent of a deleted mailbox: %v", err)
	}
	if err := repo.DeleteMailbox(ctx, "life", "imap"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}

	// Purging a user.
	for _, id := range []string{"a", "b"} {
		if err := repo.CreateMailbox(ctx, newMailbox("purged", id)); err != nil {
			t.Fatal(err)
		}
		if err := repo.CreateSyncJob(ctx, mailbox.SyncJob{User: "purged", ID: "j-" + id, MailboxID: id, Mode: mailbox.SyncFull,
			MaxMessages: 1, State: mailbox.JobSucceeded, CreateTime: t0, UpdateTime: t0}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := repo.PurgeUser(ctx, "purged")
	if err != nil || p != (mailbox.Purged{Mailboxes: 2, SyncJobs: 2}) {
		t.Errorf("PurgeUser = %+v, %v", p, err)
	}
	if ms, _ := repo.ListMailboxes(ctx, "purged", "", 10); len(ms) != 0 {
		t.Errorf("mailboxes left after purge: %v", ms)
	}
}

func recordOne(ctx context.Context, repo mailbox.Repository, rec mailbox.Record) (bool, error) {
	n, err := repo.RecordMessages(ctx, []mailbox.Record{rec})
	return n == 1, err
}

func TestRecordMessagesBatch(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testenv.SQLiteURL(t), sqlrepo.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	repo := sqlrepo.New(db.SQL)
	if err := repo.CreateMailbox(ctx, newMailbox("ada", "inbox")); err != nil {
		t.Fatal(err)
	}
	var recs []mailbox.Record
	for i := range 450 {
		st := mailbox.RecordPublished
		if i%10 == 0 {
			st = mailbox.RecordFailed
		}
		recs = append(recs, mailbox.Record{User: "ada", MailboxID: "inbox", ProviderMessageID: fmt.Sprint(i % 400), Status: st, CreateTime: t0})
	}
	n, err := repo.RecordMessages(ctx, recs)
	if err != nil || n != 400 {
		t.Fatalf("RecordMessages = %d, %v; want 400 new", n, err)
	}
	m, _ := repo.GetMailbox(ctx, "ada", "inbox")
	if m.MessageCount != 360 {
		t.Errorf("MessageCount = %d, want the 360 published", m.MessageCount)
	}
	if n, err := repo.RecordMessages(ctx, recs[:10]); err != nil || n != 0 {
		t.Errorf("again = %d, %v; want 0 new", n, err)
	}
}
