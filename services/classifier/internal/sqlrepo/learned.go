package sqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"mailroom.dev/services/classifier/internal/learned"
)

// Sender implements learned.Store.
func (r *Repo) Sender(ctx context.Context, user, key string) (learned.Record, bool, error) {
	var rec learned.Record
	err := r.db.QueryRowContext(ctx, `SELECT category, count, corrected, model FROM classifier_senders WHERE user_id = $1 AND sender_key = $2`,
		user, key).Scan(&rec.Category, &rec.Count, &rec.Corrected, &rec.Model)
	if errors.Is(err, sql.ErrNoRows) {
		return learned.Record{}, false, nil
	}
	if err != nil {
		return learned.Record{}, false, fmt.Errorf("sqlrepo: sender: %w", err)
	}
	return rec, true, nil
}

// ObserveSender implements learned.Store in one statement, so that
// concurrent verdicts on one sender each count.
func (r *Repo) ObserveSender(ctx context.Context, user, key, category, model string, at time.Time) (learned.Record, error) {
	var rec learned.Record
	err := r.db.QueryRowContext(ctx, `
		INSERT INTO classifier_senders (user_id, sender_key, category, count, corrected, model, update_time)
		VALUES ($1, $2, $3, 1, false, $4, $5)
		ON CONFLICT (user_id, sender_key) DO UPDATE SET
		    count = CASE WHEN classifier_senders.corrected THEN classifier_senders.count
		                 WHEN classifier_senders.category = excluded.category THEN classifier_senders.count + 1
		                 ELSE 1 END,
		    category = CASE WHEN classifier_senders.corrected THEN classifier_senders.category ELSE excluded.category END,
		    model = CASE WHEN classifier_senders.corrected THEN classifier_senders.model ELSE excluded.model END,
		    update_time = excluded.update_time
		RETURNING category, count, corrected, model`,
		user, key, category, model, at.UnixMicro()).Scan(&rec.Category, &rec.Count, &rec.Corrected, &rec.Model)
	if err != nil {
		return learned.Record{}, fmt.Errorf("sqlrepo: observe sender: %w", err)
	}
	return rec, nil
}

// ResetSender implements learned.Store.
func (r *Repo) ResetSender(ctx context.Context, user, key string) error {
	if _, err := r.db.ExecContext(ctx, `DELETE FROM classifier_senders WHERE user_id = $1 AND sender_key = $2 AND NOT corrected`, user, key); err != nil {
		return fmt.Errorf("sqlrepo: reset sender: %w", err)
	}
	return nil
}

// CorrectSender implements learned.Store.
func (r *Repo) CorrectSender(ctx context.Context, user, key, category string, at time.Time) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO classifier_senders (user_id, sender_key, category, count, corrected, model, update_time)
		VALUES ($1, $2, $3, 1, true, '', $4)
		ON CONFLICT (user_id, sender_key) DO UPDATE SET category = excluded.category, count = 1, corrected = true,
		    model = '', update_time = excluded.update_time`, user, key, category, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlrepo: correct sender: %w", err)
	}
	return nil
}

// AddExample implements learned.Store.
func (r *Repo) AddExample(ctx context.Context, user, message string, e learned.Example, at time.Time) error {
	_, err := r.db.ExecContext(ctx, `
		INSERT INTO classifier_examples (user_id, message, sender, subject, category, create_time)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, message) DO UPDATE SET sender = excluded.sender, subject = excluded.subject,
		    category = excluded.category, create_time = excluded.create_time`,
		user, message, e.From, e.Subject, e.Category, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlrepo: add example: %w", err)
	}
	return nil
}

// Examples implements learned.Store.
func (r *Repo) Examples(ctx context.Context, user string, limit int) ([]learned.Example, error) {
	rows, err := r.db.QueryContext(ctx, `
		SELECT sender, subject, category FROM classifier_examples WHERE user_id = $1
		ORDER BY create_time DESC, message LIMIT $2`, user, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlrepo: examples: %w", err)
	}
	defer rows.Close()
	var out []learned.Example
	for rows.Next() {
		var e learned.Example
		if err := rows.Scan(&e.From, &e.Subject, &e.Category); err != nil {
			return nil, fmt.Errorf("sqlrepo: examples: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
