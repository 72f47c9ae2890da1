// Package sqldb opens the databases mailroom keeps its state in and runs
// their embedded, versioned migrations (goose). DATABASE_URL chooses the
// backend: postgres://… (pgx, pgxpool) or sqlite://PATH (modernc.org/sqlite,
// pure Go). Migrations on Postgres run under a session advisory lock, so two
// replicas starting together are safe.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Backend is the kind of database a URL names.
type Backend string

// The supported backends.
const (
	Postgres Backend = "postgres"
	SQLite   Backend = "sqlite"
)

// Parse returns the backend of url and, for SQLite, the file path.
func Parse(url string) (Backend, string, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return Postgres, url, nil
	case strings.HasPrefix(url, "sqlite://"):
		p := strings.TrimPrefix(url, "sqlite://")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if p == "" {
			return "", "", errors.New("sqldb: sqlite:// needs a file path, as in sqlite://.mailroom/mailroom.db")
		}
		return SQLite, p, nil
	case url == "":
		return "", "", errors.New("sqldb: DATABASE_URL is empty")
	}
	return "", "", errors.New("sqldb: DATABASE_URL must start with postgres:// or sqlite://")
}

// OpenPostgres opens a pgx pool and checks that the server answers.
func OpenPostgres(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("sqldb: parse postgres url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqldb: open postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sqldb: ping postgres: %w", err)
	}
	return pool, nil
}

// OpenSQLite opens (creating if needed) the SQLite file at path in WAL mode,
// with a busy timeout and foreign keys on. Transactions take the write lock
// at BEGIN, so concurrent writers wait instead of failing on upgrade.
func OpenSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqldb: sqlite dir: %w", err)
		}
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqldb: open sqlite: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqldb: open sqlite %s: %w", path, err)
	}
	return db, nil
}

// Migration names a service's migrations: Table is its goose version table,
// FS holds its numbered .sql files at the root.
type Migration struct {
	Table string
	FS    fs.FS
}

// MigratePostgres applies m's pending migrations to the database behind
// pool, under a session advisory lock derived from m.Table.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool, m Migration) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migratePostgres(ctx, db, m)
}

func migratePostgres(ctx context.Context, db *sql.DB, m Migration) error {
	h := fnv.New64a()
	h.Write([]byte("mailroom:" + m.Table))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
	if err != nil {
		return fmt.Errorf("sqldb: migration lock: %w", err)
	}
	return migrate(ctx, goose.DialectPostgres, db, m, goose.WithSessionLocker(locker))
}

// MigrateSQLite applies m's pending migrations to db.
func MigrateSQLite(ctx context.Context, db *sql.DB, m Migration) error {
	return migrate(ctx, goose.DialectSQLite3, db, m)
}

func migrate(ctx context.Context, d goose.Dialect, db *sql.DB, m Migration, opts ...goose.ProviderOption) error {
	opts = append(opts, goose.WithTableName(m.Table), goose.WithDisableGlobalRegistry(true))
	p, err := goose.NewProvider(d, db, m.FS, opts...)
	if err != nil {
		return fmt.Errorf("sqldb: migrations %s: %w", m.Table, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqldb: migrate %s: %w", m.Table, err)
	}
	return nil
}

// awaitSchema applies no migration: it waits until the schema in db is at
// the version of m's newest migration (a migration Job brings it there),
// checking every interval, or until ctx ends.
func awaitSchema(ctx context.Context, d goose.Dialect, db *sql.DB, m Migration, o options) error {
	p, err := goose.NewProvider(d, db, m.FS, goose.WithTableName(m.Table), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqldb: migrations %s: %w", m.Table, err)
	}
	for {
		current, target, err := p.GetVersions(ctx)
		if err == nil && current >= target {
			return nil
		}
		if o.logger != nil {
			args := []any{"table", m.Table, "version", current, "want", target}
			if err != nil {
				args = append(args, "error", err.Error())
			}
			o.logger.InfoContext(ctx, "waiting for the schema to be migrated (MAILROOM_MIGRATE=wait)", args...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqldb: waiting for schema %s at version %d: %w", m.Table, target, ctx.Err())
		case <-time.After(o.every):
		}
	}
}
