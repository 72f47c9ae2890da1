// Package sqlrepo keeps ingest's mailboxes, sync jobs, message records and
// pending consents in SQL, through
// database/sql, on Postgres (pgx) and SQLite (modernc) alike: the queries
// are portable ($N placeholders, times as BIGINT unix microseconds, NULL for
// a time not yet reached), and each backend has its own migrations.
package sqlrepo

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/ingest/internal/mailbox"
)

//go:embed migrations
var migrations embed.FS

// Migrations are ingest's migrations, for sqldb.Open.
func Migrations() sqldb.Migrations { return sqldb.Embedded("ingest_schema_version", migrations) }

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
	settings, err := encodeSettings(m.IMAP)
	if err != nil {
		return err
	}
	_, err = r.db.ExecContext(ctx, `
		INSERT INTO mailboxes (user_id, id, provider, address, display_name, state, state_reason,
		                       sync_cursor, message_count, create_time, last_sync_time, settings)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		m.User, m.ID, string(m.Kind), m.Address, m.DisplayName, string(m.State), m.StateReason,
		m.Cursor, m.MessageCount, micros(m.CreateTime), nullMicros(m.LastSyncTime), settings)
	if sqldb.IsUniqueViolation(err) {
		return mailbox.ErrAlreadyExists
	}
	if err != nil {
		return fmt.Errorf("sqlrepo: insert mailbox: %w", err)
	}
	return nil
}

func encodeSettings(s *mailbox.IMAPSettings) (string, error) {
	if s == nil {
		return "", nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("sqlrepo: imap settings: %w", err)
	}
	return string(b), nil
}

const mailboxColumns = `user_id, id, provider, address, display_name, state, state_reason,
	sync_cursor, message_count, create_time, last_sync_time, settings`

func scanMailbox(row interface{ Scan(...any) error }) (mailbox.Mailbox, error) {
	var (
		m                     mailbox.Mailbox
		kind, state, settings string
		created               int64
		lastSync              sql.NullInt64
	)
	err := row.Scan(&m.User, &m.ID, &kind, &m.Address, &m.DisplayName, &state, &m.StateReason,
		&m.Cursor, &m.MessageCount, &created, &lastSync, &settings)
	if err != nil {
		return mailbox.Mailbox{}, err
	}
	m.Kind, m.State = mailbox.Kind(kind), mailbox.State(state)
	m.CreateTime, m.LastSyncTime = fromMicros(created), fromNullMicros(lastSync)
	if settings != "" {
		m.IMAP = &mailbox.IMAPSettings{}
		if err := json.Unmarshal([]byte(settings), m.IMAP); err != nil {
			return mailbox.Mailbox{}, fmt.Errorf("imap settings of %s: %w", m.Name(), err)
		}
	}
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
	return r.queryMailboxes(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		user, afterID, limit)
}

// ListDueMailboxes implements mailbox.Repository.
func (r *Repo) ListDueMailboxes(ctx context.Context, kinds []mailbox.Kind, before time.Time, limit int) ([]mailbox.Mailbox, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	args := []any{string(mailbox.StateActive), micros(before), limit}
	for _, k := range kinds {
		args = append(args, string(k))
	}
	return r.queryMailboxes(ctx, `
		SELECT `+mailboxColumns+` FROM mailboxes m
		WHERE m.state = $1 AND (m.last_sync_time IS NULL OR m.last_sync_time < $2)
		  AND m.provider IN (`+placeholders(4, len(kinds))+`)
		  AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.user_id = m.user_id AND j.mailbox_id = m.id
		                  AND j.state IN ('PENDING', 'RUNNING'))
		ORDER BY m.last_sync_time NULLS FIRST, m.user_id, m.id
		LIMIT $3`, args...)
}

func (r *Repo) queryMailboxes(ctx context.Context, query string, args ...any) ([]mailbox.Mailbox, error) {
	rows, err := r.db.QueryContext(ctx, query, args...)
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

// placeholders returns "$from, $from+1, …" for n parameters.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

// SetMailboxState implements mailbox.Repository.
func (r *Repo) SetMailboxState(ctx context.Context, user, id string, state mailbox.State, reason, address string) error {
	res, err := r.db.ExecContext(ctx, `
		UPDATE mailboxes SET state = $3, state_reason = $4,
		       address = CASE WHEN $5 = '' THEN address ELSE $5 END
		WHERE user_id = $1 AND id = $2`,
		user, id, string(state), reason, address)
	return updated(res, err, "set mailbox state")
}

// RecordSync implements mailbox.Repository.
func (r *Repo) RecordSync(ctx context.Context, user, id, cursor string, t time.Time) error {
	res, err := r.db.ExecContext(ctx,
		`UPDATE mailboxes SET sync_cursor = $3, last_sync_time = $4 WHERE user_id = $1 AND id = $2`,
		user, id, cursor, nullMicros(t))
	return updated(res, err, "record sync")
}

// DeleteMailbox implements mailbox.Repository. The sync jobs, records and
// consent states go with the mailbox (ON DELETE CASCADE).
func (r *Repo) DeleteMailbox(ctx context.Context, user, id string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM mailboxes WHERE user_id = $1 AND id = $2`, user, id)
	return updated(res, err, "delete mailbox")
}

