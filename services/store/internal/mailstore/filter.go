package mailstore

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
)

// The filter language is a small subset of AIP-160: conditions of the form
// `field op value` joined with AND. It is parsed by hand because the subset
// is tiny (six fields, five operators, one conjunction) and must turn into
// indexed SQL on two backends; a full CEL/AIP-160 engine would be a large
// dependency that accepts far more than the store can answer, only to reject
// it afterwards.
//
//	category = "newsletters"
//	mailbox = "users/ada/mailboxes/work"
//	from = "news@example.com"            (the sender's bare address)
//	received_time >= "2026-01-01T00:00:00Z"   (=, <, <=, >, >=; RFC 3339)
//	needs_reply = true
//	state = CLASSIFIED                   (PENDING, CLASSIFIED or FAILED)
//	classified = false                   (unclassified: PENDING or FAILED)

// Bounds of a filter: each condition becomes a clause of the query, so
// their number (and the text to parse) is bounded.
const (
	// MaxFilterLength is the longest filter accepted, in bytes.
	MaxFilterLength = 1000
	// MaxFilterTerms is the most conditions one filter may join.
	MaxFilterTerms = 20
)

// Field is a message field that a filter may test.
type Field string

// The fields a filter may test.
const (
	FieldCategory     Field = "category"
	FieldMailbox      Field = "mailbox"
	FieldFrom         Field = "from"
	FieldReceivedTime Field = "received_time"
	FieldNeedsReply   Field = "needs_reply"
	FieldState        Field = "state"
	// FieldClassified is true for classified messages; `classified = false`
	// selects the unclassified ones (pending or failed).
	FieldClassified Field = "classified"
)

var fields = []Field{FieldCategory, FieldMailbox, FieldFrom, FieldReceivedTime, FieldNeedsReply, FieldState, FieldClassified}

// Op is a comparison operator.
type Op string

// The comparison operators.
const (
	OpEq Op = "="
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="
)

// Condition is one `field op value` of a filter. Which value field is set
// depends on Field.
type Condition struct {
	Field Field
	Op    Op
	// Text is the value of category (lowercased), from (the bare address,
	// lowercased) and mailbox (the mailbox id).
	Text string
	// Owner is the user segment of a mailbox name, possibly "me".
	Owner string
	// Time is the value of received_time.
	Time time.Time
	// Bool is the value of needs_reply and classified.
	Bool bool
	// State is the value of state.
	State State
}

// Filter is a parsed filter: every condition must hold.
type Filter struct {
	Conditions []Condition
}

// String returns the filter in a canonical form: two filters that mean the
// same (up to spacing, quoting and the order of conditions) have the same
// string. Page tokens are bound to it.
func (f Filter) String() string {
	parts := make([]string, len(f.Conditions))
	for i, c := range f.Conditions {
		var v string
		switch c.Field {
		case FieldReceivedTime:
			v = fmt.Sprintf("%q", c.Time.UTC().Format(time.RFC3339Nano))
		case FieldNeedsReply, FieldClassified:
			v = fmt.Sprint(c.Bool)
		case FieldState:
			v = strings.ToUpper(string(c.State))
		default:
			v = fmt.Sprintf("%q", c.Text)
		}
		parts[i] = string(c.Field) + " " + string(c.Op) + " " + v
	}
	slices.Sort(parts)
	return strings.Join(parts, " AND ")
}

