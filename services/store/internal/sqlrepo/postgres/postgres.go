// Package postgres is the store's repository on PostgreSQL, through pgx's
// native interface (pgxpool). A batch of events is one transaction and one
// round trip: its rows travel as one array per column and are unnested into
// a single INSERT … ON CONFLICT statement.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo/listsql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the goose migrations of the store's Postgres schema.
func Migrations() fs.FS { return sqldb.Sub(migrations, "migrations") }

// Repository implements mailstore.Repository on a pgx pool.
type Repository struct {
	pool *pgxpool.Pool
}

// New returns a repository on pool, whose database has the schema of
// Migrations applied.
func New(pool *pgxpool.Pool) *Repository {
	return &Repository{pool: pool}
}

// writeLock is the advisory lock between writes and MarkUserDeleted: every
// write transaction holds it shared, MarkUserDeleted takes it exclusively
// while it records a deletion. So a deletion waits for the writes in flight
// (whose rows the deletes that follow then see), and a write that starts
// later sees the deletion and drops that user's rows.
const writeLock = int64(0x6d61696c726f6f6d) // "mailroom"

const lockShared = `SELECT pg_advisory_xact_lock_shared($1)`

// A batch's rows travel as one array per column and are unnested into one
// INSERT … SELECT … ON CONFLICT statement: one statement per batch instead
// of one per row. Lists travel as array literals (arrays of arrays must be
// rectangular in Postgres).
const receivedRows = `
unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::timestamptz[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::timestamptz[])
    AS v(user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
         recipients, received_time, snippet, size_bytes, attachment_names, body, ingest_time)`

// notDeleted drops the rows of users deleted at or after the row's ingest
// time.
const notDeleted = `
NOT EXISTS (SELECT FROM store_deleted_users d WHERE d.user_id = v.user_id AND d.delete_time >= v.ingest_time)`

// The upserts' WHERE clauses skip rows that would not change, so that a
// redelivered batch writes nothing and leaves update_time alone. Rows are
// locked in key order (the ORDER BY), so that concurrent batches cannot
// deadlock.
const upsertReceived = `
INSERT INTO store_messages AS m (user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, body, received, state)
SELECT v.user_id, v.id, v.mailbox_id, v.provider_message_id, v.subject, v.sender, v.sender_address,
    v.recipients::text[], v.received_time, v.snippet, v.size_bytes, v.attachment_names::text[], v.body, true, 'pending'
FROM ` + receivedRows + `
WHERE ` + notDeleted + `
ORDER BY v.user_id COLLATE "C", v.id COLLATE "C"
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
    received = true,
    update_time = now()
WHERE NOT m.received
   OR (m.mailbox_id, m.provider_message_id, m.subject, m.sender, m.sender_address, m.recipients,
       m.received_time, m.snippet, m.size_bytes, m.attachment_names, m.body)
      IS DISTINCT FROM
      (excluded.mailbox_id, excluded.provider_message_id, excluded.subject, excluded.sender,
       excluded.sender_address, excluded.recipients, excluded.received_time, excluded.snippet,
       excluded.size_bytes, excluded.attachment_names, excluded.body)`

// A verdict fills the metadata only while MailReceived has not been stored,
// and replaces the classification only with a later one.
const upsertClassified = `
INSERT INTO store_messages AS m (user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, state,
    category, confidence, priority, needs_reply, reason, source, rule, model, classify_time)
SELECT v.user_id, v.id, v.mailbox_id, v.provider_message_id, v.subject, v.sender, v.sender_address,
    v.recipients::text[], v.received_time, v.snippet, v.size_bytes, v.attachment_names::text[], 'classified',
    v.category, v.confidence, v.priority, v.needs_reply, v.reason, v.source, v.rule, v.model, v.classify_time
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::timestamptz[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::timestamptz[],
    $15::text[], $16::real[], $17::text[], $18::boolean[], $19::text[], $20::text[], $21::text[],
    $22::text[], $23::timestamptz[])
    AS v(user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
         recipients, received_time, snippet, size_bytes, attachment_names, body, ingest_time,
         category, confidence, priority, needs_reply, reason, source, rule, model, classify_time)
WHERE ` + notDeleted + `
ORDER BY v.user_id COLLATE "C", v.id COLLATE "C"
ON CONFLICT (user_id, id) DO UPDATE SET
    mailbox_id = CASE WHEN m.received THEN m.mailbox_id ELSE excluded.mailbox_id END,
    provider_message_id = CASE WHEN m.received THEN m.provider_message_id ELSE excluded.provider_message_id END,
    subject = CASE WHEN m.received THEN m.subject ELSE excluded.subject END,
    sender = CASE WHEN m.received THEN m.sender ELSE excluded.sender END,
    sender_address = CASE WHEN m.received THEN m.sender_address ELSE excluded.sender_address END,
    recipients = CASE WHEN m.received THEN m.recipients ELSE excluded.recipients END,
    received_time = CASE WHEN m.received THEN m.received_time ELSE excluded.received_time END,
    snippet = CASE WHEN m.received THEN m.snippet ELSE excluded.snippet END,
    size_bytes = CASE WHEN m.received THEN m.size_bytes ELSE excluded.size_bytes END,
    attachment_names = CASE WHEN m.received THEN m.attachment_names ELSE excluded.attachment_names END,
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
    update_time = now()
WHERE m.classify_time IS NULL OR m.classify_time < excluded.classify_time`