// PurgeUser implements mailbox.Repository.
func (r *Repo) PurgeUser(ctx context.Context, user string) (mailbox.Purged, error) {
	var p mailbox.Purged
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sync_jobs WHERE user_id = $1`, user).Scan(&p.SyncJobs); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM auth_states WHERE user_id = $1`,
			`DELETE FROM mailbox_messages WHERE user_id = $1`,
			`DELETE FROM sync_jobs WHERE user_id = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, user); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE user_id = $1`, user)
		if err != nil {
			return err
		}
		p.Mailboxes, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return mailbox.Purged{}, fmt.Errorf("sqlrepo: purge user: %w", err)
	}
	return p, nil
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

// KnownMessages implements mailbox.Repository.
func (r *Repo) KnownMessages(ctx context.Context, user, mailboxID string, ids []string) (map[string]bool, error) {
	known := map[string]bool{}
	if len(ids) == 0 {
		return known, nil
	}
	args := make([]any, 0, len(ids)+2)
	args = append(args, user, mailboxID)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := r.db.QueryContext(ctx, `
		SELECT provider_message_id FROM mailbox_messages
		WHERE user_id = $1 AND mailbox_id = $2 AND provider_message_id IN (`+placeholders(3, len(ids))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlrepo: known messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlrepo: known messages: %w", err)
		}
		known[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlrepo: known messages: %w", err)
	}
	return known, nil
}

// RecordMessages implements mailbox.Repository.
func (r *Repo) RecordMessages(ctx context.Context, recs []mailbox.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	// Duplicates inside one INSERT are harmless with DO NOTHING, but the
	// published count must not see them: keep the first of each id.
	seen := map[string]bool{}
	var published, failed []mailbox.Record
	for _, rec := range recs {
		if seen[rec.ProviderMessageID] {
			continue
		}
		seen[rec.ProviderMessageID] = true
		if rec.Status == mailbox.RecordPublished {
			published = append(published, rec)
		} else {
			failed = append(failed, rec)
		}
	}
	var added int
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		for _, part := range [][]mailbox.Record{published, failed} {
			for len(part) > 0 {
				n := min(len(part), 200)
				inserted, err := insertRecords(ctx, tx, part[:n])
				if err != nil {
					return err
				}
				added += inserted
				if part[0].Status == mailbox.RecordPublished && inserted > 0 {
					if _, err := tx.ExecContext(ctx,
						`UPDATE mailboxes SET message_count = message_count + $3 WHERE user_id = $1 AND id = $2`,
						part[0].User, part[0].MailboxID, inserted); err != nil {
						return err
					}
				}
				part = part[n:]
			}
		}
		return nil
	})
	if err != nil {
		// A record of a mailbox deleted meanwhile breaks the foreign key.
		return 0, fmt.Errorf("sqlrepo: record messages: %w", err)
	}
	return added, nil
}

