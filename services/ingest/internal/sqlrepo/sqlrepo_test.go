package sqlrepo_test

import (
	"context"
	"errors"
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
	// Concurrent imports into one mailbox must not lose an increment.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 10 {
		wg.Go(func() {
			for range 2 {
				errs <- repo.AddMessageCount(ctx, "counter", "inbox", 3)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AddMessageCount: %v", err)
		}
	}
	m, err := repo.GetMailbox(ctx, "counter", "inbox")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.MessageCount, int64(60); got != want {
		t.Errorf("MessageCount = %d, want %d", got, want)
	}
	if err := repo.AddMessageCount(ctx, "counter", "nope", 1); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("AddMessageCount unknown: %v, want ErrNotFound", err)
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

	job.State = mailbox.JobFailed
	job.Progress = mailbox.Progress{Listed: 5, Fetched: 4, Published: 3, Skipped: 1, Failed: 1}
	job.Error = "the provider refused the credential"
	job.UpdateTime = t0.Add(time.Minute)
	job.EndTime = t0.Add(time.Minute)
	if err := repo.UpdateSyncJob(ctx, job); err != nil {
		t.Fatalf("UpdateSyncJob: %v", err)
	}
	got, err = repo.GetSyncJob(ctx, "syncer", "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if got != job {
		t.Errorf("after UpdateSyncJob = %+v\nwant %+v", got, job)
	}

	if _, err := repo.GetSyncJob(ctx, "syncer", "nope"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("GetSyncJob unknown: %v, want ErrNotFound", err)
	}
	if _, err := repo.GetSyncJob(ctx, "someone", "job-1"); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("GetSyncJob of another user: %v, want ErrNotFound", err)
	}
	missing := job
	missing.ID = "job-2"
	if err := repo.UpdateSyncJob(ctx, missing); !errors.Is(err, mailbox.ErrNotFound) {
		t.Errorf("UpdateSyncJob unknown: %v, want ErrNotFound", err)
	}
}
