// Package sqlrepo opens the store's database, whichever DATABASE_URL names
// (postgres://… or sqlite://PATH), applies the store's migrations, and
// returns the matching repository. The service, `mailroom migrate` and the
// benchmarks open the database the same way through it.
package sqlrepo

import (
	"context"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo/postgres"
	"mailroom.dev/services/store/internal/sqlrepo/sqlite"
	"mailroom.dev/services/store/internal/webhook"
)

// VersionTable is the goose version table of the store's schema.
const VersionTable = "store_schema_version"

// Migrations returns the store's migrations for both backends.
func Migrations() sqldb.Migrations {
	return sqldb.Migrations{
		Table:    VersionTable,
		Postgres: postgres.Migrations(),
		SQLite:   sqlite.Migrations(),
	}
}

// DB is an open, migrated store database and its repository.
type DB struct {
	*sqldb.DB
	// Repo is the repository of the backend that the URL names.
	Repo mailstore.Repository
	// Changes is the same backend's change log (WatchMessages).
	Changes mailstore.ChangeLog
	// Webhooks keeps the users' webhooks.
	Webhooks webhook.Repository
}

// Open opens the database at url, brings its schema up to date (under a
// lock on Postgres; opts may say to wait for it instead) and returns it
// with its repository.
func Open(ctx context.Context, url string, opts ...sqldb.Option) (*DB, error) {
	db, err := sqldb.Open(ctx, url, Migrations(), opts...)
	if err != nil {
		return nil, err
	}
	out := &DB{DB: db}
	switch db.Backend {
	case sqldb.Postgres:
		r := postgres.New(db.Pool)
		out.Repo, out.Changes, out.Webhooks = r, r, r
	default:
		r := sqlite.New(db.SQL)
		out.Repo, out.Changes, out.Webhooks = r, r, r
	}
	return out, nil
}

// Migrate applies the store's pending migrations to the database at url,
// then closes it.
func Migrate(ctx context.Context, url string) error {
	return sqldb.Migrate(ctx, url, Migrations())
}
