// Package sqlite is the store's repository on an embedded SQLite file
// (modernc.org/sqlite through database/sql), for the zero-setup run. It
// behaves as package postgres does and passes the same contract suite.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo/listsql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the goose migrations of the store's SQLite schema.
func Migrations() fs.FS { return sqldb.Sub(migrations, "migrations") }

// Repository implements mailstore.Repository on a SQLite database.
type Repository struct {
	db  *sql.DB
	now func() time.Time
	// writes serializes this process's write transactions. SQLite has one
	// writer at a time anyway; waiting here is immediate, while waiting for
	// SQLite's lock goes through its busy handler, which sleeps and polls.
	writes sync.Mutex
}

// New returns a repository on db, whose database has the schema of
// Migrations applied.
func New(db *sql.DB) *Repository {
	return &Repository{db: db, now: time.Now}
}

// The upserts' WHERE clauses skip rows that would not change, so that a
// redelivered batch writes nothing and leaves update_time alone.
const upsertReceived = `
INSERT INTO store_messages (user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, body, received, state,
    create_time, update_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, 'pending', $14, $14)
ON CONFLICT (user_id, id) DO UPDATE SET
    mailbox_id = excluded.mailbox_id,
    provider_message_id = excluded.provider_message_id,
    subject = excluded.subject,
    sender = excluded.sender,
    sender_address = excluded.sender_address,
    recipients = excluded.recipients,
    received_time = excluded.received_time,
    snippet = excluded.snippet,
    size_bytes = excluded.size_bytes,
    attachment_names = excluded.attachment_names,
    body = excluded.body,
    received = 1,
    update_time = excluded.update_time
WHERE NOT store_messages.received
   OR (store_messages.mailbox_id, store_messages.provider_message_id, store_messages.subject, store_messages.sender,
       store_messages.sender_address, store_messages.recipients, store_messages.received_time, store_messages.snippet,
       store_messages.size_bytes, store_messages.attachment_names, store_messages.body)
      IS NOT
      (excluded.mailbox_id, excluded.provider_message_id, excluded.subject, excluded.sender,
       excluded.sender_address, excluded.recipients, excluded.received_time, excluded.snippet,
       excluded.size_bytes, excluded.attachment_names, excluded.body)`

// A verdict fills the metadata only while MailReceived has not been stored,
// and replaces the classification only with a later one.
const upsertClassified = `
INSERT INTO store_messages (user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, state,
    category, confidence, priority, needs_reply, reason, source, rule, model, classify_time,
    create_time, update_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'classified',
    $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22)
ON CONFLICT (user_id, id) DO UPDATE SET
    mailbox_id = CASE WHEN store_messages.received THEN store_messages.mailbox_id ELSE excluded.mailbox_id END,
    provider_message_id = CASE WHEN store_messages.received THEN store_messages.provider_message_id ELSE excluded.provider_message_id END,
    subject = CASE WHEN store_messages.received THEN store_messages.subject ELSE excluded.subject END,
    sender = CASE WHEN store_messages.received THEN store_messages.sender ELSE excluded.sender END,
    sender_address = CASE WHEN store_messages.received THEN store_messages.sender_address ELSE excluded.sender_address END,
    recipients = CASE WHEN store_messages.received THEN store_messages.recipients ELSE excluded.recipients END,
    received_time = CASE WHEN store_messages.received THEN store_messages.received_time ELSE excluded.received_time END,
    snippet = CASE WHEN store_messages.received THEN store_messages.snippet ELSE excluded.snippet END,
    size_bytes = CASE WHEN store_messages.received THEN store_messages.size_bytes ELSE excluded.size_bytes END,
    attachment_names = CASE WHEN store_messages.received THEN store_messages.attachment_names ELSE excluded.attachment_names END,
    state = 'classified',
    category = excluded.category,
    confidence = excluded.confidence,
    priority = excluded.priority,
    needs_reply = excluded.needs_reply,
    reason = excluded.reason,
    source = excluded.source,
    rule = excluded.rule,
    model = excluded.model,
    classify_time = excluded.classify_time,
    update_time = excluded.update_time
WHERE store_messages.classify_time IS NULL OR store_messages.classify_time < excluded.classify_time`

const insertUsage = `
INSERT INTO store_classification_usage (user_id, message_id, classify_time, source,
    prompt_tokens, completion_tokens, cached_prompt_tokens, cost_micros, requests, create_time, models)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (user_id, message_id, classify_time) DO NOTHING`