const insertUsage = `
INSERT INTO store_classification_usage AS u (user_id, message_id, classify_time, source,
    prompt_tokens, completion_tokens, cached_prompt_tokens, cost_micros, requests, models)
SELECT v.user_id, v.message_id, v.classify_time, v.source,
    v.prompt_tokens, v.completion_tokens, v.cached_prompt_tokens, v.cost_micros, v.requests, v.models::jsonb
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
    $8::bigint[], $9::bigint[], $10::timestamptz[], $11::text[])
    AS v(user_id, message_id, classify_time, source, prompt_tokens, completion_tokens, cached_prompt_tokens,
         cost_micros, requests, ingest_time, models)
WHERE ` + notDeleted + `
ORDER BY v.user_id COLLATE "C", v.message_id COLLATE "C", v.classify_time
ON CONFLICT (user_id, message_id, classify_time) DO NOTHING`

// A dead letter fails a message that is not classified; of several, the
// latest failure's reason stays.
const markFailed = `
UPDATE store_messages AS m SET state = 'failed', failure_reason = v.reason, fail_time = v.fail_time, update_time = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS v(user_id, id, reason, fail_time)
WHERE m.user_id = v.user_id AND m.id = v.id AND m.state <> 'classified'
  AND (m.fail_time IS NULL OR m.fail_time < v.fail_time)`

// columns holds a batch's rows as one slice per column, in unnest's order.
type columns struct {
	user, id, mailbox, providerID, subject, sender, senderAddress, recipients []string
	received                                                                  []time.Time
	snippet                                                                   []string
	size                                                                      []int64
	attachments, body                                                         []string
	ingest                                                                    []time.Time
}

func (c *columns) add(m mailstore.Message) {
	c.user = append(c.user, m.User)
	c.id = append(c.id, m.ID)
	c.mailbox = append(c.mailbox, m.MailboxID)
	c.providerID = append(c.providerID, m.ProviderMessageID)
	c.subject = append(c.subject, m.Subject)
	c.sender = append(c.sender, m.From)
	c.senderAddress = append(c.senderAddress, m.FromAddress)
	c.recipients = append(c.recipients, arrayLiteral(m.To))
	c.received = append(c.received, m.ReceivedTime)
	c.snippet = append(c.snippet, m.Snippet)
	c.size = append(c.size, m.SizeBytes)
	c.attachments = append(c.attachments, arrayLiteral(m.AttachmentNames))
	c.body = append(c.body, m.Body)
	c.ingest = append(c.ingest, m.IngestTime)
}

func (c *columns) args() []any {
	return []any{c.user, c.id, c.mailbox, c.providerID, c.subject, c.sender, c.senderAddress,
		c.recipients, c.received, c.snippet, c.size, c.attachments, c.body, c.ingest}
}

