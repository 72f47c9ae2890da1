package sqlite_test

import (
	"context"
	"testing"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlite"
	"mailroom.dev/services/store/internal/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t testing.TB) mailstore.Repository {
		db, err := sqldb.Open(context.Background(), testenv.SQLiteURL(t), sqldb.Migrations{
			Table:  "store_schema_version",
			SQLite: sqlite.Migrations(),
		})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return sqlite.New(db.SQL)
	})
}
