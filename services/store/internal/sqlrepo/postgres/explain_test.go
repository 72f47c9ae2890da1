package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/mailstore"
)

// TestListUsesIndexes fills the table with several users' mail and checks
// the plans of a user's list queries: none reads all of store_messages
// (no Seq Scan), whether the planner uses the parameters' values (custom
// plan) or not (generic plan, which prepared statements end up with).
func TestListUsesIndexes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sqldb.Open(ctx, testenv.PostgresURL(t), sqldb.Migrations{Table: "store_schema_version", Postgres: Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := New(db.Pool)

	const users, perUser = 8, 2500
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	categories := []string{"work", "newsletters", "finance", "social", "promotions", "other"}
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		for start := 0; start < perUser; start += 500 {
			var msgs []mailstore.Message
			var vs []mailstore.Classified
			for n := start; n < start+500; n++ {
				m := mailstore.Message{
					User: user, ID: fmt.Sprintf("m%05d", n), MailboxID: []string{"inbox", "work"}[n%2],
					FromAddress: fmt.Sprintf("sender%d@example.com", n%50), Subject: "s",
					ReceivedTime: end.Add(-time.Duration(n) * time.Minute),
				}
				msgs = append(msgs, m)
				if n%10 != 0 { // a tenth stays unclassified
					m.Classification = &mailstore.Classification{Category: categories[n%len(categories)], NeedsReply: n%7 == 0, ClassifyTime: end}
					vs = append(vs, mailstore.Classified{Message: m})
				}
			}
			if err := r.SaveReceived(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			if err := r.SaveClassified(ctx, vs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.Pool.Exec(ctx, "ANALYZE store_messages"); err != nil {
		t.Fatal(err)
	}

	after := &mailstore.Cursor{ReceivedTime: end.Add(-100 * time.Minute), ID: "m00100"}
	for _, tc := range []struct {
		name   string
		filter string
		after  *mailstore.Cursor
	}{
		{"first page", "", nil},
		{"next page", "", after},
		{"category", `category = "finance"`, nil},
		{"category, next page", `category = "finance"`, after},
		{"mailbox", `mailbox = "users/user-3/mailboxes/work"`, after},
		{"from", `from = "sender7@example.com"`, nil},
		{"unclassified", `classified = false`, nil},
		{"pending", `state = PENDING`, after},
		{"needs reply", `needs_reply = true`, nil},
		{"received between", `received_time > "2026-02-27T00:00:00Z" AND received_time <= "2026-02-28T00:00:00Z"`, nil},
	} {
		f, err := mailstore.ParseFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.Conditions {
			f.Conditions[i].Owner = "user-3"
		}
		query, args, err := listSQL(mailstore.ListQuery{User: "user-3", Filter: f, After: tc.after, Limit: 51})
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			plan := explain(t, ctx, db, mode, query, args)
			if strings.Contains(plan, "Seq Scan on store_messages") {
				t.Errorf("%s (%s): a sequential scan of store_messages:\n%s", tc.name, mode, plan)
			}
			if !strings.Contains(plan, "Index") {
				t.Errorf("%s (%s): no index in the plan:\n%s", tc.name, mode, plan)
			}
		}
	}
}

// explain returns the plan of query under plan_cache_mode mode, through a
// prepared statement as pgx runs it.
func explain(t *testing.T, ctx context.Context, db *sqldb.DB, mode, query string, args []any) string {
	t.Helper()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "RESET plan_cache_mode")
	if _, err := conn.Exec(ctx, "PREPARE list_explain AS "+query); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	defer conn.Exec(context.Background(), "DEALLOCATE list_explain")
	// EXPLAIN EXECUTE takes no bind parameters: the values go in as literals.
	params := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			params[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		case time.Time:
			params[i] = "'" + v.Format(time.RFC3339Nano) + "'"
		case int:
			params[i] = fmt.Sprint(v)
		default:
			t.Fatalf("no literal for %T", a)
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN EXECUTE list_explain("+strings.Join(params, ", ")+")")
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}
