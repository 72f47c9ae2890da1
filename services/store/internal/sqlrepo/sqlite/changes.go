package sqlite

import (
	"context"
	"fmt"
	"strings"

	"mailroom.dev/services/store/internal/mailstore"
)

// changeColumns are messageColumns without the body, then change_seq.
var changeColumns = strings.Replace(messageColumns, "body,", "'' AS body,", 1) + ", change_seq"

// seqRow scans a row of changeColumns: the message, then its change_seq.
type seqRow struct {
	row scanner
	seq *int64
}

func (r seqRow) Scan(dest ...any) error { return r.row.Scan(append(dest, r.seq)...) }

// Changes implements mailstore.ChangeLog. Triggers number every insert and
// update of a row (see the migration 00003_change_seq.sql); SQLite's one
// writer commits them in order.
func (r *Repository) Changes(ctx context.Context, user string, after int64, limit int) ([]mailstore.Change, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT "+changeColumns+`
FROM store_messages WHERE user_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3`, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: changes: %w", err)
	}
	defer rows.Close()
	var out []mailstore.Change
	for rows.Next() {
		var c mailstore.Change
		if c.Message, err = scanMessage(seqRow{row: rows, seq: &c.Seq}); err != nil {
			return nil, fmt.Errorf("sqlite: changes: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: changes: %w", err)
	}
	return out, nil
}

// LastChange implements mailstore.ChangeLog.
func (r *Repository) LastChange(ctx context.Context, user string) (int64, error) {
	var n int64
	err := r.db.QueryRowContext(ctx, "SELECT COALESCE(max(change_seq), 0) FROM store_messages WHERE user_id = $1", user).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: last change: %w", err)
	}
	return n, nil
}
