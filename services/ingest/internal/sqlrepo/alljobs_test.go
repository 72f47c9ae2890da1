package sqlrepo_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/sqlrepo"
)

// TestListSyncJobsOfEveryUser: with mailbox.AllUsers, ListSyncJobs lists
// every user's jobs newest first, ties of create time broken by user then
// id, in keyset pages that neither repeat nor skip a job.
func TestListSyncJobsOfEveryUser(t *testing.T) {
	for backend, dbURL := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, dbURL(t), sqlrepo.Migrations())
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			repo := sqlrepo.New(db.SQL)
			// Jobs of three users; ada's and bob's b1 share a create time.
			jobs := []struct {
				user, id string
				at       time.Duration
			}{
				{"ada", "a1", 0}, {"bob", "b1", 0}, {"ada", "a2", time.Second},
				{"cy", "c1", 2 * time.Second}, {"bob", "b2", 3 * time.Second},
			}
			for _, j := range jobs {
				if err := repo.CreateMailbox(ctx, newMailbox(j.user, "mb-"+j.id)); err != nil {
					t.Fatal(err)
				}
				if err := repo.CreateSyncJob(ctx, mailbox.SyncJob{
					User: j.user, ID: j.id, MailboxID: "mb-" + j.id, Mode: mailbox.SyncFull, MaxMessages: 10,
					State: mailbox.JobSucceeded, CreateTime: t0.Add(j.at), UpdateTime: t0.Add(j.at),
				}); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{"bob/b2", "cy/c1", "ada/a2", "bob/b1", "ada/a1"}

			all, err := repo.ListSyncJobs(ctx, mailbox.AllUsers, nil, 10)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(all); !slices.Equal(got, want) {
				t.Errorf("every user's jobs = %v, want %v", got, want)
			}
			var paged []string
			var after *mailbox.JobPage
			for range len(want) + 1 {
				page, err := repo.ListSyncJobs(ctx, mailbox.AllUsers, after, 2)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				paged = append(paged, names(page)...)
				last := page[len(page)-1]
				after = &mailbox.JobPage{CreateTime: last.CreateTime, User: last.User, ID: last.ID}
			}
			if !slices.Equal(paged, want) {
				t.Errorf("paged = %v, want %v", paged, want)
			}
			// One user's listing is unchanged: only theirs.
			bobs, err := repo.ListSyncJobs(ctx, "bob", nil, 10)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(bobs); !slices.Equal(got, []string{"bob/b2", "bob/b1"}) {
				t.Errorf("bob's jobs = %v", got)
			}
		})
	}
}

func names(jobs []mailbox.SyncJob) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.User+"/"+j.ID)
	}
	return out
}
