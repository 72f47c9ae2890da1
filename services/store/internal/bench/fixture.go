package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// Fixture is a store full of mail: Users users with PerUser messages each,
// the n-th received n minutes before End, nine in ten classified.
type Fixture struct {
	Users   int
	PerUser int
	End     time.Time
}

// Messages returns how many messages the fixture holds.
func (f Fixture) Messages() int { return f.Users * f.PerUser }

// row returns the fixture's n-th message of user i, classified or not.
func (f Fixture) row(i, n int) mailstore.Message {
	m := Message(UserID(i), n, f.End)
	if n%10 != 3 {
		v := Verdict(m, n, f.End.Add(time.Second))
		m = v.Message
	}
	return m
}

// Load writes the fixture into db, whose schema is migrated and whose
// store_messages is empty, as fast as the backend allows: the secondary
// indexes are dropped, the rows copied in (COPY on Postgres, one
// transaction on SQLite), the indexes rebuilt, statistics gathered.
func Load(ctx context.Context, db *sqlrepo.DB, f Fixture) error {
	if db.Backend == sqldb.Postgres {
		return loadPostgres(ctx, db, f)
	}
	return loadSQLite(ctx, db, f)
}

var copyColumns = []string{"user_id", "id", "mailbox_id", "provider_message_id", "subject", "sender", "sender_address",
	"recipients", "received_time", "snippet", "size_bytes", "attachment_names", "body", "received", "state",
	"category", "confidence", "priority", "needs_reply", "reason", "source", "rule", "model", "classify_time",
	"create_time", "update_time"}

func values(m mailstore.Message, list func([]string) any, tm func(time.Time) any) []any {
	row := []any{m.User, m.ID, m.MailboxID, m.ProviderMessageID, m.Subject, m.From, m.FromAddress,
		list(m.To), tm(m.ReceivedTime), m.Snippet, m.SizeBytes, list(m.AttachmentNames), "", true, string(m.State),
		nil, nil, nil, nil, nil, nil, nil, nil, nil, tm(m.ReceivedTime), tm(m.ReceivedTime)}
	if c := m.Classification; c != nil {
		copy(row[15:24], []any{c.Category, c.Confidence, string(c.Priority), c.NeedsReply, c.Reason, string(c.Source), c.Rule, c.Model, tm(c.ClassifyTime)})
	}
	return row
}

func loadPostgres(ctx context.Context, db *sqlrepo.DB, f Fixture) error {
	indexes, err := dropIndexes(ctx, db.SQL, `SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = 'store_messages' AND indexname <> 'store_messages_pkey'`)
	if err != nil {
		return err
	}
	i, n := 0, 0
	_, err = db.Pool.CopyFrom(ctx, pgx.Identifier{"store_messages"}, copyColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == f.Users {
			return nil, nil
		}
		row := values(f.row(i, n),
			func(s []string) any {
				if s == nil {
					return []string{}
				}
				return s
			},
			func(t time.Time) any { return t })
		if n++; n == f.PerUser {
			i, n = i+1, 0
		}
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := createIndexes(ctx, db.SQL, indexes); err != nil {
		return err
	}
	if _, err := db.SQL.ExecContext(ctx, "VACUUM ANALYZE store_messages"); err != nil {
		return fmt.Errorf("vacuum analyze: %w", err)
	}
	return nil
}

func loadSQLite(ctx context.Context, db *sqlrepo.DB, f Fixture) error {
	indexes, err := dropIndexes(ctx, db.SQL, `SELECT name, sql FROM sqlite_master
        WHERE type = 'index' AND tbl_name = 'store_messages' AND sql IS NOT NULL`)
	if err != nil {
		return err
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(copyColumns)), ", ")
	insert := "INSERT INTO store_messages (" + strings.Join(copyColumns, ", ") + ") VALUES (" + marks + ")"
	err = sqldb.InTx(ctx, db.SQL, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insert)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range f.Users {
			for n := range f.PerUser {
				row := values(f.row(i, n),
					func(s []string) any {
						if len(s) == 0 {
							return "[]"
						}
						b, _ := json.Marshal(s)
						return string(b)
					},
					func(t time.Time) any { return t.UnixMicro() })
				if _, err := stmt.ExecContext(ctx, row...); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if err := createIndexes(ctx, db.SQL, indexes); err != nil {
		return err
	}
	if _, err := db.SQL.ExecContext(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// dropIndexes drops the indexes that query lists (name, definition) and
// returns their definitions.
func dropIndexes(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return nil, err
		}
		names, defs = append(names, name), append(defs, def)
	}
	rows.Close()
	for _, name := range names {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+name); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", name, err)
		}
	}
	return defs, nil
}

func createIndexes(ctx context.Context, db *sql.DB, defs []string) error {
	for _, def := range defs {
		if _, err := db.ExecContext(ctx, def); err != nil {
			return fmt.Errorf("create index: %w", err)
		}
	}
	return nil
}