func insertRecords(ctx context.Context, tx *sql.Tx, recs []mailbox.Record) (int, error) {
	var b strings.Builder
	args := make([]any, 0, 7*len(recs))
	b.WriteString(`INSERT INTO mailbox_messages (user_id, mailbox_id, provider_message_id, message_id, sync_job_id, status, create_time) VALUES `)
	for i, rec := range recs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + placeholders(len(args)+1, 7) + ")")
		args = append(args, rec.User, rec.MailboxID, rec.ProviderMessageID, rec.MessageID, rec.SyncJobID, string(rec.Status), micros(rec.CreateTime))
	}
	b.WriteString(` ON CONFLICT (user_id, mailbox_id, provider_message_id) DO NOTHING`)
	res, err := tx.ExecContext(ctx, b.String(), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// MarkClassified implements mailbox.Repository.
func (r *Repo) MarkClassified(ctx context.Context, user, mailboxID, providerMessageID, job string) (bool, error) {
	var first bool
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE mailbox_messages SET classified = 1
			WHERE user_id = $1 AND mailbox_id = $2 AND provider_message_id = $3 AND classified = 0`,
			user, mailboxID, providerMessageID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		first = n == 1
		if !first {
			// Already counted, or not recorded yet: only the first can be
			// waited for.
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM mailbox_messages WHERE user_id = $1 AND mailbox_id = $2 AND provider_message_id = $3`,
				user, mailboxID, providerMessageID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return mailbox.ErrNotRecorded
			}
			return err
		}
		if job != "" {
			_, err = tx.ExecContext(ctx,
				`UPDATE sync_jobs SET classified = classified + 1 WHERE user_id = $1 AND id = $2`, user, job)
			if err != nil {
				return err
			}
		}
		// A message that waited in a batch leaves it with its answer.
		rows, err := tx.QueryContext(ctx, `
			UPDATE mailbox_messages SET batch_state = 2
			WHERE user_id = $1 AND mailbox_id = $2 AND provider_message_id = $3 AND batch_state = 1
			RETURNING sync_job_id`, user, mailboxID, providerMessageID)
		if err != nil {
			return err
		}
		deltas, err := jobDeltas(rows, -1, nil)
		if err != nil {
			return err
		}
		return addBatched(ctx, tx, user, deltas)
	})
	if errors.Is(err, mailbox.ErrNotRecorded) {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("sqlrepo: mark classified: %w", err)
	}
	return first, nil
}