// ParseFilter parses s. Anything outside the supported subset is an
// InvalidArgument error on the field "filter" that says what and where
// (positions count bytes from 1). Values are never echoed back: a filter may
// hold an address.
func ParseFilter(s string) (Filter, error) {
	if len(s) > MaxFilterLength {
		return Filter{}, apierror.Invalid("filter", "is %d characters long; at most %d are accepted", len(s), MaxFilterLength)
	}
	p := &parser{lex: lexer{src: s}}
	var f Filter
	if p.peek().kind == tokEOF {
		return f, nil
	}
	for {
		c, err := p.condition()
		if err != nil {
			return Filter{}, err
		}
		if len(f.Conditions) == MaxFilterTerms {
			return Filter{}, apierror.Invalid("filter", "has more than %d conditions", MaxFilterTerms)
		}
		f.Conditions = append(f.Conditions, c)
		t := p.next()
		switch {
		case t.kind == tokEOF:
			return f, nil
		case t.kind == tokErr:
			return Filter{}, filterErr(t.pos, "%s", t.text)
		case t.kind == tokWord && t.text == "AND":
			if p.peek().kind == tokEOF {
				return Filter{}, filterErr(t.pos, "AND must be followed by a condition")
			}
		case t.kind == tokWord && t.text == "OR":
			return Filter{}, filterErr(t.pos, "OR is not supported; join conditions with AND")
		case t.kind == tokWord && strings.EqualFold(t.text, "and"):
			return Filter{}, filterErr(t.pos, "write AND in capitals")
		default:
			return Filter{}, filterErr(t.pos, "expected AND between conditions")
		}
	}
}

func filterErr(pos int, format string, args ...any) error {
	return apierror.Invalid("filter", "at position %d: %s", pos, fmt.Sprintf(format, args...))
}

type parser struct {
	lex    lexer
	peeked *token
}

func (p *parser) next() token {
	if p.peeked != nil {
		t := *p.peeked
		p.peeked = nil
		return t
	}
	return p.lex.next()
}

func (p *parser) peek() token {
	if p.peeked == nil {
		t := p.lex.next()
		p.peeked = &t
	}
	return *p.peeked
}

func (p *parser) condition() (Condition, error) {
	t := p.next()
	switch t.kind {
	case tokEOF:
		return Condition{}, filterErr(t.pos, "expected a condition")
	case tokErr:
		return Condition{}, filterErr(t.pos, "%s", t.text)
	case tokOp:
		if t.text == "(" || t.text == ")" {
			return Condition{}, filterErr(t.pos, "parentheses are not supported; join conditions with AND")
		}
		return Condition{}, filterErr(t.pos, "expected a field name, got %q", t.text)
	case tokString:
		return Condition{}, filterErr(t.pos, "expected a field name, got a quoted string")
	}
	switch {
	case t.text == "NOT" || strings.HasPrefix(t.text, "-"):
		return Condition{}, filterErr(t.pos, "negation is not supported")
	case t.text == "AND" || t.text == "OR":
		return Condition{}, filterErr(t.pos, "expected a condition before %s", t.text)
	}
	field := Field(t.text)
	if !slices.Contains(fields, field) {
		return Condition{}, filterErr(t.pos, "unknown field %q; the fields are %s", truncate(t.text, 40), fieldList())
	}

	o := p.next()
	if o.kind == tokErr {
		return Condition{}, filterErr(o.pos, "%s", o.text)
	}
	if o.kind != tokOp || o.text == "(" || o.text == ")" {
		return Condition{}, filterErr(o.pos, "expected an operator after %s", field)
	}
	op := Op(o.text)
	switch op {
	case OpEq:
	case OpLt, OpLe, OpGt, OpGe:
		if field != FieldReceivedTime {
			return Condition{}, filterErr(o.pos, "%s supports only =", field)
		}
	case ":":
		return Condition{}, filterErr(o.pos, "the has operator (:) is not supported; use =")
	default:
		return Condition{}, filterErr(o.pos, "operator %s is not supported; use =, <, <=, > or >=", o.text)
	}

	v := p.next()
	if v.kind == tokErr {
		return Condition{}, filterErr(v.pos, "%s", v.text)
	}
	if v.kind != tokString && (v.kind != tokWord || v.text == "AND" || v.text == "OR") {
		return Condition{}, filterErr(v.pos, "expected a value after %s %s", field, op)
	}
	c := Condition{Field: field, Op: op}
	switch field {
	case FieldCategory:
		c.Text = strings.ToLower(strings.TrimSpace(v.text))
		if c.Text == "" {
			return Condition{}, filterErr(v.pos, "category must not be empty")
		}
	case FieldFrom:
		c.Text = strings.ToLower(strings.TrimSpace(v.text))
		if c.Text == "" {
			return Condition{}, filterErr(v.pos, "from must not be empty")
		}
	case FieldMailbox:
		parts := strings.Split(v.text, "/")
		if len(parts) != 4 || parts[0] != "users" || parts[2] != "mailboxes" || !resname.ValidID(parts[1]) || !resname.ValidID(parts[3]) {
			return Condition{}, filterErr(v.pos, "mailbox must be a name of the form users/{user}/mailboxes/{mailbox}")
		}
		c.Owner, c.Text = parts[1], parts[3]
	case FieldReceivedTime:
		if v.kind != tokString {
			return Condition{}, filterErr(v.pos, "received_time must be a quoted RFC 3339 time, as in \"2026-01-01T00:00:00Z\"")
		}
		tm, err := time.Parse(time.RFC3339Nano, v.text)
		if err != nil {
			return Condition{}, filterErr(v.pos, "received_time must be an RFC 3339 time, as in \"2026-01-01T00:00:00Z\"")
		}
		c.Time = tm.UTC()
	case FieldNeedsReply, FieldClassified:
		switch strings.ToLower(v.text) {
		case "true":
			c.Bool = true
		case "false":
			c.Bool = false
		default:
			return Condition{}, filterErr(v.pos, "%s must be true or false", field)
		}
	case FieldState:
		switch strings.TrimPrefix(strings.ToUpper(v.text), "MESSAGE_STATE_") {
		case "PENDING":
			c.State = StatePending
		case "CLASSIFIED":
			c.State = StateClassified
		case "FAILED":
			c.State = StateFailed
		default:
			return Condition{}, filterErr(v.pos, "state must be PENDING, CLASSIFIED or FAILED")
		}
	}
	return c, nil
}

