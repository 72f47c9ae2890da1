// Package postgres is the store's repository on PostgreSQL, through pgx's
// native interface (pgxpool): a batch of events is one transaction whose
// upserts travel in one pgx.Batch round trip.
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
	"github.com/jackc/pgx/v5/pgxpool"

	"mailroom.dev/services/store/internal/mailstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the goose migrations of the store's Postgres schema.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

// Repository implements mailstore.Repository on a pgx pool.
type Repository struct {
	pool *pgxpool.Pool
}

// New returns a repository on pool, whose database has the schema of
// Migrations applied.
func New(pool *pgxpool.Pool) *Repository {
	return &Repository{pool: pool}
}

// The upserts' WHERE clauses skip rows that would not change, so that a
// redelivered batch writes nothing and leaves update_time alone.
const upsertReceived = `
INSERT INTO store_messages AS m (user_id, id, mailbox_id, provider_message_id, subject, sender, sender_address,
    recipients, received_time, snippet, size_bytes, attachment_names, body, received, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, true, 'pending')
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
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'classified',
    $13, $14, $15, $16, $17, $18, $19, $20, $21)
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
INSERT INTO store_classification_usage (user_id, message_id, classify_time, source,
    prompt_tokens, completion_tokens, cached_prompt_tokens, cost_micros, requests)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (user_id, message_id, classify_time) DO NOTHING`

// SaveReceived implements mailstore.Repository.
func (r *Repository) SaveReceived(ctx context.Context, msgs []mailstore.Message) error {
	msgs = mailstore.DistinctMessages(msgs)
	if len(msgs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, m := range msgs {
		b.Queue(upsertReceived, m.User, m.ID, m.MailboxID, m.ProviderMessageID, m.Subject, m.From, m.FromAddress,
			list(m.To), m.ReceivedTime, m.Snippet, m.SizeBytes, list(m.AttachmentNames), m.Body)
	}
	return r.sendBatch(ctx, "save received", b)
}

// SaveClassified implements mailstore.Repository.
func (r *Repository) SaveClassified(ctx context.Context, verdicts []mailstore.Classified) error {
	latest := mailstore.LatestVerdicts(verdicts)
	if len(latest) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, v := range latest {
		m, c := v.Message, v.Message.Classification
		b.Queue(upsertClassified, m.User, m.ID, m.MailboxID, m.ProviderMessageID, m.Subject, m.From, m.FromAddress,
			list(m.To), m.ReceivedTime, m.Snippet, m.SizeBytes, list(m.AttachmentNames),
			c.Category, c.Confidence, string(c.Priority), c.NeedsReply, c.Reason, string(c.Source), c.Rule, c.Model, c.ClassifyTime)
	}
	for _, v := range mailstore.DistinctVerdicts(verdicts) {
		m, c, u := v.Message, v.Message.Classification, v.Cost
		b.Queue(insertUsage, m.User, m.ID, c.ClassifyTime, string(c.Source),
			u.PromptTokens, u.CompletionTokens, u.CachedPromptTokens, u.CostMicros, u.Requests)
	}
	return r.sendBatch(ctx, "save classified", b)
}

func (r *Repository) sendBatch(ctx context.Context, what string, b *pgx.Batch) error {
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	return nil
}

// list keeps an empty list from becoming NULL.
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
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

// ListMessages implements mailstore.Repository.
func (r *Repository) ListMessages(ctx context.Context, q mailstore.ListQuery) ([]mailstore.Message, error) {
	var sb strings.Builder
	args := []any{q.User}
	sb.WriteString("SELECT " + messageColumns + " FROM store_messages WHERE user_id = $1")
	for _, c := range q.Filter.Conditions {
		col, val, err := condition(c)
		if err != nil {
			return nil, err
		}
		op, err := sqlOp(c.Op)
		if err != nil {
			return nil, err
		}
		args = append(args, val)
		fmt.Fprintf(&sb, " AND %s %s $%d", col, op, len(args))
	}
	if q.After != nil {
		args = append(args, q.After.ReceivedTime, q.After.ID)
		fmt.Fprintf(&sb, " AND (received_time, id) < ($%d, $%d)", len(args)-1, len(args))
	}
	args = append(args, q.Limit)
	fmt.Fprintf(&sb, " ORDER BY received_time DESC, id DESC LIMIT $%d", len(args))

	rows, err := r.pool.Query(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list messages: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mailstore.Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list messages: %w", err)
	}
	return msgs, nil
}

func condition(c mailstore.Condition) (column string, value any, err error) {
	switch c.Field {
	case mailstore.FieldCategory:
		return "category", c.Text, nil
	case mailstore.FieldMailbox:
		return "mailbox_id", c.Text, nil
	case mailstore.FieldFrom:
		return "sender_address", c.Text, nil
	case mailstore.FieldReceivedTime:
		return "received_time", c.Time, nil
	case mailstore.FieldNeedsReply:
		return "needs_reply", c.Bool, nil
	case mailstore.FieldState:
		return "state", string(c.State), nil
	}
	return "", nil, fmt.Errorf("postgres: unknown filter field %q", c.Field)
}

func sqlOp(op mailstore.Op) (string, error) {
	switch op {
	case mailstore.OpEq, mailstore.OpLt, mailstore.OpLe, mailstore.OpGt, mailstore.OpGe:
		return string(op), nil
	}
	return "", fmt.Errorf("postgres: unknown filter operator %q", op)
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
SELECT count(*),
       count(*) FILTER (WHERE source = 'rules'),
       count(*) FILTER (WHERE source = 'llm'),
       count(*) FILTER (WHERE source = 'cache'),
       COALESCE(sum(requests), 0)::bigint,
       COALESCE(sum(prompt_tokens), 0)::bigint,
       COALESCE(sum(completion_tokens), 0)::bigint,
       COALESCE(sum(cached_prompt_tokens), 0)::bigint,
       COALESCE(sum(cost_micros), 0)::bigint,
       min(classify_time)
FROM store_classification_usage WHERE user_id = $1`, user).Scan(
		&u.Classifications, &u.RuleClassifications, &u.LLMClassifications, &u.CacheClassifications,
		&u.Requests, &u.PromptTokens, &u.CompletionTokens, &u.CachedPromptTokens, &u.CostMicros, &first)
	if err != nil {
		return mailstore.Usage{}, fmt.Errorf("postgres: usage: %w", err)
	}
	if first != nil {
		u.StartTime = first.UTC()
	}
	return u, nil
}