// MarkBatched implements mailbox.Repository. Each message's batch state
// moves only forward in time (batch_time), so a redelivered or late event
// changes nothing; a job's batched count moves with its messages' state in
// the same transaction.
func (r *Repo) MarkBatched(ctx context.Context, user string, messageIDs []string, entered bool, at time.Time) error {
	ids := slices.Clone(messageIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	t := micros(at)
	missing := 0
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		deltas := map[string]int64{}
		missing = 0
		for chunk := range slices.Chunk(ids, 500) {
			in := ` AND message_id IN (` + placeholders(3, len(chunk)) + `)`
			args := []any{user, t}
			for _, id := range chunk {
				args = append(args, id)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailbox_messages WHERE user_id = $1 AND message_id IN (`+placeholders(2, len(chunk))+`)`,
				append([]any{user}, args[2:]...)...).Scan(&n); err != nil {
				return err
			}
			// The recorded ones are marked now; the event comes back for
			// the others.
			missing += len(chunk) - n
			var (
				move, rest string
				delta      int64
			)
			if entered {
				// Into a batch: not a classified message; one already in a
				// batch (of an earlier process) only takes the newer time.
				move = `UPDATE mailbox_messages SET batch_state = 1, batch_time = $2
					WHERE user_id = $1 AND batch_time < $2 AND batch_state <> 1 AND classified = 0` + in + ` RETURNING sync_job_id`
				rest = `UPDATE mailbox_messages SET batch_time = $2
					WHERE user_id = $1 AND batch_time < $2 AND batch_state = 1` + in
				delta = 1
			} else {
				move = `UPDATE mailbox_messages SET batch_state = 2, batch_time = $2
					WHERE user_id = $1 AND batch_time < $2 AND batch_state = 1` + in + ` RETURNING sync_job_id`
				// A message whose entry is still on its way: that entry,
				// older, will change nothing.
				rest = `UPDATE mailbox_messages SET batch_state = 2, batch_time = $2
					WHERE user_id = $1 AND batch_time < $2 AND batch_state = 0` + in
				delta = -1
			}
			rows, err := tx.QueryContext(ctx, move, args...)
			if err != nil {
				return err
			}
			if _, err := jobDeltas(rows, delta, deltas); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, rest, args...); err != nil {
				return err
			}
		}
		return addBatched(ctx, tx, user, deltas)
	})
	if err != nil {
		return fmt.Errorf("sqlrepo: mark batched: %w", err)
	}
	if missing > 0 {
		return fmt.Errorf("%w (%d of %d messages)", mailbox.ErrNotRecorded, missing, len(ids))
	}
	return nil
}

// jobDeltas adds delta to into (made when nil) for each sync job id rows
// return, and closes rows.
func jobDeltas(rows *sql.Rows, delta int64, into map[string]int64) (map[string]int64, error) {
	defer rows.Close()
	if into == nil {
		into = map[string]int64{}
	}
	for rows.Next() {
		var job string
		if err := rows.Scan(&job); err != nil {
			return nil, err
		}
		if job != "" {
			into[job] += delta
		}
	}
	return into, rows.Err()
}

// addBatched adds each delta to its sync job's batched count.
func addBatched(ctx context.Context, tx *sql.Tx, user string, deltas map[string]int64) error {
	for job, d := range deltas {
		if d == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sync_jobs SET batched = batched + $3 WHERE user_id = $1 AND id = $2`, user, job, d); err != nil {
			return err
		}
	}
	return nil
}

const jobColumns = `user_id, id, mailbox_id, mode, max_messages, state,
	listed, fetched, published, skipped, failed, classified, batched, error,
	create_time, update_time, end_time, owner, lease_until`

func scanJob(row interface{ Scan(...any) error }) (mailbox.SyncJob, error) {
	var (
		j               mailbox.SyncJob
		mode, state     string
		created, update int64
		end, lease      sql.NullInt64
	)
	err := row.Scan(&j.User, &j.ID, &j.MailboxID, &mode, &j.MaxMessages, &state,
		&j.Progress.Listed, &j.Progress.Fetched, &j.Progress.Published, &j.Progress.Skipped, &j.Progress.Failed,
		&j.Progress.Classified, &j.Progress.Batched, &j.Error, &created, &update, &end, &j.Owner, &lease)
	if err != nil {
		return mailbox.SyncJob{}, err
	}
	j.Mode, j.State = mailbox.SyncMode(mode), mailbox.JobState(state)
	j.CreateTime, j.UpdateTime, j.EndTime = fromMicros(created), fromMicros(update), fromNullMicros(end)
	j.LeaseUntil = fromNullMicros(lease)
	return j, nil
}

// CreateSyncJob implements mailbox.Repository.
func (r *Repo) CreateSyncJob(ctx context.Context, j mailbox.SyncJob) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO sync_jobs (user_id, id, mailbox_id, mode, max_messages, state,
		                       listed, fetched, published, skipped, failed, classified, error,
		                       create_time, update_time, end_time, owner, lease_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		j.User, j.ID, j.MailboxID, string(j.Mode), j.MaxMessages, string(j.State),
		j.Progress.Listed, j.Progress.Fetched, j.Progress.Published, j.Progress.Skipped, j.Progress.Failed,
		j.Progress.Classified, j.Error, micros(j.CreateTime), micros(j.UpdateTime), nullMicros(j.EndTime),
		j.Owner, nullMicros(j.LeaseUntil))
	if sqldb.IsUniqueViolation(err) {
		// Two unique keys: the job's name, and one active job per mailbox.
		if _, gerr := r.GetSyncJob(ctx, j.User, j.ID); gerr == nil {
			return mailbox.ErrAlreadyExists
		}
		return mailbox.ErrJobActive
	}
	if err != nil {
		return fmt.Errorf("sqlrepo: insert sync job: %w", err)
	}
	return nil
}

// UpdateSyncJob implements mailbox.Repository.
func (r *Repo) UpdateSyncJob(ctx context.Context, j mailbox.SyncJob, asOwner string) error {
	res, err := r.db.ExecContext(ctx, `
		UPDATE sync_jobs SET state = $3, listed = $4, fetched = $5, published = $6, skipped = $7,
		                     failed = $8, error = $9, update_time = $10, end_time = $11,
		                     owner = $12, lease_until = $13
		WHERE user_id = $1 AND id = $2 AND owner = $14`,
		j.User, j.ID, string(j.State), j.Progress.Listed, j.Progress.Fetched, j.Progress.Published,
		j.Progress.Skipped, j.Progress.Failed, j.Error, micros(j.UpdateTime), nullMicros(j.EndTime),
		j.Owner, nullMicros(j.LeaseUntil), asOwner)
	return updated(res, err, "update sync job")
}

