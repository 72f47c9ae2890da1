package e2e_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
)

// TestDeleteUserLeavesNothing gives bob data in every service — messages,
// an import and an IMAP mailbox with its password in the vault, a sync job,
// a taxonomy, API keys, events in the streams — deletes bob through the
// API, and then finds nothing of bob in any table of the database or any
// subject of the streams, while ada's data is untouched.
func TestDeleteUserLeavesNothing(t *testing.T) {
	imapPassword := "imap-" + testenv.RandomID(8)
	imapAddr := startIMAP(t, "bob", imapPassword, plantedMail(1), plantedMail(2))
	e := start(t, options{extra: map[string]string{"MAILROOM_IMAP_ALLOW_HOSTS": "127.0.0.1", "MAILROOM_SYNC_INTERVAL": "0"}})
	ada := e.user("ada")
	bob := e.user("bob")
	e.must(200, "POST", "/v1/users/bob/apiKeys", bob, map[string]any{"displayName": "second"})

	for user, key := range map[string]string{"ada": ada, "bob": bob} {
		mb := e.mailbox(user, key, "inbox")
		e.must(200, "POST", "/v1/"+mb+"/messages:import", key, map[string]any{"messages": []map[string]any{
			{"raw": raw(t, "newsletter.eml")}, {"raw": raw(t, "personal.eml")},
		}})
	}
	host, port, _ := net.SplitHostPort(imapAddr)
	e.must(200, "POST", "/v1/users/bob/mailboxes?mailboxId=imap", bob, map[string]any{"provider": "IMAP", "address": "bob@example.com",
		"imap": map[string]any{"host": host, "port": port, "username": "bob", "password": imapPassword, "security": "NONE"}})
	job := e.must(200, "POST", "/v1/users/bob/mailboxes/imap:sync", bob, map[string]any{})
	e.waitJob(bob, job["name"].(string))
	e.must(200, "PATCH", "/v1/users/bob/taxonomy", bob, map[string]any{"categories": []map[string]any{{"name": "other", "description": "All of it."}}})
	e.classified(bob, "bob", 4)
	e.classified(ada, "ada", 2)

	// ada may not delete bob; bob may delete himself.
	e.must(403, "DELETE", "/v1/users/bob", ada, nil)
	out := e.must(200, "DELETE", "/v1/users/me", bob, nil)
	deleted, _ := out["deleted"].(map[string]any)
	for kind, atLeast := range map[string]int{
		"store.messages": 4, "ingest.mailboxes": 2, "ingest.sync_jobs": 1, "auth.credentials": 1,
		"auth.api_keys": 2, "auth.users": 1, "classifier.taxonomies": 1,
		"ingest.received_events": 4, "store.classified_events": 4,
	} {
		var n int
		fmt.Sscan(fmt.Sprint(deleted[kind]), &n)
		if n < atLeast {
			t.Errorf("deleted[%s] = %v, want at least %d (all: %v)", kind, deleted[kind], atLeast, deleted)
		}
	}

	// bob's keys no longer exchange for a token. (The gateway and the
	// services may still hold a token of bob's for up to their key cache's
	// 30 s; the user is gone from every store already.)
	cc, err := grpcconn.Dial(e.suite.GRPC["auth"])
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = authv1.NewAuthServiceClient(cc).ExchangeApiKey(context.Background(), &authv1.ExchangeApiKeyRequest{ApiKey: bob})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("exchanging bob's key after the deletion: %v, want Unauthenticated", err)
	}
	e.must(404, "GET", "/v1/users/bob", e.admin, nil)
	if got := e.must(200, "GET", "/v1/users/bob/messages", e.admin, nil); len(got["messages"].([]any)) != 0 {
		t.Errorf("bob's messages after the deletion: %v", got)
	}
	if got := e.must(200, "GET", "/v1/users/ada/messages", ada, nil); len(got["messages"].([]any)) != 2 {
		t.Errorf("ada's messages after bob's deletion: %v", got)
	}

	// Every text column of every table: nothing names bob, but the store's
	// record that bob was deleted (it drops bob's late events).
	db := openSQLite(t, filepath.Join(e.dir, "mailroom.db"))
	for table, cols := range textColumns(t, db) {
		if table == "store_deleted_users" {
			continue
		}
		for _, col := range cols {
			var n int
			q := fmt.Sprintf(`SELECT count(*) FROM %q WHERE %q = 'bob' OR %q LIKE 'users/bob/%%' OR %q LIKE 'bob/%%'`, table, col, col, col)
			if err := db.QueryRow(q).Scan(&n); err != nil {
				t.Fatalf("%s.%s: %v", table, col, err)
			}
			if n > 0 {
				t.Errorf("%s.%s still names bob in %d rows", table, col, n)
			}
		}
	}

	// The streams keep none of bob's events.
	nc, js, err := eventbus.Connect(e.suite.NATSURL, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{}
	for stream, subject := range map[string]string{
		topo.ReceivedStreamName():   topo.ReceivedOfUser("bob"),
		topo.ClassifiedStreamName(): topo.ClassifiedSubject("bob"),
		topo.DeadLetterStreamName(): topo.DeadLetterSubject("bob"),
	} {
		s, err := js.Stream(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		if len(info.State.Subjects) != 0 {
			t.Errorf("stream %s still holds bob's events: %v", stream, info.State.Subjects)
		}
	}
}

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// textColumns lists every table's text columns.
func textColumns(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	out := map[string][]string{}
	for _, table := range tables {
		cols, err := db.Query(fmt.Sprintf(`SELECT name, type FROM pragma_table_info(%q)`, table))
		if err != nil {
			t.Fatal(err)
		}
		for cols.Next() {
			var name, typ string
			if err := cols.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.ToUpper(typ), "TEXT") {
				out[table] = append(out[table], name)
			}
		}
		cols.Close()
	}
	if len(out) < 8 {
		t.Fatalf("found text columns in only %d tables: %v", len(out), out)
	}
	return out
}
