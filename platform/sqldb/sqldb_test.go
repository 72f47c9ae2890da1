package sqldb_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
)

func migrations() sqldb.Migrations {
	files := fstest.MapFS{
		"00001_things.sql": {Data: []byte("-- +goose Up\nCREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL);\n-- +goose Down\nDROP TABLE things;\n")},
	}
	return sqldb.Migrations{Table: "test_schema_version", Postgres: files, SQLite: files}
}

func TestOpenMigratesOnceAndPortableSQL(t *testing.T) {
	for name, url := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			u := url(t)
			db, err := sqldb.Open(ctx, u, migrations())
			if err != nil {
				t.Fatal(err)
			}
			if string(db.Backend) != name {
				t.Errorf("backend = %q, want %q", db.Backend, name)
			}
			err = sqldb.InTx(ctx, db.SQL, func(tx *sqldb.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, $2)", "a", 1)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.SQL.ExecContext(ctx, "INSERT INTO things (id, n) VALUES ($1, $2)", "a", 2)
			if !sqldb.IsUniqueViolation(err) {
				t.Errorf("duplicate insert: err = %v, want a unique violation", err)
			}
			db.Close()

			// A second open (a restart, or a second replica) changes nothing.
			db, err = sqldb.Open(ctx, u, migrations())
			if err != nil {
				t.Fatalf("second open: %v", err)
			}
			defer db.Close()
			var n int
			if err := db.SQL.QueryRowContext(ctx, "SELECT n FROM things WHERE id = $1", "a").Scan(&n); err != nil || n != 1 {
				t.Errorf("n = %d, %v; want 1", n, err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		url     string
		backend sqldb.Backend
		wantErr bool
	}{
		{"postgres://u@h/db", sqldb.Postgres, false},
		{"postgresql://u@h/db", sqldb.Postgres, false},
		{"sqlite://.mailroom/m.db", sqldb.SQLite, false},
		{"sqlite://", "", true},
		{"mysql://x", "", true},
		{"", "", true},
	} {
		b, _, err := sqldb.Parse(tt.url)
		if (err != nil) != tt.wantErr || b != tt.backend {
			t.Errorf("Parse(%q) = %q, %v", tt.url, b, err)
		}
	}
}

// TestMigrateWaitAppliesNothingAndWaitsForTheJob: with MAILROOM_MIGRATE=wait
// a service neither creates nor changes the schema; it starts once a
// migration (`mailroom migrate`, a Job in production) has brought the
// schema to its version, and gives up when its context ends first.
func TestMigrateWaitAppliesNothingAndWaitsForTheJob(t *testing.T) {
	for name, url := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			u := url(t)
			wait := []sqldb.Option{sqldb.WithMigrate(sqldb.MigrateWait, nil), sqldb.WithPoll(10 * time.Millisecond)}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if db, err := sqldb.Open(ctx, u, migrations(), wait...); err == nil {
				db.Close()
				t.Fatal("Open in wait mode succeeded on an empty database")
			}
			opened := make(chan error, 1)
			go func() {
				db, err := sqldb.Open(context.Background(), u, migrations(), wait...)
				if err == nil {
					_, err = db.SQL.ExecContext(context.Background(), "INSERT INTO things (id, n) VALUES ($1, $2)", "a", 1)
					db.Close()
				}
				opened <- err
			}()
			select {
			case err := <-opened:
				t.Fatalf("Open in wait mode returned before the migration: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			if err := sqldb.Migrate(context.Background(), u, migrations()); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-opened:
				if err != nil {
					t.Fatalf("Open in wait mode after the migration: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Open in wait mode did not return after the migration")
			}
		})
	}
}