// GetSyncJob implements mailbox.Repository.
func (r *Repo) GetSyncJob(ctx context.Context, user, id string) (mailbox.SyncJob, error) {
	j, err := scanJob(r.db.QueryRowContext(ctx,
		`SELECT `+jobColumns+` FROM sync_jobs WHERE user_id = $1 AND id = $2`, user, id))
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.SyncJob{}, mailbox.ErrNotFound
	}
	if err != nil {
		return mailbox.SyncJob{}, fmt.Errorf("sqlrepo: get sync job: %w", err)
	}
	return j, nil
}

// ActiveSyncJob implements mailbox.Repository.
func (r *Repo) ActiveSyncJob(ctx context.Context, user, mailboxID string) (mailbox.SyncJob, error) {
	j, err := scanJob(r.db.QueryRowContext(ctx,
		`SELECT `+jobColumns+` FROM sync_jobs WHERE user_id = $1 AND mailbox_id = $2 AND state IN ('PENDING', 'RUNNING')`,
		user, mailboxID))
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.SyncJob{}, mailbox.ErrNotFound
	}
	if err != nil {
		return mailbox.SyncJob{}, fmt.Errorf("sqlrepo: active sync job: %w", err)
	}
	return j, nil
}

// ListSyncJobs implements mailbox.Repository. Across users the jobs are
// ordered by create time, user and id.
func (r *Repo) ListSyncJobs(ctx context.Context, user string, after *mailbox.JobPage, limit int) ([]mailbox.SyncJob, error) {
	if user == mailbox.AllUsers {
		return r.listAllSyncJobs(ctx, after, limit)
	}
	query := `SELECT ` + jobColumns + ` FROM sync_jobs WHERE user_id = $1`
	args := []any{user, limit}
	if after != nil {
		query += ` AND (create_time < $3 OR (create_time = $3 AND id < $4))`
		args = append(args, micros(after.CreateTime), after.ID)
	}
	return r.queryJobs(ctx, query+` ORDER BY create_time DESC, id DESC LIMIT $2`, args...)
}

func (r *Repo) listAllSyncJobs(ctx context.Context, after *mailbox.JobPage, limit int) ([]mailbox.SyncJob, error) {
	query := `SELECT ` + jobColumns + ` FROM sync_jobs`
	args := []any{limit}
	if after != nil {
		query += ` WHERE create_time < $2 OR (create_time = $2 AND (user_id < $3 OR (user_id = $3 AND id < $4)))`
		args = append(args, micros(after.CreateTime), after.User, after.ID)
	}
	return r.queryJobs(ctx, query+` ORDER BY create_time DESC, user_id DESC, id DESC LIMIT $1`, args...)
}

func (r *Repo) queryJobs(ctx context.Context, query string, args ...any) ([]mailbox.SyncJob, error) {
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlrepo: list sync jobs: %w", err)
	}
	defer rows.Close()
	var out []mailbox.SyncJob
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlrepo: list sync jobs: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlrepo: list sync jobs: %w", err)
	}
	return out, nil
}