// A dead letter fails a message that is not classified; of several, the
// latest failure's reason stays.
const markFailed = `
UPDATE store_messages SET state = 'failed', failure_reason = $3, fail_time = $4, update_time = $5
WHERE user_id = $1 AND id = $2 AND state <> 'classified' AND (fail_time IS NULL OR fail_time < $4)`

// deletions returns when each of users that was deleted was deleted: their
// rows ingested at or before then are dropped. SQLite has one writer at a
// time, so what this reads inside the write transaction stays true until it
// commits.
func deletions(ctx context.Context, tx *sql.Tx, users []string) (map[string]int64, error) {
	var out map[string]int64
	stmt, err := tx.PrepareContext(ctx, "SELECT delete_time FROM store_deleted_users WHERE user_id = $1")
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		var at int64
		err := stmt.QueryRowContext(ctx, u).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]int64{}
		}
		out[u] = at
	}
	return out, nil
}

// dropped reports whether a row of user ingested at ingest falls under the
// user's deletion.
func dropped(deleted map[string]int64, user string, ingest time.Time) bool {
	at, ok := deleted[user]
	return ok && at >= ingest.UnixMicro()
}

// users returns the user of each item.
func users[T any](items []T, user func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = user(it)
	}
	return out
}

// write runs fn in a write transaction with the deletions of the users
// involved.
func (r *Repository) write(ctx context.Context, what string, who []string, fn func(tx *sql.Tx, deleted map[string]int64, now int64) error) error {
	r.writes.Lock()
	defer r.writes.Unlock()
	now := r.now().UnixMicro()
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		deleted, err := deletions(ctx, tx, who)
		if err != nil {
			return err
		}
		return fn(tx, deleted, now)
	})
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return nil
}

func saveReceived(ctx context.Context, tx *sql.Tx, msgs []mailstore.Message, deleted map[string]int64, now int64) error {
	stmt, err := tx.PrepareContext(ctx, upsertReceived)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, m := range msgs {
		if dropped(deleted, m.User, m.IngestTime) {
			continue
		}
		_, err := stmt.ExecContext(ctx, m.User, m.ID, m.MailboxID, m.ProviderMessageID, m.Subject, m.From, m.FromAddress,
			jsonList(m.To), m.ReceivedTime.UnixMicro(), m.Snippet, m.SizeBytes, jsonList(m.AttachmentNames), m.Body, now)
		if err != nil {
			return err
		}
	}
	return nil
}

// SaveReceived implements mailstore.Repository.
func (r *Repository) SaveReceived(ctx context.Context, msgs []mailstore.Message) error {
	msgs = mailstore.DistinctMessages(msgs)
	if len(msgs) == 0 {
		return nil
	}
	return r.write(ctx, "save received", users(msgs, func(m mailstore.Message) string { return m.User }),
		func(tx *sql.Tx, deleted map[string]int64, now int64) error {
			return saveReceived(ctx, tx, msgs, deleted, now)
		})
}

