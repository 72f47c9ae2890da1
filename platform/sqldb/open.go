package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Migrations are a service's migrations for both backends.
type Migrations struct {
	// Table is the goose version table, one per service ("auth_schema_version").
	Table string
	// Postgres and SQLite hold the numbered .sql files at their roots.
	Postgres fs.FS
	SQLite   fs.FS
}

// DB is an open, migrated database. SQL works on both backends (pgx's
// database/sql driver on Postgres), for repositories whose queries are
// portable; Pool is set on Postgres, for pgx-native batches and COPY.
type DB struct {
	Backend Backend
	SQL     *sql.DB
	Pool    *pgxpool.Pool
}

// Embedded returns the migrations of a service whose embedded fsys holds
// them in migrations/postgres and migrations/sqlite, versioned in table.
func Embedded(table string, fsys fs.FS) Migrations {
	return Migrations{Table: table, Postgres: Sub(fsys, "migrations/postgres"), SQLite: Sub(fsys, "migrations/sqlite")}
}

// Sub returns the directory dir of the embedded fsys; it panics if dir is
// not there, which only a build without the embedded files can cause.
func Sub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Migrate opens the database that url names, applies m's migrations (under
// a lock on Postgres) as Open does, and closes it: `mailroom migrate`.
func Migrate(ctx context.Context, url string, m Migrations) error {
	db, err := Open(ctx, url, m)
	if err != nil {
		return err
	}
	return db.Close()
}

// Open opens the database that url names and applies m's migrations.
func Open(ctx context.Context, url string, m Migrations) (*DB, error) {
	backend, dsn, err := Parse(url)
	if err != nil {
		return nil, err
	}
	switch backend {
	case Postgres:
		pool, err := OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, err
		}
		if err := MigratePostgres(ctx, pool, Migration{Table: m.Table, FS: m.Postgres}); err != nil {
			pool.Close()
			return nil, err
		}
		return &DB{Backend: Postgres, SQL: stdlib.OpenDBFromPool(pool), Pool: pool}, nil
	default:
		db, err := OpenSQLite(ctx, dsn)
		if err != nil {
			return nil, err
		}
		if err := MigrateSQLite(ctx, db, Migration{Table: m.Table, FS: m.SQLite}); err != nil {
			db.Close()
			return nil, err
		}
		return &DB{Backend: SQLite, SQL: db}, nil
	}
}

// Close closes the database.
func (db *DB) Close() error {
	err := db.SQL.Close()
	if db.Pool != nil {
		db.Pool.Close()
	}
	return err
}

// Tx is a database/sql transaction.
type Tx = sql.Tx

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func InTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique or primary key violation
// on either backend.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
