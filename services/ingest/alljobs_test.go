package ingest_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/testenv"
)

// TestListSyncJobsOfEveryUser: with the parent users/-, an admin lists
// every user's sync jobs, newest first, each named under its user, in
// pages; a user who is not an admin is refused, and a page token of one
// listing does not work for another.
func TestListSyncJobsOfEveryUser(t *testing.T) {
	h := start(t, testenv.SQLiteURL(t))
	admin := h.as(t, "root", "admin")
	var want []string
	for _, user := range []string{"ada", "bob", "ada"} {
		ctx := h.as(t, user, "user")
		mb, err := h.client.CreateMailbox(ctx, &ingestv1.CreateMailboxRequest{Parent: "users/me",
			Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}})
		if err != nil {
			t.Fatal(err)
		}
		job, err := h.client.SyncMailbox(ctx, &ingestv1.SyncMailboxRequest{Name: mb.GetMailbox().GetName()})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(job.GetSyncJob().GetName(), "users/"+user+"/syncJobs/") {
			t.Fatalf("job name = %q", job.GetSyncJob().GetName())
		}
		want = append([]string{job.GetSyncJob().GetName()}, want...) // newest first
	}

	all, err := h.client.ListSyncJobs(admin, &ingestv1.ListSyncJobsRequest{Parent: "users/-"})
	if err != nil {
		t.Fatal(err)
	}
	if got := jobNames(all.GetSyncJobs()); !slices.Equal(got, want) {
		t.Errorf("users/- lists %v, want %v", got, want)
	}
	var paged []string
	token := ""
	for range len(want) + 1 {
		page, err := h.client.ListSyncJobs(admin, &ingestv1.ListSyncJobsRequest{Parent: "users/-", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, jobNames(page.GetSyncJobs())...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged = %v, want %v", paged, want)
	}
	first, err := h.client.ListSyncJobs(admin, &ingestv1.ListSyncJobsRequest{Parent: "users/-", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client.ListSyncJobs(admin, &ingestv1.ListSyncJobsRequest{Parent: "users/ada", PageToken: first.GetNextPageToken()})
	wantStatus(t, err, codes.InvalidArgument, "page_token: belongs to another listing")

	// A user lists only their own, and is refused everyone's.
	_, err = h.client.ListSyncJobs(h.as(t, "ada", "user"), &ingestv1.ListSyncJobsRequest{Parent: "users/-"})
	wantStatus(t, err, codes.PermissionDenied, "only an admin may do this")
	bobs, err := h.client.ListSyncJobs(h.as(t, "bob", "user"), &ingestv1.ListSyncJobsRequest{Parent: "users/me"})
	if err != nil || !slices.Equal(jobNames(bobs.GetSyncJobs()), want[1:2]) {
		t.Errorf("bob's own = %v, %v; want %v", jobNames(bobs.GetSyncJobs()), err, want[1:2])
	}
}

func jobNames(jobs []*ingestv1.SyncJob) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.GetName())
	}
	return out
}
