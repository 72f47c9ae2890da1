package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
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

// MigrateMode says what Open does with a service's migrations
// (MAILROOM_MIGRATE).
type MigrateMode string

// The migrate modes.
const (
	// MigrateAuto applies the pending migrations at start, under a lock on
	// Postgres (the default; `mailroom dev` and a single binary).
	MigrateAuto MigrateMode = "auto"
	// MigrateWait applies none: it waits until the schema is at the
	// version the binary embeds, which a migration Job (`mailroom
	// migrate`) brings it to once per release. Production on Kubernetes.
	MigrateWait MigrateMode = "wait"
)

// Valid reports whether m is a mode Open knows; empty is MigrateAuto.
func (m MigrateMode) Valid() bool { return m == "" || m == MigrateAuto || m == MigrateWait }

// Option changes what Open does.
type Option func(*options)

type options struct {
	wait   bool
	every  time.Duration
	logger *slog.Logger
}

// WithMigrate sets the migrate mode; with MigrateWait, Open logs to logger
// (if not nil) while it waits, checking every few seconds.
func WithMigrate(mode MigrateMode, logger *slog.Logger) Option {
	return func(o *options) { o.wait, o.logger = mode == MigrateWait, logger }
}

// withPoll sets how often MigrateWait checks (tests).
func withPoll(d time.Duration) Option { return func(o *options) { o.every = d } }

// Open opens the database that url names and applies m's migrations, or
// with WithMigrate(MigrateWait, …) waits until they have been applied.
func Open(ctx context.Context, url string, m Migrations, opts ...Option) (*DB, error) {
	o := options{every: 2 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
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
		db := stdlib.OpenDBFromPool(pool)
		mig := Migration{Table: m.Table, FS: m.Postgres}
		if o.wait {
			err = awaitSchema(ctx, goose.DialectPostgres, db, mig, o)
		} else {
			err = migratePostgres(ctx, db, mig)
		}
		if err != nil {
			db.Close()
			pool.Close()
			return nil, err
		}
		return &DB{Backend: Postgres, SQL: db, Pool: pool}, nil
	default:
		db, err := OpenSQLite(ctx, dsn)
		if err != nil {
			return nil, err
		}
		mig := Migration{Table: m.Table, FS: m.SQLite}
		if o.wait {
			err = awaitSchema(ctx, goose.DialectSQLite3, db, mig, o)
		} else {
			err = MigrateSQLite(ctx, db, mig)
		}
		if err != nil {
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

// Ping checks that the database answers: readiness checks call it.
func (db *DB) Ping(ctx context.Context) error {
	if db.Pool != nil {
		return db.Pool.Ping(ctx)
	}
	return db.SQL.PingContext(ctx)
}