// ClaimSyncJob implements mailbox.Repository. Candidates are read first,
// then each is taken with an UPDATE that holds only if nobody changed it
// meanwhile, so that two replicas never both take one job.
func (r *Repo) ClaimSyncJob(ctx context.Context, owner string, now, leaseUntil time.Time) (mailbox.SyncJob, bool, error) {
	rows, err := r.db.QueryContext(ctx, `
		SELECT user_id, id, state, owner, COALESCE(lease_until, 0) FROM sync_jobs
		WHERE state = 'PENDING' OR (state = 'RUNNING' AND COALESCE(lease_until, 0) < $1)
		ORDER BY create_time LIMIT 8`, micros(now))
	if err != nil {
		return mailbox.SyncJob{}, false, fmt.Errorf("sqlrepo: claim sync job: %w", err)
	}
	type candidate struct {
		user, id, state, owner string
		lease                  int64
	}
	var cands []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.user, &c.id, &c.state, &c.owner, &c.lease); err != nil {
			rows.Close()
			return mailbox.SyncJob{}, false, fmt.Errorf("sqlrepo: claim sync job: %w", err)
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return mailbox.SyncJob{}, false, fmt.Errorf("sqlrepo: claim sync job: %w", err)
	}
	for _, c := range cands {
		res, err := r.db.ExecContext(ctx, `
			UPDATE sync_jobs SET state = 'RUNNING', owner = $3, lease_until = $4, update_time = $5
			WHERE user_id = $1 AND id = $2 AND state = $6 AND owner = $7 AND COALESCE(lease_until, 0) = $8`,
			c.user, c.id, owner, micros(leaseUntil), micros(now), c.state, c.owner, c.lease)
		if err != nil {
			return mailbox.SyncJob{}, false, fmt.Errorf("sqlrepo: claim sync job: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			continue // another replica was faster
		}
		j, err := r.GetSyncJob(ctx, c.user, c.id)
		if errors.Is(err, mailbox.ErrNotFound) {
			continue
		}
		if err != nil {
			return mailbox.SyncJob{}, false, err
		}
		return j, true, nil
	}
	return mailbox.SyncJob{}, false, nil
}

// CreateAuthState implements mailbox.Repository.
func (r *Repo) CreateAuthState(ctx context.Context, a mailbox.AuthState) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO auth_states (state_hash, user_id, mailbox_id, verifier, expire_time) VALUES ($1, $2, $3, $4, $5)`,
		a.Hash, a.User, a.MailboxID, a.Verifier, micros(a.ExpireTime))
	if sqldb.IsUniqueViolation(err) {
		return mailbox.ErrAlreadyExists
	}
	if err != nil {
		return fmt.Errorf("sqlrepo: insert auth state: %w", err)
	}
	return nil
}

// DeleteExpiredAuthStates implements mailbox.Repository.
func (r *Repo) DeleteExpiredAuthStates(ctx context.Context, before time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM auth_states WHERE expire_time < $1`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("sqlrepo: delete expired auth states: %w", err)
	}
	return res.RowsAffected()
}

// BindAuthState implements mailbox.Repository: the UPDATE binds an unbound
// state once, whatever the concurrency.
func (r *Repo) BindAuthState(ctx context.Context, hash, bindingHash string) (mailbox.AuthState, error) {
	var (
		a   mailbox.AuthState
		exp int64
	)
	err := r.db.QueryRowContext(ctx, `
		UPDATE auth_states SET binding_hash = $2 WHERE state_hash = $1 AND binding_hash = ''
		RETURNING state_hash, user_id, mailbox_id, verifier, expire_time, binding_hash`, hash, bindingHash).
		Scan(&a.Hash, &a.User, &a.MailboxID, &a.Verifier, &exp, &a.BindingHash)
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.AuthState{}, mailbox.ErrNotFound
	}
	if err != nil {
		return mailbox.AuthState{}, fmt.Errorf("sqlrepo: bind auth state: %w", err)
	}
	a.ExpireTime = fromMicros(exp)
	return a, nil
}

// TakeAuthState implements mailbox.Repository: the DELETE … RETURNING
// makes a state usable once, whatever the concurrency.
func (r *Repo) TakeAuthState(ctx context.Context, hash string) (mailbox.AuthState, error) {
	var (
		a   mailbox.AuthState
		exp int64
	)
	err := r.db.QueryRowContext(ctx, `
		DELETE FROM auth_states WHERE state_hash = $1
		RETURNING state_hash, user_id, mailbox_id, verifier, expire_time, binding_hash`, hash).
		Scan(&a.Hash, &a.User, &a.MailboxID, &a.Verifier, &exp, &a.BindingHash)
	if errors.Is(err, sql.ErrNoRows) {
		return mailbox.AuthState{}, mailbox.ErrNotFound
	}
	if err != nil {
		return mailbox.AuthState{}, fmt.Errorf("sqlrepo: take auth state: %w", err)
	}
	a.ExpireTime = fromMicros(exp)
	return a, nil
}
