// Package listsql writes the query of ListMessages for both backends: the
// filter conditions, the keyset condition and the order are the same SQL;
// a Dialect says what differs (how a time is stored, how a boolean is
// written).
package listsql

import (
	"fmt"
	"strings"
	"time"

	"mailroom.dev/services/store/internal/mailstore"
)

// Dialect is what one backend writes its own way.
type Dialect struct {
	// Name names the backend in errors ("postgres").
	Name string
	// Columns is the select list (without the body).
	Columns string
	// Time is a time as a query parameter.
	Time func(time.Time) any
	// NeedsReply is the condition that needs_reply is b.
	NeedsReply func(b bool) string
}

// Query returns the query of q and its arguments. Every query starts with
// user_id and orders by (received_time, id) descending, the order of the
// list indexes; the keyset condition is a row comparison those indexes
// answer. Values from the caller are parameters; the enumerated ones
// (state, booleans) are literals, and the unclassified conditions repeat
// the partial index's own term, so that the planner can match the partial
// index of unclassified mail.
func (d Dialect) Query(q mailstore.ListQuery) (string, []any, error) {
	var sb strings.Builder
	args := []any{q.User}
	sb.WriteString("SELECT " + d.Columns + " FROM store_messages WHERE user_id = $1")
	for _, c := range q.Filter.Conditions {
		cond, val, err := d.condition(c, len(args)+1)
		if err != nil {
			return "", nil, err
		}
		sb.WriteString(" AND " + cond)
		if val != nil {
			args = append(args, val)
		}
	}
	if q.After != nil {
		args = append(args, d.Time(q.After.ReceivedTime), q.After.ID)
		fmt.Fprintf(&sb, " AND (received_time, id) < ($%d, $%d)", len(args)-1, len(args))
	}
	args = append(args, q.Limit)
	fmt.Fprintf(&sb, " ORDER BY received_time DESC, id DESC LIMIT $%d", len(args))
	return sb.String(), args, nil
}

// condition returns the SQL of c, whose value (if any, else nil) is
// parameter $n.
func (d Dialect) condition(c mailstore.Condition, n int) (string, any, error) {
	switch c.Op {
	case mailstore.OpEq, mailstore.OpLt, mailstore.OpLe, mailstore.OpGt, mailstore.OpGe:
	default:
		return "", nil, fmt.Errorf("%s: unknown filter operator %q", d.Name, c.Op)
	}
	param := fmt.Sprintf("%s $%d", c.Op, n)
	switch c.Field {
	case mailstore.FieldCategory:
		return "category " + param, c.Text, nil
	case mailstore.FieldMailbox:
		return "mailbox_id " + param, c.Text, nil
	case mailstore.FieldFrom:
		return "sender_address " + param, c.Text, nil
	case mailstore.FieldReceivedTime:
		return "received_time " + param, d.Time(c.Time), nil
	case mailstore.FieldNeedsReply:
		return d.NeedsReply(c.Bool), nil, nil
	case mailstore.FieldClassified:
		if c.Bool {
			return "state = 'classified'", nil, nil
		}
		return "state <> 'classified'", nil, nil
	case mailstore.FieldState:
		switch c.State {
		case mailstore.StateClassified:
			return "state = 'classified'", nil, nil
		case mailstore.StatePending:
			return "state <> 'classified' AND state = 'pending'", nil, nil
		case mailstore.StateFailed:
			return "state <> 'classified' AND state = 'failed'", nil, nil
		}
		return "", nil, fmt.Errorf("%s: unknown state %q", d.Name, c.State)
	}
	return "", nil, fmt.Errorf("%s: unknown filter field %q", d.Name, c.Field)
}
