package sqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"mailroom.dev/platform/sqldb"
)

// AddBatchMail records that messages were sent in batch.
func (r *Repo) AddBatchMail(ctx context.Context, batch string, messages []string, at time.Time) error {
	err := sqldb.InTx(ctx, r.db, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
			INSERT INTO classifier_batch_mail (message, batch_id, create_time) VALUES ($1, $2, $3)
			ON CONFLICT (message) DO UPDATE SET batch_id = excluded.batch_id, create_time = excluded.create_time`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range messages {
			if _, err := stmt.ExecContext(ctx, m, batch, at.UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlrepo: add batch mail: %w", err)
	}
	return nil
}

// BatchOf returns the unfinished batch message was sent in, if any.
func (r *Repo) BatchOf(ctx context.Context, message string) (string, bool, error) {
	var id string
	err := r.db.QueryRowContext(ctx, `SELECT batch_id FROM classifier_batch_mail WHERE message = $1`, message).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("sqlrepo: batch of: %w", err)
	}
	return id, true, nil
}

// DoneBatch forgets a finished batch's mail.
func (r *Repo) DoneBatch(ctx context.Context, batch string) error {
	if _, err := r.db.ExecContext(ctx, `DELETE FROM classifier_batch_mail WHERE batch_id = $1`, batch); err != nil {
		return fmt.Errorf("sqlrepo: done batch: %w", err)
	}
	return nil
}
