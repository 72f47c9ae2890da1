package classifier_test

import (
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier"
)

// TestMailPastTheQuotaWaitsForTheReset: with a quota of one mail a day and
// the quotas' clock two seconds before midnight UTC, ada's second mail is
// held (in the stream, not failed nor dead-lettered), bob's goes through,
// and ada's is classified once the quota resets.
func TestMailPastTheQuotaWaitsForTheReset(t *testing.T) {
	now := time.Now().UTC()
	y, m, d := now.Date()
	offset := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Add(-3 * time.Second).Sub(now)
	e := startWith(t, testenv.NATS(t), "", func(c *classifier.Config) {
		c.QuotaMailsPerDay = 1
		c.QuotaClock = func() time.Time { return time.Now().Add(offset) }
	})
	first := received("ada", "m1", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in")
	publish(t, e, first, "inbox/p-m1")
	classifiedInStream(t, e, 1)
	second := received("ada", "m2", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in again")
	publish(t, e, second, "inbox/p-m2")
	bob := received("bob", "m3", "Security alert", "Google <no-reply@accounts.google.com>", "Someone signed in")
	publish(t, e, bob, "inbox/p-m3")
	got := classifiedInStream(t, e, 2)
	if got[bob.GetMessage()] == nil {
		t.Fatalf("bob's mail waited behind ada's quota: %v", keys(got))
	}
	if got[second.GetMessage()] != nil {
		t.Fatalf("ada's second mail was classified past her quota of one")
	}
	// The quota resets (at the quotas' midnight, about 3 s from the start).
	got = classifiedInStream(t, e, 3)
	if got[second.GetMessage()] == nil {
		t.Errorf("ada's held mail was not classified after the reset: %v", keys(got))
	}
}
