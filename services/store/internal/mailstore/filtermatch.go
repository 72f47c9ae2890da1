package mailstore

// Match reports whether m satisfies every condition of f, as the
// repositories' list queries decide it (an unclassified message has no
// category and no needs_reply, so it matches no condition on them). The
// mailbox conditions' Owner must have been resolved to m's user.
func (f Filter) Match(m Message) bool {
	for _, c := range f.Conditions {
		if !c.match(m) {
			return false
		}
	}
	return true
}

func (c Condition) match(m Message) bool {
	cl := m.Classification
	switch c.Field {
	case FieldCategory:
		return cl != nil && cl.Category == c.Text
	case FieldMailbox:
		return c.Owner == m.User && c.Text == m.MailboxID
	case FieldFrom:
		return c.Text == m.FromAddress
	case FieldNeedsReply:
		return cl != nil && cl.NeedsReply == c.Bool
	case FieldClassified:
		return (m.State == StateClassified) == c.Bool
	case FieldState:
		return m.State == c.State
	case FieldReceivedTime:
		d := m.ReceivedTime.Compare(c.Time)
		switch c.Op {
		case OpEq:
			return d == 0
		case OpLt:
			return d < 0
		case OpLe:
			return d <= 0
		case OpGt:
			return d > 0
		case OpGe:
			return d >= 0
		}
	}
	return false
}
