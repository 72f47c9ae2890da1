package sqlrepo_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/sqlrepo"
)

func TestMigrations(t *testing.T) {
	for name, newURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			url := newURL(t)
			if err := sqlrepo.Migrate(ctx, url); err != nil {
				t.Fatalf("Migrate from empty: %v", err)
			}
			before := snapshot(t, ctx, url)
			for _, table := range []string{"store_messages", "store_classification_usage", "store_deleted_users"} {
				if !strings.Contains(before, "table "+table+"\n") {
					t.Errorf("no table %s after migrating:\n%s", table, before)
				}
			}
			if !strings.Contains(before, "version 2 true") {
				t.Errorf("version 2 not applied:\n%s", before)
			}
			if err := sqlrepo.Migrate(ctx, url); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if after := snapshot(t, ctx, url); after != before {
				t.Errorf("a second run changed the schema or its versions:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestConcurrentMigrators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := testenv.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = sqlrepo.Migrate(ctx, url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	got := snapshot(t, ctx, url)
	for _, v := range []string{"version 1 true", "version 2 true"} {
		if n := strings.Count(got, v+" "); n != 1 {
			t.Errorf("%q recorded %d times, want once:\n%s", v, n, got)
		}
	}
}

// snapshot describes the store's tables, indexes and recorded versions.
func snapshot(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	db, err := sqlrepo.Open(ctx, url) // migrating an up-to-date schema changes nothing
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var q string
	if db.Backend == "postgres" {
		q = `SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = current_schema()
             UNION ALL SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
             UNION ALL SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns WHERE table_schema = current_schema()`
	} else {
		q = `SELECT type || ' ' || name || CASE WHEN type = 'table' THEN '' ELSE ' ' || coalesce(sql, '') END FROM sqlite_master`
	}
	rows, err := db.SQL.QueryContext(ctx, q+" ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		b.WriteString(s + "\n")
	}
	rows.Close()
	vrows, err := db.SQL.QueryContext(ctx, "SELECT id, version_id, is_applied, tstamp FROM "+sqlrepo.VersionTable+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer vrows.Close()
	for vrows.Next() {
		var id, version int64
		var applied bool
		var tstamp any
		if err := vrows.Scan(&id, &version, &applied, &tstamp); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "version %d %t %v (row %d)\n", version, applied, tstamp, id)
	}
	return b.String()
}
