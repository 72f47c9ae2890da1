package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mailroom.dev/services/store/internal/webhook"
)

const webhookColumns = `user_id, id, url, display_name, state, create_time, last_success_time,
    last_failure_time, last_error, consecutive_failures, disable_reason, coalesce(enable_time, create_time)`

func scanWebhook(row pgx.Row) (webhook.Webhook, error) {
	var (
		w               webhook.Webhook
		state           string
		success, failed *time.Time
	)
	err := row.Scan(&w.User, &w.ID, &w.URL, &w.DisplayName, &state, &w.CreateTime, &success,
		&failed, &w.LastError, &w.ConsecutiveFailures, &w.DisableReason, &w.EnableTime)
	if err != nil {
		return webhook.Webhook{}, err
	}
	w.State = webhook.State(state)
	w.CreateTime, w.EnableTime = w.CreateTime.UTC(), w.EnableTime.UTC()
	if success != nil {
		w.LastSuccessTime = success.UTC()
	}
	if failed != nil {
		w.LastFailureTime = failed.UTC()
	}
	return w, nil
}

// CreateWebhook implements webhook.Repository.
func (r *Repository) CreateWebhook(ctx context.Context, w webhook.Webhook) error {
	_, err := r.pool.Exec(ctx, `
INSERT INTO store_webhooks (user_id, id, url, display_name, state, create_time)
VALUES ($1, $2, $3, $4, $5, $6)`, w.User, w.ID, w.URL, w.DisplayName, string(w.State), w.CreateTime)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return webhook.ErrExists
	}
	if err != nil {
		return fmt.Errorf("postgres: create webhook: %w", err)
	}
	return nil
}

// GetWebhook implements webhook.Repository.
func (r *Repository) GetWebhook(ctx context.Context, user, id string) (webhook.Webhook, error) {
	w, err := scanWebhook(r.pool.QueryRow(ctx, "SELECT "+webhookColumns+" FROM store_webhooks WHERE user_id = $1 AND id = $2", user, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return webhook.Webhook{}, webhook.ErrNotFound
	}
	if err != nil {
		return webhook.Webhook{}, fmt.Errorf("postgres: get webhook: %w", err)
	}
	return w, nil
}

// ListWebhooks implements webhook.Repository.
func (r *Repository) ListWebhooks(ctx context.Context, user, after string, limit int) ([]webhook.Webhook, error) {
	rows, err := r.pool.Query(ctx, "SELECT "+webhookColumns+`
FROM store_webhooks WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list webhooks: %w", err)
	}
	ws, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (webhook.Webhook, error) { return scanWebhook(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list webhooks: %w", err)
	}
	return ws, nil
}

// CountWebhooks implements webhook.Repository.
func (r *Repository) CountWebhooks(ctx context.Context, user string) (int, error) {
	var n int
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM store_webhooks WHERE user_id = $1", user).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count webhooks: %w", err)
	}
	return n, nil
}

// DeleteWebhook implements webhook.Repository.
func (r *Repository) DeleteWebhook(ctx context.Context, user, id string) error {
	tag, err := r.pool.Exec(ctx, "DELETE FROM store_webhooks WHERE user_id = $1 AND id = $2", user, id)
	if err != nil {
		return fmt.Errorf("postgres: delete webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return webhook.ErrNotFound
	}
	return nil
}

// DeleteUserWebhooks implements webhook.Repository.
func (r *Repository) DeleteUserWebhooks(ctx context.Context, user string) (int64, error) {
	tag, err := r.pool.Exec(ctx, "DELETE FROM store_webhooks WHERE user_id = $1", user)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete webhooks: %w", err)
	}
	return tag.RowsAffected(), nil
}

// RecordAttempt implements webhook.Repository.
func (r *Repository) RecordAttempt(ctx context.Context, user, id string, at time.Time, errText string) error {
	var err error
	if errText == "" {
		_, err = r.pool.Exec(ctx, `
UPDATE store_webhooks SET last_success_time = greatest(last_success_time, $3), consecutive_failures = 0
WHERE user_id = $1 AND id = $2`, user, id, at)
	} else {
		_, err = r.pool.Exec(ctx, `
UPDATE store_webhooks SET last_failure_time = greatest(last_failure_time, $3), last_error = $4,
    consecutive_failures = consecutive_failures + 1
WHERE user_id = $1 AND id = $2`, user, id, at, errText)
	}
	if err != nil {
		return fmt.Errorf("postgres: record webhook attempt: %w", err)
	}
	return nil
}

// Disable implements webhook.Repository.
func (r *Repository) Disable(ctx context.Context, user, id, reason string, enabledBy time.Time) (bool, error) {
	tag, err := r.pool.Exec(ctx, `
UPDATE store_webhooks SET state = 'disabled', disable_reason = $3
WHERE user_id = $1 AND id = $2 AND coalesce(enable_time, create_time) <= $4`, user, id, reason, enabledBy)
	if err != nil {
		return false, fmt.Errorf("postgres: disable webhook: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// UpdateWebhook implements webhook.Repository. One statement, so that an
// attempt recorded or a disable meanwhile is neither lost nor undone in
// the fields that u leaves alone.
func (r *Repository) UpdateWebhook(ctx context.Context, user, id string, u webhook.Update) (webhook.Webhook, error) {
	var state *string
	if u.State != nil {
		s := string(*u.State)
		state = &s
	}
	w, err := scanWebhook(r.pool.QueryRow(ctx, `
UPDATE store_webhooks SET url = coalesce($3, url), display_name = coalesce($4, display_name),
    state = coalesce($5, state),
    disable_reason = CASE WHEN $5 = 'active' THEN '' WHEN $5 = 'disabled' AND state <> 'disabled' THEN $6 ELSE disable_reason END,
    consecutive_failures = CASE WHEN $5 = 'active' THEN 0 ELSE consecutive_failures END,
    enable_time = CASE WHEN $5 = 'active' AND state = 'disabled' THEN $7 ELSE enable_time END
WHERE user_id = $1 AND id = $2
RETURNING `+webhookColumns, user, id, u.URL, u.DisplayName, state, u.DisableReason, u.EnableTime))
	if errors.Is(err, pgx.ErrNoRows) {
		return webhook.Webhook{}, webhook.ErrNotFound
	}
	if err != nil {
		return webhook.Webhook{}, fmt.Errorf("postgres: update webhook: %w", err)
	}
	return w, nil
}