// SaveClassified implements mailstore.Repository.
func (r *Repository) SaveClassified(ctx context.Context, verdicts []mailstore.Classified) error {
	latest := mailstore.LatestVerdicts(verdicts)
	if len(latest) == 0 {
		return nil
	}
	who := users(latest, func(v mailstore.Classified) string { return v.Message.User })
	return r.write(ctx, "save classified", who, func(tx *sql.Tx, deleted map[string]int64, now int64) error {
		stmt, err := tx.PrepareContext(ctx, upsertClassified)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, v := range latest {
			m, c := v.Message, v.Message.Classification
			if dropped(deleted, m.User, m.IngestTime) {
				continue
			}
			_, err := stmt.ExecContext(ctx, m.User, m.ID, m.MailboxID, m.ProviderMessageID, m.Subject, m.From, m.FromAddress,
				jsonList(m.To), m.ReceivedTime.UnixMicro(), m.Snippet, m.SizeBytes, jsonList(m.AttachmentNames),
				c.Category, float64(c.Confidence), string(c.Priority), c.NeedsReply, c.Reason, string(c.Source), c.Rule, c.Model,
				c.ClassifyTime.UnixMicro(), now)
			if err != nil {
				return err
			}
		}
		ustmt, err := tx.PrepareContext(ctx, insertUsage)
		if err != nil {
			return err
		}
		defer ustmt.Close()
		for _, v := range mailstore.DistinctVerdicts(verdicts) {
			m, c, u := v.Message, v.Message.Classification, v.Cost
			if dropped(deleted, m.User, m.IngestTime) {
				continue
			}
			_, err := ustmt.ExecContext(ctx, m.User, m.ID, c.ClassifyTime.UnixMicro(), string(c.Source),
				u.PromptTokens, u.CompletionTokens, u.CachedPromptTokens, u.CostMicros, u.Requests, now, mailstore.ModelsJSON(u))
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// SaveFailed implements mailstore.Repository.
func (r *Repository) SaveFailed(ctx context.Context, failures []mailstore.Failed) error {
	latest := mailstore.LatestFailures(failures)
	if len(latest) == 0 {
		return nil
	}
	msgs := make([]mailstore.Message, len(latest))
	for i, f := range latest {
		msgs[i] = f.Message
	}
	return r.write(ctx, "save failed", users(msgs, func(m mailstore.Message) string { return m.User }),
		func(tx *sql.Tx, deleted map[string]int64, now int64) error {
			if err := saveReceived(ctx, tx, msgs, deleted, now); err != nil {
				return err
			}
			stmt, err := tx.PrepareContext(ctx, markFailed)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, f := range latest {
				if dropped(deleted, f.Message.User, f.Message.IngestTime) {
					continue
				}
				if _, err := stmt.ExecContext(ctx, f.Message.User, f.Message.ID, f.Reason, f.FailTime.UnixMicro(), now); err != nil {
					return err
				}
			}
			// The failed attempts were paid for: a ledger record each.
			ustmt, err := tx.PrepareContext(ctx, insertUsage)
			if err != nil {
				return err
			}
			defer ustmt.Close()
			for _, f := range mailstore.DistinctFailures(failures) {
				m, u := f.Message, f.Cost
				if u.Requests == 0 || dropped(deleted, m.User, m.IngestTime) {
					continue
				}
				_, err := ustmt.ExecContext(ctx, m.User, m.ID, f.FailTime.UnixMicro(), string(mailstore.SourceDeadLetter),
					u.PromptTokens, u.CompletionTokens, u.CachedPromptTokens, u.CostMicros, u.Requests, now, mailstore.ModelsJSON(u))
				if err != nil {
					return err
				}
			}
			return nil
		})
}

func jsonList(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s) // []string always marshals
	return string(b)
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

const messageColumns = `user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, body, state,
    category, confidence, priority, needs_reply, reason, source, rule, model, classify_time,
    create_time, update_time`

type scanner interface{ Scan(dest ...any) error }

func scanMessage(row scanner) (mailstore.Message, error) {
	var (
		m                      mailstore.Message
		to, attachments, state string
		received, create, upd  int64
		category, priority     sql.NullString
		reason, source         sql.NullString
		rule, model            sql.NullString
		confidence             sql.NullFloat64
		needsReply             sql.NullBool
		classifyTime           sql.NullInt64
	)
	err := row.Scan(&m.User, &m.ID, &m.MailboxID, &m.ProviderMessageID, &m.Subject, &m.From, &m.FromAddress,
		&to, &received, &m.Snippet, &m.SizeBytes, &attachments, &m.Body, &state,
		&category, &confidence, &priority, &needsReply, &reason, &source, &rule, &model, &classifyTime,
		&create, &upd)
	if err != nil {
		return mailstore.Message{}, err
	}
	if err := json.Unmarshal([]byte(to), &m.To); err != nil {
		return mailstore.Message{}, fmt.Errorf("recipients: %w", err)
	}
	if err := json.Unmarshal([]byte(attachments), &m.AttachmentNames); err != nil {
		return mailstore.Message{}, fmt.Errorf("attachment names: %w", err)
	}
	m.ReceivedTime = fromMicros(received)
	m.CreateTime = fromMicros(create)
	m.UpdateTime = fromMicros(upd)
	m.State = mailstore.State(state)
	if category.Valid {
		m.Classification = &mailstore.Classification{
			Category:   category.String,
			Confidence: float32(confidence.Float64),
			Priority:   mailstore.Priority(priority.String),
			NeedsReply: needsReply.Bool,
			Reason:     reason.String,
			Source:     mailstore.Source(source.String),
			Rule:       rule.String,
			Model:      model.String,
		}
		if classifyTime.Valid {
			m.Classification.ClassifyTime = fromMicros(classifyTime.Int64)
		}
	}
	return m, nil
}

// list writes the query of ListMessages: times are stored as Unix
// microseconds, booleans as 0 and 1, and a list never returns bodies
// (GetMessage does).
var list = listsql.Dialect{
	Name:    "sqlite",
	Columns: strings.Replace(messageColumns, "body,", "'' AS body,", 1),
	Time:    func(t time.Time) any { return t.UnixMicro() },
	NeedsReply: func(b bool) string {
		if b {
			return "needs_reply = 1"
		}
		return "needs_reply = 0"
	},
}

// ListMessages implements mailstore.Repository (see listsql).
func (r *Repository) ListMessages(ctx context.Context, q mailstore.ListQuery) ([]mailstore.Message, error) {
	query, args, err := list.Query(q)
	if err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list messages: %w", err)
	}
	defer rows.Close()
	var msgs []mailstore.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list messages: %w", err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list messages: %w", err)
	}
	return msgs, nil
}

// GetMessage implements mailstore.Repository.
func (r *Repository) GetMessage(ctx context.Context, user, id string) (mailstore.Message, error) {
	row := r.db.QueryRowContext(ctx, "SELECT "+messageColumns+" FROM store_messages WHERE user_id = $1 AND id = $2", user, id)
	m, err := scanMessage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return mailstore.Message{}, mailstore.ErrNotFound
	}
	if err != nil {
		return mailstore.Message{}, fmt.Errorf("sqlite: get message: %w", err)
	}
	return m, nil
}