// arrayLiteral writes s as a Postgres text[] literal: every element quoted,
// backslashes and quotes escaped.
func arrayLiteral(s []string) string {
	if len(s) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range e {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// ledger holds usage ledger rows as one slice per column, in insertUsage's
// order.
type ledger struct {
	user, id, source                          []string
	classifyTime, ingest                      []time.Time
	prompt, completion, cached, cost, request []int64
	models                                    []string
}

func (l *ledger) add(m mailstore.Message, at time.Time, source mailstore.Source, u mailstore.Cost) {
	l.user = append(l.user, m.User)
	l.id = append(l.id, m.ID)
	l.classifyTime = append(l.classifyTime, at)
	l.source = append(l.source, string(source))
	l.prompt = append(l.prompt, u.PromptTokens)
	l.completion = append(l.completion, u.CompletionTokens)
	l.cached = append(l.cached, u.CachedPromptTokens)
	l.cost = append(l.cost, u.CostMicros)
	l.request = append(l.request, u.Requests)
	l.ingest = append(l.ingest, m.IngestTime)
	l.models = append(l.models, mailstore.ModelsJSON(u))
}

func (l *ledger) args() []any {
	return []any{l.user, l.id, l.classifyTime, l.source, l.prompt, l.completion, l.cached, l.cost, l.request, l.ingest, l.models}
}

// SaveReceived implements mailstore.Repository.
func (r *Repository) SaveReceived(ctx context.Context, msgs []mailstore.Message) error {
	msgs = mailstore.DistinctMessages(msgs)
	if len(msgs) == 0 {
		return nil
	}
	var c columns
	for _, m := range msgs {
		c.add(m)
	}
	b := &pgx.Batch{}
	b.Queue(lockShared, writeLock)
	b.Queue(upsertReceived, c.args()...)
	return r.send(ctx, "save received", b)
}

// SaveClassified implements mailstore.Repository.
func (r *Repository) SaveClassified(ctx context.Context, verdicts []mailstore.Classified) error {
	latest := mailstore.LatestVerdicts(verdicts)
	if len(latest) == 0 {
		return nil
	}
	var (
		c                                             columns
		category, priority, reason, source, rule, mdl []string
		confidence                                    []float32
		needsReply                                    []bool
		classifyTime                                  []time.Time
	)
	for _, v := range latest {
		m := v.Message
		m.Body = ""
		c.add(m)
		cl := v.Message.Classification
		category = append(category, cl.Category)
		confidence = append(confidence, cl.Confidence)
		priority = append(priority, string(cl.Priority))
		needsReply = append(needsReply, cl.NeedsReply)
		reason = append(reason, cl.Reason)
		source = append(source, string(cl.Source))
		rule = append(rule, cl.Rule)
		mdl = append(mdl, cl.Model)
		classifyTime = append(classifyTime, cl.ClassifyTime)
	}
	var l ledger
	for _, v := range mailstore.DistinctVerdicts(verdicts) {
		l.add(v.Message, v.Message.Classification.ClassifyTime, v.Message.Classification.Source, v.Cost)
	}
	b := &pgx.Batch{}
	b.Queue(lockShared, writeLock)
	b.Queue(upsertClassified, append(c.args(),
		category, confidence, priority, needsReply, reason, source, rule, mdl, classifyTime)...)
	b.Queue(insertUsage, l.args()...)
	return r.send(ctx, "save classified", b)
}

// SaveFailed implements mailstore.Repository.
func (r *Repository) SaveFailed(ctx context.Context, failures []mailstore.Failed) error {
	latest := mailstore.LatestFailures(failures)
	if len(latest) == 0 {
		return nil
	}
	var (
		c                columns
		user, id, reason []string
		failTime         []time.Time
	)
	for _, f := range latest {
		c.add(f.Message)
		user = append(user, f.Message.User)
		id = append(id, f.Message.ID)
		reason = append(reason, f.Reason)
		failTime = append(failTime, f.FailTime)
	}
	var l ledger
	for _, f := range mailstore.DistinctFailures(failures) {
		if f.Cost.Requests > 0 {
			l.add(f.Message, f.FailTime, mailstore.SourceDeadLetter, f.Cost)
		}
	}
	b := &pgx.Batch{}
	b.Queue(lockShared, writeLock)
	b.Queue(upsertReceived, c.args()...)
	b.Queue(markFailed, user, id, reason, failTime)
	if len(l.user) > 0 {
		b.Queue(insertUsage, l.args()...)
	}
	return r.send(ctx, "save failed", b)
}

// send sends b in one round trip. The statements of a batch outside an
// explicit transaction run in one implicit transaction (the extended
// protocol's pipeline up to its Sync): all of them commit or none does, and
// the commit has happened when send returns nil.
func (r *Repository) send(ctx context.Context, what string, b *pgx.Batch) error {
	if err := r.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	return nil
}

const messageColumns = `user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, body, state,
    category, confidence, priority, needs_reply, reason, source, rule, model, classify_time,
    create_time, update_time`

func scanMessage(row pgx.Row) (mailstore.Message, error) {
	var (
		m            mailstore.Message
		state        string
		category     *string
		confidence   *float32
		priority     *string
		needsReply   *bool
		reason       *string
		source       *string
		rule         *string
		model        *string
		classifyTime *time.Time
	)
	err := row.Scan(&m.User, &m.ID, &m.MailboxID, &m.ProviderMessageID, &m.Subject, &m.From, &m.FromAddress,
		&m.To, &m.ReceivedTime, &m.Snippet, &m.SizeBytes, &m.AttachmentNames, &m.Body, &state,
		&category, &confidence, &priority, &needsReply, &reason, &source, &rule, &model, &classifyTime,
		&m.CreateTime, &m.UpdateTime)
	if err != nil {
		return mailstore.Message{}, err
	}
	m.State = mailstore.State(state)
	m.ReceivedTime = m.ReceivedTime.UTC()
	m.CreateTime = m.CreateTime.UTC()
	m.UpdateTime = m.UpdateTime.UTC()
	if category != nil {
		c := &mailstore.Classification{
			Category:   *category,
			Confidence: deref(confidence),
			Priority:   mailstore.Priority(deref(priority)),
			NeedsReply: deref(needsReply),
			Reason:     deref(reason),
			Source:     mailstore.Source(deref(source)),
			Rule:       deref(rule),
			Model:      deref(model),
		}
		if classifyTime != nil {
			c.ClassifyTime = classifyTime.UTC()
		}
		m.Classification = c
	}
	return m, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// list writes the query of ListMessages. Its columns are messageColumns
// without the body: a list never returns bodies (GetMessage does), and
// leaving them out keeps their TOAST pages unread.
var list = listsql.Dialect{
	Name:    "postgres",
	Columns: strings.Replace(messageColumns, "body,", "''::text AS body,", 1),
	Time:    func(t time.Time) any { return t },
	NeedsReply: func(b bool) string {
		if b {
			return "needs_reply"
		}
		return "needs_reply = false"
	},
}

// listSQL returns the query of ListMessages and its arguments.
func listSQL(q mailstore.ListQuery) (string, []any, error) { return list.Query(q) }

// ListMessages implements mailstore.Repository (see listsql).
func (r *Repository) ListMessages(ctx context.Context, q mailstore.ListQuery) ([]mailstore.Message, error) {
	query, args, err := listSQL(q)
	if err != nil {
		return nil, err
	}
	rows, err := r.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mailstore.Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list messages: %w", err)
	}
	return msgs, nil
}

// GetMessage implements mailstore.Repository.
func (r *Repository) GetMessage(ctx context.Context, user, id string) (mailstore.Message, error) {
	row := r.pool.QueryRow(ctx, "SELECT "+messageColumns+" FROM store_messages WHERE user_id = $1 AND id = $2", user, id)
	m, err := scanMessage(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return mailstore.Message{}, mailstore.ErrNotFound
	}
	if err != nil {
		return mailstore.Message{}, fmt.Errorf("postgres: get message: %w", err)
	}
	return m, nil
}

// Stats implements mailstore.Repository. Its three queries read one
// snapshot.
func (r *Repository) Stats(ctx context.Context, user string) (mailstore.Stats, error) {
	var s mailstore.Stats
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
SELECT count(*),
       count(*) FILTER (WHERE state = 'classified'),
       count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed')
FROM store_messages WHERE user_id = $1`, user).Scan(&s.Total, &s.Classified, &s.Pending, &s.Failed)
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `
SELECT category, count(*) FROM store_messages
WHERE user_id = $1 AND state = 'classified'
GROUP BY category ORDER BY count(*) DESC, category`, user)
		s.Categories, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mailstore.CategoryCount, error) {
			var c mailstore.CategoryCount
			return c, row.Scan(&c.Category, &c.Count)
		})
		if err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, `
SELECT mailbox_id, count(*), count(*) FILTER (WHERE state = 'classified') FROM store_messages
WHERE user_id = $1
GROUP BY mailbox_id ORDER BY mailbox_id`, user)
		s.Mailboxes, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mailstore.MailboxCount, error) {
			var c mailstore.MailboxCount
			return c, row.Scan(&c.MailboxID, &c.Count, &c.Classified)
		})
		return err
	})
	if err != nil {
		return mailstore.Stats{}, fmt.Errorf("postgres: stats: %w", err)
	}
	return s, nil
}

// Usage implements mailstore.Repository.
func (r *Repository) Usage(ctx context.Context, user string) (mailstore.Usage, error) {
	var (
		u     mailstore.Usage
		first *time.Time
	)
	err := r.pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE source <> 'dead_letter'),
       count(*) FILTER (WHERE source = 'rules'),
       count(*) FILTER (WHERE source = 'llm'),
       count(*) FILTER (WHERE source = 'cache'),
       count(*) FILTER (WHERE source = 'learned'),
       count(*) FILTER (WHERE source = 'user'),
       count(*) FILTER (WHERE source = 'dead_letter'),
       COALESCE(sum(requests), 0)::bigint,
       COALESCE(sum(prompt_tokens), 0)::bigint,
       COALESCE(sum(completion_tokens), 0)::bigint,
       COALESCE(sum(cached_prompt_tokens), 0)::bigint,
       COALESCE(sum(cost_micros), 0)::bigint,
       min(classify_time)
FROM store_classification_usage WHERE user_id = $1`, user).Scan(
		&u.Classifications, &u.RuleClassifications, &u.LLMClassifications, &u.CacheClassifications,
		&u.LearnedClassifications, &u.UserClassifications, &u.DeadLetters,
		&u.Requests, &u.PromptTokens, &u.CompletionTokens, &u.CachedPromptTokens, &u.CostMicros, &first)
	if err != nil {
		return mailstore.Usage{}, fmt.Errorf("postgres: usage: %w", err)
	}
	rows, _ := r.pool.Query(ctx, `
SELECT (m->>'model') COLLATE "C" AS model,
       COALESCE(sum((m->>'requests')::bigint), 0)::bigint,
       COALESCE(sum((m->>'prompt_tokens')::bigint), 0)::bigint,
       COALESCE(sum((m->>'cached_prompt_tokens')::bigint), 0)::bigint,
       COALESCE(sum((m->>'completion_tokens')::bigint), 0)::bigint,
       COALESCE(sum((m->>'cost_micros')::bigint), 0)::bigint
FROM store_classification_usage u, jsonb_array_elements(u.models) m
WHERE u.user_id = $1
GROUP BY 1 ORDER BY 1`, user)
	u.Models, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mailstore.ModelCost, error) {
		var m mailstore.ModelCost
		return m, row.Scan(&m.Model, &m.Requests, &m.PromptTokens, &m.CachedPromptTokens, &m.CompletionTokens, &m.CostMicros)
	})
	if err != nil {
		return mailstore.Usage{}, fmt.Errorf("postgres: usage by model: %w", err)
	}
	if len(u.Models) == 0 {
		u.Models = nil
	}
	if first != nil {
		u.StartTime = first.UTC()
	}
	return u, nil
}

