package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
)

func TestMigrate(t *testing.T) {
	for name, newURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url := newURL(t)
			var out, errOut bytes.Buffer
			if err := run(ctx, []string{"migrate", "-database-url", url}, &out, &errOut); err != nil {
				t.Fatalf("mailroom migrate: %v (%s)", err, errOut.String())
			}
			if !strings.Contains(out.String(), "store") {
				t.Errorf("output %q does not name the store", out.String())
			}
			db := openRaw(t, url)
			versions := func() string {
				rows, err := db.QueryContext(ctx, "SELECT id, version_id, is_applied, tstamp FROM store_schema_version ORDER BY id")
				if err != nil {
					t.Fatalf("store_schema_version: %v", err)
				}
				defer rows.Close()
				var b strings.Builder
				for rows.Next() {
					var id, version, applied, tstamp any
					if err := rows.Scan(&id, &version, &applied, &tstamp); err != nil {
						t.Fatal(err)
					}
					fmt.Fprintln(&b, id, version, applied, tstamp)
				}
				return b.String()
			}
			before := versions()
			if strings.Count(before, "\n") < 3 { // goose's own row 0, then 1 and 2
				t.Errorf("versions applied:\n%s\nwant 0, 1 and 2 at least", before)
			}
			// Every service's schema is there.
			for _, table := range []string{"users", "mailboxes", "classifier_taxonomies", "store_messages"} {
				var n int
				if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
					t.Errorf("%s after migrate: %v", table, err)
				}
			}
			t.Setenv("DATABASE_URL", url)
			if err := run(ctx, []string{"migrate", "-service", "store"}, &out, &errOut); err != nil {
				t.Fatalf("second mailroom migrate (DATABASE_URL): %v", err)
			}
			if after := versions(); after != before {
				t.Errorf("a second run changed the version table: %q → %q", before, after)
			}
		})
	}
}

func TestMigrateRefusesUnknownService(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"migrate", "-service", "nope", "-database-url", testenv.SQLiteURL(t)}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `unknown service "nope"`) {
		t.Errorf("err = %v, want an unknown service", err)
	}
}

// openRaw opens the database at url without migrating it.
func openRaw(t *testing.T, url string) *sql.DB {
	t.Helper()
	backend, dsn, err := sqldb.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	if backend == sqldb.Postgres {
		db, err = sql.Open("pgx", dsn) // registered by sqldb's pgx stdlib import
		if err != nil {
			t.Fatal(err)
		}
	} else {
		if db, err = sqldb.OpenSQLite(context.Background(), dsn); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Close() })
	return db
}