func fieldList() string {
	s := make([]string, len(fields))
	for i, f := range fields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokString
	tokOp
	tokErr
)

type token struct {
	kind tokKind
	text string
	pos  int // 1-based byte position
}

type lexer struct {
	src string
	i   int
}

func isSpecial(r byte) bool {
	switch r {
	case '=', '!', '<', '>', ':', '(', ')', '"', '\'':
		return true
	}
	return false
}

func (l *lexer) next() token {
	for l.i < len(l.src) && unicode.IsSpace(rune(l.src[l.i])) {
		l.i++
	}
	start := l.i
	pos := start + 1
	if l.i >= len(l.src) {
		return token{kind: tokEOF, pos: pos}
	}
	c := l.src[l.i]
	switch c {
	case '"', '\'':
		var b strings.Builder
		l.i++
		for l.i < len(l.src) {
			ch := l.src[l.i]
			switch {
			case ch == '\\' && l.i+1 < len(l.src):
				b.WriteByte(l.src[l.i+1])
				l.i += 2
			case ch == c:
				l.i++
				return token{kind: tokString, text: b.String(), pos: pos}
			default:
				b.WriteByte(ch)
				l.i++
			}
		}
		return token{kind: tokErr, text: "unterminated string", pos: pos}
	case '<', '>', '!':
		l.i++
		if l.i < len(l.src) && l.src[l.i] == '=' {
			l.i++
		}
		return token{kind: tokOp, text: l.src[start:l.i], pos: pos}
	case '=', ':', '(', ')':
		l.i++
		return token{kind: tokOp, text: l.src[start:l.i], pos: pos}
	}
	for l.i < len(l.src) && !isSpecial(l.src[l.i]) && !unicode.IsSpace(rune(l.src[l.i])) {
		l.i++
	}
	return token{kind: tokWord, text: l.src[start:l.i], pos: pos}
}
