package postgres_test

import (
	"context"
	"testing"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/postgres"
	"mailroom.dev/services/store/internal/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t testing.TB) mailstore.Repository {
		db, err := sqldb.Open(context.Background(), testenv.PostgresURL(t), sqldb.Migrations{
			Table:    "store_schema_version",
			Postgres: postgres.Migrations(),
		})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return postgres.New(db.Pool)
	})
}
