package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/mailstore"
)

// TestDeletionWaitsForWritesInFlight holds a write transaction open after
// its upsert (as a batch whose commit is slow would) and deletes the user
// meanwhile: the deletion must wait for the commit, so that the rows are
// there for its deletes to find, instead of surviving them.
func TestDeletionWaitsForWritesInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, testenv.PostgresURL(t), sqldb.Migrations{Table: "store_schema_version", Postgres: Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := New(db.Pool)
	svc := mailstore.NewService(r, mailstore.Options{})

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, lockShared, writeLock); err != nil {
		t.Fatal(err)
	}
	var c columns
	c.add(mailstore.Message{User: "ada", ID: "m1", MailboxID: "inbox", ReceivedTime: time.Now(), IngestTime: time.Now().Add(-time.Minute)})
	if _, err := tx.Exec(ctx, upsertReceived, c.args()...); err != nil {
		t.Fatal(err)
	}

	done := make(chan mailstore.Purged, 1)
	errc := make(chan error, 1)
	go func() {
		p, err := svc.PurgeUser(ctx, "ada")
		errc <- err
		done <- p
	}()
	select {
	case <-done:
		t.Fatal("PurgeUser finished while a write of the user was in flight")
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("PurgeUser: %v", err)
	}
	if p := <-done; p.Messages != 1 {
		t.Errorf("PurgeUser deleted %d messages, want the one written in flight", p.Messages)
	}
	if msgs, err := r.ListMessages(ctx, mailstore.ListQuery{User: "ada", Limit: 10}); err != nil || len(msgs) != 0 {
		t.Errorf("after the deletion: %d messages, %v; want none", len(msgs), err)
	}
}

// TestBatchIsOneTransaction checks what send relies on: the statements of
// one pgx batch outside an explicit transaction commit together or not at
// all.
func TestBatchIsOneTransaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, testenv.PostgresURL(t), sqldb.Migrations{Table: "store_schema_version", Postgres: Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := New(db.Pool)
	var c columns
	c.add(mailstore.Message{User: "ada", ID: "m1", MailboxID: "inbox", ReceivedTime: time.Now()})
	b := &pgx.Batch{}
	b.Queue(lockShared, writeLock)
	b.Queue(upsertReceived, c.args()...)
	b.Queue("SELECT 1 / 0")
	if err := r.send(ctx, "test", b); err == nil {
		t.Fatal("a batch with a failing statement succeeded")
	}
	if _, err := r.GetMessage(ctx, "ada", "m1"); err != mailstore.ErrNotFound {
		t.Errorf("the batch's first statement was committed although a later one failed: %v", err)
	}
}
