package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/testenv"
)

// TestDeletionMarkerStopsASyncOnAnotherReplica deletes ada while a sync of
// her Gmail mailbox runs on one replica, as auth's DeleteUser does it: the
// deletion marker in the revocation bucket first, then PurgeUserData,
// which reaches another replica. The running sync publishes nothing more
// (the purge removed what it had published): without the marker it goes
// on until its lease heartbeat notices the job is gone.
func TestDeletionMarkerStopsASyncOnAnotherReplica(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(400)
	fake.SetLatency(fakegmail.EndpointGet, 250*time.Millisecond)
	w := newWorld(t)
	db := testenv.SQLiteURL(t)
	syncing := w.start(t, db, gmailConfig(fake))
	mb := connectGmail(t, syncing, fake, "gmail")
	ada := syncing.as(t, "ada", "user")
	started, err := syncing.client.SyncMailbox(ada, &ingestv1.SyncMailboxRequest{Name: mb.GetName(), MaxMessages: 400})
	if err != nil {
		t.Fatal(err)
	}
	// The other replica starts once the job is claimed by the first.
	for {
		resp, err := syncing.client.GetSyncJob(ada, &ingestv1.GetSyncJobRequest{Name: started.GetSyncJob().GetName()})
		if err != nil {
			t.Fatal(err)
		}
		j := resp.GetSyncJob()
		if j.GetProgress().GetPublished() >= 8 {
			break
		}
		if j.GetState() == ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED || j.GetState() == ingestv1.SyncJobState_SYNC_JOB_STATE_FAILED {
			t.Fatalf("the sync ended before the deletion: %v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	other := w.start(t, db, gmailConfig(fake))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	marker, err := authn.OpenRevocations(ctx, other.js, w.topo.BucketName(authn.RevocationBucket), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := marker.RevokeUser(ctx, "ada", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := other.client.PurgeUserData(other.asService(t, authn.ServiceAuth), &ingestv1.PurgeUserDataRequest{User: "ada"}); err != nil {
		t.Fatalf("PurgeUserData: %v", err)
	}

	// The sync stops at its next message.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(syncing.logs.String(), `"msg":"sync job failed"`) && !strings.Contains(syncing.logs.String(), "sync job stopped") {
		if time.Now().After(deadline) {
			t.Fatalf("the sync did not stop; logs:\n%s", syncing.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(syncing.logs.String(), "users/ada is deleted") {
		t.Errorf("the sync did not stop for the deletion marker")
	}
	if evs := syncing.events(t); len(evs) != 0 {
		t.Errorf("%d events of ada published after her deletion, want none", len(evs))
	}

}