// Stats implements mailstore.Repository. (Its queries do not share a
// transaction: a SQLite transaction here would take the write lock.)
func (r *Repository) Stats(ctx context.Context, user string) (mailstore.Stats, error) {
	var s mailstore.Stats
	err := r.db.QueryRowContext(ctx, `
SELECT count(*),
       count(*) FILTER (WHERE state = 'classified'),
       count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed')
FROM store_messages WHERE user_id = $1`, user).Scan(&s.Total, &s.Classified, &s.Pending, &s.Failed)
	if err != nil {
		return mailstore.Stats{}, fmt.Errorf("sqlite: stats: %w", err)
	}
	s.Categories, err = collect(ctx, r.db, `
SELECT category, count(*) FROM store_messages
WHERE user_id = $1 AND state = 'classified'
GROUP BY category ORDER BY count(*) DESC, category`, user, func(sc scanner) (mailstore.CategoryCount, error) {
		var c mailstore.CategoryCount
		return c, sc.Scan(&c.Category, &c.Count)
	})
	if err != nil {
		return mailstore.Stats{}, fmt.Errorf("sqlite: stats: %w", err)
	}
	s.Mailboxes, err = collect(ctx, r.db, `
SELECT mailbox_id, count(*), count(*) FILTER (WHERE state = 'classified') FROM store_messages
WHERE user_id = $1
GROUP BY mailbox_id ORDER BY mailbox_id`, user, func(sc scanner) (mailstore.MailboxCount, error) {
		var c mailstore.MailboxCount
		return c, sc.Scan(&c.MailboxID, &c.Count, &c.Classified)
	})
	if err != nil {
		return mailstore.Stats{}, fmt.Errorf("sqlite: stats: %w", err)
	}
	return s, nil
}

