// Package sqlrepo keeps ingest's mailboxes and sync jobs in SQL, through
// database/sql, on Postgres (pgx) and SQLite (modernc) alike: the queries
// are portable ($N placeholders, times as BIGINT unix microseconds, NULL for
// a time not yet reached), and each backend has its own migrations.
package sqlrepo

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/ingest/internal/mailbox"
)

//go:embed migrations
var migrations embed.FS

// Migrations are ingest's migrations, for sqldb.Open.
func Migrations() sqldb.Migrations {
	pg, err := fs.Sub(migrations, "migrations/postgres")
	if err != nil {
		panic(err)
	}
	lite, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		panic(err)
	}
	return sqldb.Migrations{Table: "ingest_schema_version", Postgres: pg, SQLite: lite}
}

// Repo is a mailbox.Repository over a migrated database.
type Repo struct {
	db *sql.DB
}

// New returns a Repo over db, which Migrations have been applied to.
func New(db *sql.DB) *Repo { return &Repo{db: db} }

var _ mailbox.Repository = (*Repo)(nil)

func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros stores a zero time as NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// CreateMailbox implements mailbox.Repository.
func (r *Repo) CreateMailbox(ctx context.Context, m mailbox.Mailbox) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO mailboxes (user_id, id, provider, address, display_name, state, state_reason,
		                       sync_cursor, message_count, create_time, last_sync_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		m.User, m.ID, string(m.Kind), m.Address, m.DisplayName, string(m.State), m.StateReason,
		m.Cursor, m.MessageCount, micros(m.CreateTime), nullMicros(m.LastSyncTime))
	if sqldb.IsUniqueViolation(err) {
		return mailbox.ErrAlreadyExists
	}
	if err != nil {
		return fmt.Errorf("sqlrepo: insert mailbox: %w", err)
	}
	return nil
}

const mailboxColumns = `user_id, id, provider, address, display_name, state, state_reason,
	sync_cursor, message_count, create_time, last_sync_time`

func scanMailbox(row interface{ Scan(...any) error }) (mailbox.Mailbox, error) {
	var (
		m           mailbox.Mailbox
		kind, state string
		created     int64
		lastSync    sql.NullInt64
	)
	err := row.Scan(&m.User, &m.ID, &kind, &m.Address, &m.DisplayName, &state, &m.StateReason,
		&m.Cursor, &m.MessageCount, &created, &lastSync)
	if err != nil {
		return mailbox.Mailbox{}, err
	}
	m.Kind, m.State = mailbox.Kind(kind), mailbox.State(state)
	m.CreateTime, m.LastSyncTime = fromMicros(created), fromNullMicros(lastSync)
	return m, nil
}

// GetMailbox implements mailbox.Repository.
func (r *Repo) GetMailbox(ctx context.Context, user, id string) (mailbox.Mailbox, error) {
	m, err := scanMailbox(r.db.QueryRowContext(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes WHERE user_id = $1 AND id = $2`, user, id))
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.Mailbox{}, mailbox.ErrNotFound
	}
	if err != nil {
		return mailbox.Mailbox{}, fmt.Errorf("sqlrepo: get mailbox: %w", err)
	}
	return m, nil
}

// ListMailboxes implements mailbox.Repository.
func (r *Repo) ListMailboxes(ctx context.Context, user, afterID string, limit int) ([]mailbox.Mailbox, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		user, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlrepo: list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []mailbox.Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlrepo: list mailboxes: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlrepo: list mailboxes: %w", err)
	}
	return out, nil
}

// AddMessageCount implements mailbox.Repository.
func (r *Repo) AddMessageCount(ctx context.Context, user, id string, n int64) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE mailboxes SET message_count = message_count + $3 WHERE user_id = $1 AND id = $2`, user, id, n)
	return updated(res, err, "add message count")
}

// RecordSync implements mailbox.Repository.
func (r *Repo) RecordSync(ctx context.Context, user, id, cursor string, t time.Time) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE mailboxes SET sync_cursor = $3, last_sync_time = $4 WHERE user_id = $1 AND id = $2`,
		user, id, cursor, nullMicros(t))
	return updated(res, err, "record sync")
}

// updated turns an UPDATE's outcome into nil, ErrNotFound or an error.
func updated(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("sqlrepo: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlrepo: %s: %w", what, err)
	}
	if n == 0 {
		return mailbox.ErrNotFound
	}
	return nil
}

// CreateSyncJob implements mailbox.Repository.
func (r *Repo) CreateSyncJob(ctx context.Context, j mailbox.SyncJob) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO sync_jobs (user_id, id, mailbox_id, mode, max_messages, state,
		                       listed, fetched, published, skipped, failed, error,
		                       create_time, update_time, end_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		j.User, j.ID, j.MailboxID, string(j.Mode), j.MaxMessages, string(j.State),
		j.Progress.Listed, j.Progress.Fetched, j.Progress.Published, j.Progress.Skipped, j.Progress.Failed, j.Error,
		micros(j.CreateTime), micros(j.UpdateTime), nullMicros(j.EndTime))
	if sqldb.IsUniqueViolation(err) {
		return mailbox.ErrAlreadyExists
	}
	if err != nil {
		return fmt.Errorf("sqlrepo: insert sync job: %w", err)
	}
	return nil
}

// UpdateSyncJob implements mailbox.Repository.
func (r *Repo) UpdateSyncJob(ctx context.Context, j mailbox.SyncJob) error {
	res, err := r.db.ExecContext(ctx, `
		UPDATE sync_jobs SET state = $3, listed = $4, fetched = $5, published = $6, skipped = $7,
		                     failed = $8, error = $9, update_time = $10, end_time = $11
		WHERE user_id = $1 AND id = $2`,
		j.User, j.ID, string(j.State), j.Progress.Listed, j.Progress.Fetched, j.Progress.Published,
		j.Progress.Skipped, j.Progress.Failed, j.Error, micros(j.UpdateTime), nullMicros(j.EndTime))
	return updated(res, err, "update sync job")
}

// GetSyncJob implements mailbox.Repository.
func (r *Repo) GetSyncJob(ctx context.Context, user, id string) (mailbox.SyncJob, error) {
	var (
		j               mailbox.SyncJob
		mode, state     string
		created, update int64
		end             sql.NullInt64
	)
	err := r.db.QueryRowContext(ctx, `
		SELECT user_id, id, mailbox_id, mode, max_messages, state,
		       listed, fetched, published, skipped, failed, error, create_time, update_time, end_time
		FROM sync_jobs WHERE user_id = $1 AND id = $2`, user, id).
		Scan(&j.User, &j.ID, &j.MailboxID, &mode, &j.MaxMessages, &state,
			&j.Progress.Listed, &j.Progress.Fetched, &j.Progress.Published, &j.Progress.Skipped, &j.Progress.Failed,
			&j.Error, &created, &update, &end)
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.SyncJob{}, mailbox.ErrNotFound
	}
	if err != nil {
		return mailbox.SyncJob{}, fmt.Errorf("sqlrepo: get sync job: %w", err)
	}
	j.Mode, j.State = mailbox.SyncMode(mode), mailbox.JobState(state)
	j.CreateTime, j.UpdateTime, j.EndTime = fromMicros(created), fromMicros(update), fromNullMicros(end)
	return j, nil
}
