package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"mailroom.dev/services/store/internal/webhook"
)

const webhookColumns = `user_id, id, url, display_name, state, create_time, last_success_time,
    last_failure_time, last_error, consecutive_failures, disable_reason, coalesce(enable_time, create_time)`

func micro(t sql.NullInt64) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return time.UnixMicro(t.Int64).UTC()
}

func scanWebhook(row scanner) (webhook.Webhook, error) {
	var (
		w               webhook.Webhook
		state           string
		created, enable int64
		success, failed sql.NullInt64
	)
	err := row.Scan(&w.User, &w.ID, &w.URL, &w.DisplayName, &state, &created, &success,
		&failed, &w.LastError, &w.ConsecutiveFailures, &w.DisableReason, &enable)
	if err != nil {
		return webhook.Webhook{}, err
	}
	w.State = webhook.State(state)
	w.CreateTime, w.EnableTime = time.UnixMicro(created).UTC(), time.UnixMicro(enable).UTC()
	w.LastSuccessTime, w.LastFailureTime = micro(success), micro(failed)
	return w, nil
}

// CreateWebhook implements webhook.Repository.
func (r *Repository) CreateWebhook(ctx context.Context, w webhook.Webhook) error {
	_, err := r.db.ExecContext(ctx, `
INSERT INTO store_webhooks (user_id, id, url, display_name, state, create_time)
VALUES ($1, $2, $3, $4, $5, $6)`, w.User, w.ID, w.URL, w.DisplayName, string(w.State), w.CreateTime.UnixMicro())
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return webhook.ErrExists
	}
	if err != nil {
		return fmt.Errorf("sqlite: create webhook: %w", err)
	}
	return nil
}

// GetWebhook implements webhook.Repository.
func (r *Repository) GetWebhook(ctx context.Context, user, id string) (webhook.Webhook, error) {
	w, err := scanWebhook(r.db.QueryRowContext(ctx, "SELECT "+webhookColumns+" FROM store_webhooks WHERE user_id = $1 AND id = $2", user, id))
	if errors.Is(err, sql.ErrNoRows) {
		return webhook.Webhook{}, webhook.ErrNotFound
	}
	if err != nil {
		return webhook.Webhook{}, fmt.Errorf("sqlite: get webhook: %w", err)
	}
	return w, nil
}

// ListWebhooks implements webhook.Repository.
func (r *Repository) ListWebhooks(ctx context.Context, user, after string, limit int) ([]webhook.Webhook, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT "+webhookColumns+`
FROM store_webhooks WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list webhooks: %w", err)
	}
	defer rows.Close()
	var out []webhook.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list webhooks: %w", err)
	}
	return out, nil
}

// CountWebhooks implements webhook.Repository.
func (r *Repository) CountWebhooks(ctx context.Context, user string) (int, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, "SELECT count(*) FROM store_webhooks WHERE user_id = $1", user).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count webhooks: %w", err)
	}
	return n, nil
}

// DeleteWebhook implements webhook.Repository.
func (r *Repository) DeleteWebhook(ctx context.Context, user, id string) error {
	res, err := r.db.ExecContext(ctx, "DELETE FROM store_webhooks WHERE user_id = $1 AND id = $2", user, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return webhook.ErrNotFound
	}
	return nil
}

// DeleteUserWebhooks implements webhook.Repository.
func (r *Repository) DeleteUserWebhooks(ctx context.Context, user string) (int64, error) {
	res, err := r.db.ExecContext(ctx, "DELETE FROM store_webhooks WHERE user_id = $1", user)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete webhooks: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// RecordAttempt implements webhook.Repository.
func (r *Repository) RecordAttempt(ctx context.Context, user, id string, at time.Time, errText string) error {
	var err error
	if errText == "" {
		_, err = r.db.ExecContext(ctx, `
UPDATE store_webhooks SET last_success_time = max(coalesce(last_success_time, 0), $3), consecutive_failures = 0
WHERE user_id = $1 AND id = $2`, user, id, at.UnixMicro())
	} else {
		_, err = r.db.ExecContext(ctx, `
UPDATE store_webhooks SET last_failure_time = max(coalesce(last_failure_time, 0), $3), last_error = $4,
    consecutive_failures = consecutive_failures + 1
WHERE user_id = $1 AND id = $2`, user, id, at.UnixMicro(), errText)
	}
	if err != nil {
		return fmt.Errorf("sqlite: record webhook attempt: %w", err)
	}
	return nil
}

// Disable implements webhook.Repository.
func (r *Repository) Disable(ctx context.Context, user, id, reason string, enabledBy time.Time) (bool, error) {
	res, err := r.db.ExecContext(ctx, `
UPDATE store_webhooks SET state = 'disabled', disable_reason = $3
WHERE user_id = $1 AND id = $2 AND coalesce(enable_time, create_time) <= $4`, user, id, reason, enabledBy.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("sqlite: disable webhook: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: disable webhook: %w", err)
	}
	return n > 0, nil
}

// UpdateWebhook implements webhook.Repository. One statement, so that an
// attempt recorded or a disable meanwhile is neither lost nor undone in
// the fields that u leaves alone.
func (r *Repository) UpdateWebhook(ctx context.Context, user, id string, u webhook.Update) (webhook.Webhook, error) {
	var state any
	if u.State != nil {
		state = string(*u.State)
	}
	w, err := scanWebhook(r.db.QueryRowContext(ctx, `
UPDATE store_webhooks SET url = coalesce($3, url), display_name = coalesce($4, display_name),
    state = coalesce($5, state),
    disable_reason = CASE WHEN $6 = 'active' THEN '' WHEN $7 = 'disabled' AND state <> 'disabled' THEN $8 ELSE disable_reason END,
    consecutive_failures = CASE WHEN $9 = 'active' THEN 0 ELSE consecutive_failures END,
    enable_time = CASE WHEN $10 = 'active' AND state = 'disabled' THEN $11 ELSE enable_time END
WHERE user_id = $1 AND id = $2
RETURNING `+webhookColumns, user, id, u.URL, u.DisplayName, state, state, state, u.DisableReason, state, state, u.EnableTime.UnixMicro()))
	if errors.Is(err, sql.ErrNoRows) {
		return webhook.Webhook{}, webhook.ErrNotFound
	}
	if err != nil {
		return webhook.Webhook{}, fmt.Errorf("sqlite: update webhook: %w", err)
	}
	return w, nil
}
