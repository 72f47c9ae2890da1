package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"mailroom.dev/services/store/internal/mailstore"
)

// changeColumns are messageColumns without the body, then change_seq.
var changeColumns = strings.Replace(messageColumns, "body,", "''::text AS body,", 1) + ", change_seq"

// seqRow scans a row of changeColumns: the message, then its change_seq.
type seqRow struct {
	row pgx.Row
	seq *int64
}

func (r seqRow) Scan(dest ...any) error { return r.row.Scan(append(dest, r.seq)...) }

// Changes implements mailstore.ChangeLog. A trigger numbers every insert and
// update of a row, one user's numbers committed in order (see the
// migration 00003_change_seq.sql).
func (r *Repository) Changes(ctx context.Context, user string, after int64, limit int) ([]mailstore.Change, error) {
	rows, err := r.pool.Query(ctx, "SELECT "+changeColumns+`
FROM store_messages WHERE user_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3`, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: changes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mailstore.Change, error) {
		var c mailstore.Change
		m, err := scanMessage(seqRow{row: row, seq: &c.Seq})
		c.Message = m
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: changes: %w", err)
	}
	return out, nil
}

// LastChange implements mailstore.ChangeLog.
func (r *Repository) LastChange(ctx context.Context, user string) (int64, error) {
	var n int64
	err := r.pool.QueryRow(ctx, "SELECT COALESCE(max(change_seq), 0) FROM store_messages WHERE user_id = $1", user).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: last change: %w", err)
	}
	return n, nil
}
