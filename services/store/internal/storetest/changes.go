package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// changeTests are the contract of mailstore.ChangeLog.
var changeTests = []test{
	{"ChangesInOrder", testChangesInOrder},
	{"ChangesNeverSkippedUnderConcurrentWriters", testChangesConcurrent},
	{"LateReceiptIsNoChange", testLateReceiptIsNoChange},
}

func changes(t *testing.T, db *sqlrepo.DB, user string, after int64) []mailstore.Change {
	t.Helper()
	cs, err := db.Changes.Changes(ctx(t), user, after, 1000)
	if err != nil {
		t.Fatalf("Changes(%s, %d): %v", user, after, err)
	}
	return cs
}

func lastChange(t *testing.T, db *sqlrepo.DB, user string) int64 {
	t.Helper()
	n, err := db.Changes.LastChange(ctx(t), user)
	if err != nil {
		t.Fatalf("LastChange(%s): %v", user, err)
	}
	return n
}

func testChangesInOrder(t *testing.T, db *sqlrepo.DB) {
	r := db.Repo
	if n := lastChange(t, db, "ada"); n != 0 {
		t.Errorf("LastChange of a user without messages = %d, want 0", n)
	}
	m1, m2 := received("ada", 1), received("ada", 2)
	m1.Body = "a body the change log must not return"
	mustReceive(t, r, m1, m2)
	mustReceive(t, r, received("bob", 1))
	start := changes(t, db, "ada", 0)
	if len(start) != 2 {
		t.Fatalf("ada's changes after two receipts: %d, want 2", len(start))
	}
	cursor := start[1].Seq
	if start[0].Seq >= cursor {
		t.Errorf("changes out of order: seqs %d, %d", start[0].Seq, cursor)
	}
	if lastChange(t, db, "ada") != cursor {
		t.Errorf("LastChange = %d, want the last change's seq %d", lastChange(t, db, "ada"), cursor)
	}
	for _, c := range start {
		if c.Message.Body != "" || c.Message.User != "ada" {
			t.Errorf("change of %s/%s has body %q", c.Message.User, c.Message.ID, c.Message.Body)
		}
	}

	// A redelivered batch changes nothing; a verdict is one more change.
	mustReceive(t, r, m1, m2)
	if got := changes(t, db, "ada", cursor); len(got) != 0 {
		t.Errorf("a redelivered batch made %d changes, want none", len(got))
	}
	mustClassify(t, r, verdict(m1, "newsletters", 1))
	mustFail(t, r, failure(m2, "model answered 500", 1))
	got := changes(t, db, "ada", cursor)
	if len(got) != 2 || got[0].Message.ID != m1.ID || got[1].Message.ID != m2.ID {
		t.Fatalf("changes after a verdict and a failure: %+v, want m1 then m2", got)
	}
	if got[0].Message.State != mailstore.StateClassified || got[0].Message.Classification.Category != "newsletters" {
		t.Errorf("the verdict's change carries %s %+v", got[0].Message.State, got[0].Message.Classification)
	}
	if got[1].Message.State != mailstore.StateFailed {
		t.Errorf("the failure's change carries state %s", got[1].Message.State)
	}
	if got[0].Seq <= cursor || got[1].Seq <= got[0].Seq {
		t.Errorf("seqs %d, %d after cursor %d: not increasing", got[0].Seq, got[1].Seq, cursor)
	}
	// A message changed twice is listed once, at its latest change.
	if all := changes(t, db, "ada", 0); len(all) != 2 {
		t.Errorf("ada's changes from the start: %d, want 2 (one per message)", len(all))
	}
	// bob's changes are bob's alone.
	if got := changes(t, db, "bob", 0); len(got) != 1 || got[0].Message.User != "bob" {
		t.Errorf("bob's changes: %+v", got)
	}
}

// testChangesConcurrent writes one user's messages from several writers at
// once while a reader follows the change log with a cursor, as a watcher
// does. Every message is written once, so a change that became visible
// after the reader had moved past its number would never be seen: the
// reader must end up with every message.
func testChangesConcurrent(t *testing.T, db *sqlrepo.DB) {
	const (
		writers = 6
		batches = 15
		size    = 7
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var batch []mailstore.Message
				for i := range size {
					m := received("ada", 0)
					m.ID = fmt.Sprintf("w%d-b%02d-%d", w, b, i)
					batch = append(batch, m)
				}
				if w%2 == 0 {
					vs := make([]mailstore.Classified, len(batch))
					for i, m := range batch {
						vs[i] = verdict(m, "work", 1)
					}
					errs <- db.Repo.SaveClassified(context.Background(), vs)
				} else {
					errs <- db.Repo.SaveReceived(context.Background(), batch)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]int{}
	var cursor int64
	read := func() {
		for _, c := range changes(t, db, "ada", cursor) {
			if c.Seq <= cursor {
				t.Fatalf("change %d at or before the cursor %d", c.Seq, cursor)
			}
			cursor = c.Seq
			seen[c.Message.ID]++
		}
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		read()
	}
	read()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("write: %v", err)
		}
	}
	if want := writers * batches * size; len(seen) != want {
		t.Errorf("the reader saw %d messages, want %d: a change became visible behind its cursor", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s seen %d times, written once", id, n)
		}
	}
}

// testLateReceiptIsNoChange: a MailReceived stored after its verdict, with
// the same metadata, changes nothing a watcher sees, so it is no change.
func testLateReceiptIsNoChange(t *testing.T, db *sqlrepo.DB) {
	m := received("ada", 1)
	mustClassify(t, db.Repo, verdict(m, "work", 1))
	cursor := lastChange(t, db, "ada")
	mustReceive(t, db.Repo, m)
	if got := changes(t, db, "ada", cursor); len(got) != 0 {
		t.Errorf("a late receipt of the same metadata made %d changes, want none", len(got))
	}
	m.Subject = "Another subject"
	mustReceive(t, db.Repo, m)
	if got := changes(t, db, "ada", cursor); len(got) != 1 || got[0].Message.Subject != "Another subject" {
		t.Errorf("a receipt that changes the subject: %+v, want one change", got)
	}
}