// MarkUserDeleted implements mailstore.Repository. The exclusive write lock
// waits for the write transactions in flight and holds new ones back until
// the deletion is committed.
func (r *Repository) MarkUserDeleted(ctx context.Context, user string, at time.Time) error {
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", writeLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
INSERT INTO store_deleted_users AS d (user_id, delete_time) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET delete_time = greatest(d.delete_time, excluded.delete_time)`, user, at)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: mark user deleted: %w", err)
	}
	return nil
}

// DeleteMessages implements mailstore.Repository: one statement (one short
// transaction) deleting by primary key the rows that an index finds.
func (r *Repository) DeleteMessages(ctx context.Context, sel mailstore.Selection, limit int) (int64, error) {
	var (
		tag pgconn.CommandTag
		err error
	)
	if sel.User != "" {
		tag, err = r.pool.Exec(ctx, `
DELETE FROM store_messages WHERE user_id = $1 AND id IN (
    SELECT id FROM store_messages WHERE user_id = $1 LIMIT $2)`, sel.User, limit)
	} else {
		tag, err = r.pool.Exec(ctx, `
DELETE FROM store_messages WHERE (user_id, id) IN (
    SELECT user_id, id FROM store_messages WHERE received_time < $1 ORDER BY received_time LIMIT $2)`, sel.Before, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: delete messages: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteUsage implements mailstore.Repository.
func (r *Repository) DeleteUsage(ctx context.Context, sel mailstore.Selection, limit int) (int64, error) {
	var (
		tag pgconn.CommandTag
		err error
	)
	if sel.User != "" {
		tag, err = r.pool.Exec(ctx, `
DELETE FROM store_classification_usage WHERE user_id = $1 AND (message_id, classify_time) IN (
    SELECT message_id, classify_time FROM store_classification_usage WHERE user_id = $1 LIMIT $2)`, sel.User, limit)
	} else {
		tag, err = r.pool.Exec(ctx, `
DELETE FROM store_classification_usage WHERE (user_id, message_id, classify_time) IN (
    SELECT user_id, message_id, classify_time FROM store_classification_usage
    WHERE classify_time < $1 ORDER BY classify_time LIMIT $2)`, sel.Before, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: delete usage: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteTombstones implements mailstore.Repository.
func (r *Repository) DeleteTombstones(ctx context.Context, before time.Time) (int64, error) {
	tag, err := r.pool.Exec(ctx, "DELETE FROM store_deleted_users WHERE delete_time < $1", before)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete tombstones: %w", err)
	}
	return tag.RowsAffected(), nil
}
