package classifier_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/testenv"
)

// TestEventsOfADeletedUserAreDropped: events already in flight when their
// user was deleted (ingested before the deletion marker) are acknowledged
// and dropped, never classified nor published; mail of a user of the same
// id created after the deletion goes through.
func TestEventsOfADeletedUserAreDropped(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	marker, err := authn.OpenRevocations(ctx, e.js, e.topo.BucketName(authn.RevocationBucket), 1)
	if err != nil {
		t.Fatal(err)
	}
	deletedAt := time.Now()
	if err := marker.RevokeUser(ctx, "bob", deletedAt); err != nil {
		t.Fatal(err)
	}
	inFlight := received("bob", "m1", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in")
	inFlight.IngestTime = timestamppb.New(deletedAt.Add(-time.Second))
	publish(t, e, inFlight, "inbox/p-m1")
	later := received("bob", "m2", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in")
	later.IngestTime = timestamppb.New(deletedAt.Add(time.Second))
	publish(t, e, later, "inbox/p-m2")
	other := received("ada", "m3", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in")
	publish(t, e, other, "inbox/p-m3")

	waitSettled(t, e)
	got := classifiedInStream(t, e, 2)
	if _, ok := got[inFlight.GetMessage()]; ok {
		t.Errorf("the event of the deleted user was classified and published")
	}
	if len(got) != 2 || got[later.GetMessage()] == nil || got[other.GetMessage()] == nil {
		t.Errorf("classified %v, want the later mail of bob and ada's", keys(got))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