func collect[T any](ctx context.Context, db *sql.DB, query string, user string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Usage implements mailstore.Repository.
func (r *Repository) Usage(ctx context.Context, user string) (mailstore.Usage, error) {
	var (
		u     mailstore.Usage
		first sql.NullInt64
	)
	err := r.db.QueryRowContext(ctx, `
SELECT count(*) FILTER (WHERE source <> 'dead_letter'),
       count(*) FILTER (WHERE source = 'rules'),
       count(*) FILTER (WHERE source = 'llm'),
       count(*) FILTER (WHERE source = 'cache'),
       count(*) FILTER (WHERE source = 'learned'),
       count(*) FILTER (WHERE source = 'user'),
       count(*) FILTER (WHERE source = 'dead_letter'),
       COALESCE(sum(requests), 0),
       COALESCE(sum(prompt_tokens), 0),
       COALESCE(sum(completion_tokens), 0),
       COALESCE(sum(cached_prompt_tokens), 0),
       COALESCE(sum(cost_micros), 0),
       min(classify_time)
FROM store_classification_usage WHERE user_id = $1`, user).Scan(
		&u.Classifications, &u.RuleClassifications, &u.LLMClassifications, &u.CacheClassifications,
		&u.LearnedClassifications, &u.UserClassifications, &u.DeadLetters,
		&u.Requests, &u.PromptTokens, &u.CompletionTokens, &u.CachedPromptTokens, &u.CostMicros, &first)
	if err != nil {
		return mailstore.Usage{}, fmt.Errorf("sqlite: usage: %w", err)
	}
	rows, err := r.db.QueryContext(ctx, `
SELECT json_extract(j.value, '$.model'),
       COALESCE(sum(json_extract(j.value, '$.requests')), 0),
       COALESCE(sum(json_extract(j.value, '$.prompt_tokens')), 0),
       COALESCE(sum(json_extract(j.value, '$.cached_prompt_tokens')), 0),
       COALESCE(sum(json_extract(j.value, '$.completion_tokens')), 0),
       COALESCE(sum(json_extract(j.value, '$.cost_micros')), 0)
FROM store_classification_usage u, json_each(u.models) j
WHERE u.user_id = $1
GROUP BY 1 ORDER BY 1`, user)
	if err != nil {
		return mailstore.Usage{}, fmt.Errorf("sqlite: usage by model: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m mailstore.ModelCost
		if err := rows.Scan(&m.Model, &m.Requests, &m.PromptTokens, &m.CachedPromptTokens, &m.CompletionTokens, &m.CostMicros); err != nil {
			return mailstore.Usage{}, fmt.Errorf("sqlite: usage by model: %w", err)
		}
		u.Models = append(u.Models, m)
	}
	if err := rows.Err(); err != nil {
		return mailstore.Usage{}, fmt.Errorf("sqlite: usage by model: %w", err)
	}
	if first.Valid {
		u.StartTime = fromMicros(first.Int64)
	}
	return u, nil
}

// MarkUserDeleted implements mailstore.Repository. Write transactions take
// SQLite's one write lock at BEGIN, so those in flight have committed when
// this one starts, and later ones see the deletion.
func (r *Repository) MarkUserDeleted(ctx context.Context, user string, at time.Time) error {
	r.writes.Lock()
	defer r.writes.Unlock()
	_, err := r.db.ExecContext(ctx, `
INSERT INTO store_deleted_users (user_id, delete_time) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET delete_time = max(delete_time, excluded.delete_time)`, user, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlite: mark user deleted: %w", err)
	}
	return nil
}

// DeleteMessages implements mailstore.Repository: one statement (one short
// transaction) deleting by primary key the rows that an index finds.
func (r *Repository) DeleteMessages(ctx context.Context, sel mailstore.Selection, limit int) (int64, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	var (
		res sql.Result
		err error
	)
	if sel.User != "" {
		res, err = r.db.ExecContext(ctx, `
DELETE FROM store_messages WHERE user_id = $1 AND id IN (
    SELECT id FROM store_messages WHERE user_id = $1 LIMIT $2)`, sel.User, limit)
	} else {
		res, err = r.db.ExecContext(ctx, `
DELETE FROM store_messages WHERE (user_id, id) IN (
    SELECT user_id, id FROM store_messages WHERE received_time < $1 ORDER BY received_time LIMIT $2)`,
			sel.Before.UnixMicro(), limit)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete messages: %w", err)
	}
	return res.RowsAffected()
}

// DeleteUsage implements mailstore.Repository.
func (r *Repository) DeleteUsage(ctx context.Context, sel mailstore.Selection, limit int) (int64, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	var (
		res sql.Result
		err error
	)
	if sel.User != "" {
		res, err = r.db.ExecContext(ctx, `
DELETE FROM store_classification_usage WHERE user_id = $1 AND (message_id, classify_time) IN (
    SELECT message_id, classify_time FROM store_classification_usage WHERE user_id = $1 LIMIT $2)`, sel.User, limit)
	} else {
		res, err = r.db.ExecContext(ctx, `
DELETE FROM store_classification_usage WHERE (user_id, message_id, classify_time) IN (
    SELECT user_id, message_id, classify_time FROM store_classification_usage
    WHERE classify_time < $1 ORDER BY classify_time LIMIT $2)`, sel.Before.UnixMicro(), limit)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete usage: %w", err)
	}
	return res.RowsAffected()
}

// DeleteTombstones implements mailstore.Repository.
func (r *Repository) DeleteTombstones(ctx context.Context, before time.Time) (int64, error) {
	r.writes.Lock()
	defer r.writes.Unlock()
	res, err := r.db.ExecContext(ctx, "DELETE FROM store_deleted_users WHERE delete_time < $1", before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete tombstones: %w", err)
	}
	return res.RowsAffected()
}
