package mailstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/services/store/internal/mailstore"
)

func TestParseFilter(t *testing.T) {
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want []mailstore.Condition
	}{
		{``, nil},
		{`   `, nil},
		{`category = "newsletters"`, []mailstore.Condition{{Field: "category", Op: "=", Text: "newsletters"}}},
		{`category=Newsletters`, []mailstore.Condition{{Field: "category", Op: "=", Text: "newsletters"}}},
		{`category = 'work'`, []mailstore.Condition{{Field: "category", Op: "=", Text: "work"}}},
		{`mailbox = "users/ada/mailboxes/inbox-2"`, []mailstore.Condition{{Field: "mailbox", Op: "=", Owner: "ada", Text: "inbox-2"}}},
		{`from = "News@Example.COM"`, []mailstore.Condition{{Field: "from", Op: "=", Text: "news@example.com"}}},
		{`from = news@example.com`, []mailstore.Condition{{Field: "from", Op: "=", Text: "news@example.com"}}},
		{`received_time > "2026-01-01T00:00:00Z"`, []mailstore.Condition{{Field: "received_time", Op: ">", Time: jan}}},
		{`received_time>="2026-01-01T01:00:00+01:00"`, []mailstore.Condition{{Field: "received_time", Op: ">=", Time: jan}}},
		{`received_time < "2026-01-01T00:00:00Z"`, []mailstore.Condition{{Field: "received_time", Op: "<", Time: jan}}},
		{`received_time <= "2026-01-01T00:00:00.000Z"`, []mailstore.Condition{{Field: "received_time", Op: "<=", Time: jan}}},
		{`needs_reply = true`, []mailstore.Condition{{Field: "needs_reply", Op: "=", Bool: true}}},
		{`needs_reply = false`, []mailstore.Condition{{Field: "needs_reply", Op: "="}}},
		{`state = CLASSIFIED`, []mailstore.Condition{{Field: "state", Op: "=", State: mailstore.StateClassified}}},
		{`classified = false`, []mailstore.Condition{{Field: "classified", Op: "="}}},
		{`classified = TRUE`, []mailstore.Condition{{Field: "classified", Op: "=", Bool: true}}},
		{`state = "pending"`, []mailstore.Condition{{Field: "state", Op: "=", State: mailstore.StatePending}}},
		{`state = MESSAGE_STATE_FAILED`, []mailstore.Condition{{Field: "state", Op: "=", State: mailstore.StateFailed}}},
		{`category = "a b" AND needs_reply = true AND received_time > "2026-01-01T00:00:00Z"`, []mailstore.Condition{
			{Field: "category", Op: "=", Text: "a b"},
			{Field: "needs_reply", Op: "=", Bool: true},
			{Field: "received_time", Op: ">", Time: jan},
		}},
		{`category = "say \"hi\""`, []mailstore.Condition{{Field: "category", Op: "=", Text: `say "hi"`}}},
	} {
		got, err := mailstore.ParseFilter(tc.in)
		if err != nil {
			t.Errorf("ParseFilter(%s): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got.Conditions); diff != "" {
			t.Errorf("ParseFilter(%s) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{`subject = "x"`, `at position 1: unknown field "subject"; the fields are category, mailbox, from, received_time, needs_reply, state, classified`},
		{`category = "a" OR category = "b"`, `at position 16: OR is not supported`},
		{`category = "a" and state = PENDING`, `at position 16: write AND in capitals`},
		{`category = "a" state = PENDING`, `at position 16: expected AND between conditions`},
		{`category = "a" AND`, `at position 16: AND must be followed by a condition`},
		{`AND category = "a"`, `at position 1: expected a condition before AND`},
		{`(category = "a")`, `at position 1: parentheses are not supported`},
		{`NOT category = "a"`, `at position 1: negation is not supported`},
		{`-category = "a"`, `at position 1: negation is not supported`},
		{`category != "a"`, `at position 10: operator != is not supported`},
		{`category: "a"`, `at position 9: the has operator (:) is not supported; use =`},
		{`category > "a"`, `at position 10: category supports only =`},
		{`needs_reply < true`, `at position 13: needs_reply supports only =`},
		{`category`, `at position 9: expected an operator after category`},
		{`category "a"`, `at position 10: expected an operator after category`},
		{`category =`, `at position 11: expected a value after category =`},
		{`category = AND`, `at position 12: expected a value after category =`},
		{`category = ""`, `at position 12: category must not be empty`},
		{`category = "open`, `at position 12: unterminated string`},
		{`"category" = "a"`, `at position 1: expected a field name, got a quoted string`},
		{`= "a"`, `at position 1: expected a field name, got "="`},
		{`mailbox = "inbox"`, `at position 11: mailbox must be a name of the form users/{user}/mailboxes/{mailbox}`},
		{`mailbox = "users/Ada/mailboxes/x"`, `at position 11: mailbox must be a name of the form`},
		{`received_time > "yesterday"`, `at position 17: received_time must be an RFC 3339 time`},
		{`received_time > 2026-01-01`, `at position 17: received_time must be a quoted RFC 3339 time`},
		{`needs_reply = yes`, `at position 15: needs_reply must be true or false`},
		{`classified = 0`, `at position 14: classified must be true or false`},
		{`classified > false`, `at position 12: classified supports only =`},
		{`state = DONE`, `at position 9: state must be PENDING, CLASSIFIED or FAILED`},
		{`from = ""`, `at position 8: from must not be empty`},
	} {
		_, err := mailstore.ParseFilter(tc.in)
		e, ok := apierror.As(err)
		if !ok || e.Kind != apierror.InvalidArgument || e.Field != "filter" {
			t.Errorf("ParseFilter(%s): err = %v, want InvalidArgument on filter", tc.in, err)
			continue
		}
		if !strings.HasPrefix(e.Message, tc.want) {
			t.Errorf("ParseFilter(%s): message %q, want it to start with %q", tc.in, e.Message, tc.want)
		}
	}
}

// Filters are bounded: at most 1,000 characters and 20 conditions.
func TestParseFilterBounds(t *testing.T) {
	terms := func(n int) string {
		c := make([]string, n)
		for i := range c {
			c[i] = `needs_reply = true`
		}
		return strings.Join(c, " AND ")
	}
	if _, err := mailstore.ParseFilter(terms(20)); err != nil {
		t.Errorf("20 conditions: %v", err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"21 conditions", terms(21), "has more than 20 conditions"},
		{"1,001 characters", `category = "` + strings.Repeat("a", 988) + `"`, "is 1001 characters long; at most 1000 are accepted"},
	} {
		_, err := mailstore.ParseFilter(tc.in)
		e, ok := apierror.As(err)
		if !ok || e.Kind != apierror.InvalidArgument || e.Field != "filter" || e.Message != tc.want {
			t.Errorf("%s: err = %v, want InvalidArgument on filter: %s", tc.name, err, tc.want)
		}
	}
}

func TestParseFilterNeverEchoesValues(t *testing.T) {
	for _, in := range []string{
		`from = "secret@example.com" OR x = 1`,
		`received_time > "secret@example.com"`,
		`mailbox = "secret@example.com"`,
	} {
		_, err := mailstore.ParseFilter(in)
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseFilter(%s): err = %v; want an error without the value", in, err)
		}
	}
}

func TestFilterStringIsCanonical(t *testing.T) {
	a, err := mailstore.ParseFilter(`category = "Work" AND received_time > "2026-01-01T01:00:00+01:00"`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mailstore.ParseFilter(`received_time>"2026-01-01T00:00:00Z"    AND category=work`)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("equivalent filters differ: %q vs %q", a.String(), b.String())
	}
	c, _ := mailstore.ParseFilter(`category = "work" AND received_time >= "2026-01-01T00:00:00Z"`)
	if a.String() == c.String() {
		t.Errorf("different filters share a canonical form %q", a.String())
	}
}
