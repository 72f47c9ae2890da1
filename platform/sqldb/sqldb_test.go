package sqldb_test

import (
	"context"
	"testing"
	"testing/fstest"

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
