// Package storetest is the contract suite of mailstore.Repository: one set
// of behaviours that every adapter (postgres, sqlite) must show, run from
// each adapter's tests against a real database, opened as the service opens
// it (package backend).
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// NewURL returns the URL of a fresh, empty database.
type NewURL func(t testing.TB) string

// Open opens a fresh database from newURL with the store's schema.
func Open(t testing.TB, newURL NewURL) *sqlrepo.DB {
	t.Helper()
	db, err := sqlrepo.Open(context.Background(), newURL(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type test struct {
	name string
	run  func(t *testing.T, db *sqlrepo.DB)
}

// repo adapts a test that needs only the repository.
func repo(fn func(t *testing.T, r mailstore.Repository)) func(t *testing.T, db *sqlrepo.DB) {
	return func(t *testing.T, db *sqlrepo.DB) { fn(t, db.Repo) }
}

// Run runs the contract suite; every subtest gets a database of its own.
func Run(t *testing.T, newURL NewURL) {
	tests := []test{
		{"ReceivedThenClassified", repo(testReceivedThenClassified)},
		{"ClassifiedBeforeReceived", repo(testClassifiedBeforeReceived)},
		{"RedeliveredBatchChangesNothing", repo(testRedelivered)},
		{"DuplicateKeysInOneBatch", repo(testDuplicateKeys)},
		{"OlderVerdictDoesNotReplaceNewer", repo(testOlderVerdict)},
		{"Reclassification", repo(testReclassification)},
		{"GetMissing", repo(testGetMissing)},
		{"ListNewestFirst", repo(testListNewestFirst)},
		{"ListEmpty", repo(testListEmpty)},
		{"Pagination", repo(testPagination)},
		{"PaginationStableWhileMailArrives", repo(testPaginationStable)},
		{"PageTokenBinding", repo(testPageTokenBinding)},
		{"Filters", repo(testFilters)},
		{"Stats", repo(testStats)},
		{"Usage", repo(testUsage)},
		{"Bodies", repo(testBodies)},
		{"TenantIsolation", repo(testTenantIsolation)},
		{"ConcurrentWriters", repo(testConcurrentWriters)},
		{"ClassifiedFilter", repo(testClassifiedFilter)},
		{"DeadLetters", repo(testDeadLetters)},
		{"ListHasNoBodies", repo(testListHasNoBodies)},
		{"PaginationStableUnderInserts", repo(testPaginationUnderInserts)},
		{"RetentionPurge", repo(testRetention)},
		{"PurgeUser", testPurgeUser},
		{"LateEventsOfDeletedUser", repo(testLateEvents)},
		{"PurgeUserRacesWriters", repo(testPurgeRacesWriters)},
	}
	tests = append(tests, changeTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, Open(t, newURL))
		})
	}
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// received returns a received message of user, id "m<n>", at base + n minutes.
func received(user string, n int) mailstore.Message {
	return mailstore.Message{
		User:              user,
		ID:                fmt.Sprintf("m%03d", n),
		MailboxID:         "inbox",
		ProviderMessageID: fmt.Sprintf("p%d", n),
		Subject:           fmt.Sprintf("Subject %d", n),
		From:              "Sender <sender@example.com>",
		FromAddress:       "sender@example.com",
		To:                []string{"Ada <ada@example.com>", "bob@example.com"},
		ReceivedTime:      base.Add(time.Duration(n) * time.Minute),
		Snippet:           "Hello",
		SizeBytes:         int64(1000 + n),
		AttachmentNames:   []string{"a.pdf"},
		State:             mailstore.StatePending,
	}
}

// verdict returns a verdict on m, classified at base + at seconds.
func verdict(m mailstore.Message, category string, at int) mailstore.Classified {
	m.Body = ""
	m.State = mailstore.StateClassified
	m.Classification = &mailstore.Classification{
		Category:     category,
		Confidence:   0.875,
		Priority:     mailstore.PriorityNormal,
		Reason:       "a list header",
		Source:       mailstore.SourceRules,
		Rule:         "list-unsubscribe",
		ClassifyTime: base.Add(time.Hour + time.Duration(at)*time.Second),
	}
	return mailstore.Classified{Message: m, Cost: mailstore.Cost{}}
}

func llmVerdict(m mailstore.Message, category string, at int, cost mailstore.Cost) mailstore.Classified {
	v := verdict(m, category, at)
	v.Message.Classification.Source = mailstore.SourceLLM
	v.Message.Classification.Rule = ""
	v.Message.Classification.Model = "gpt-test"
	v.Message.Classification.NeedsReply = true
	v.Message.Classification.Priority = mailstore.PriorityHigh
	v.Cost = cost
	return v
}

// ignoreTimes leaves out the times the repository sets.
var ignoreTimes = cmpopts.IgnoreFields(mailstore.Message{}, "CreateTime", "UpdateTime")

var emptyLists = cmpopts.EquateEmpty()

func mustReceive(t *testing.T, r mailstore.Repository, msgs ...mailstore.Message) {
	t.Helper()
	if err := r.SaveReceived(ctx(t), msgs); err != nil {
		t.Fatalf("SaveReceived: %v", err)
	}
}

func mustClassify(t *testing.T, r mailstore.Repository, vs ...mailstore.Classified) {
	t.Helper()
	if err := r.SaveClassified(ctx(t), vs); err != nil {
		t.Fatalf("SaveClassified: %v", err)
	}
}

func mustGet(t *testing.T, r mailstore.Repository, user, id string) mailstore.Message {
	t.Helper()
	m, err := r.GetMessage(ctx(t), user, id)
	if err != nil {
		t.Fatalf("GetMessage(%s, %s): %v", user, id, err)
	}
	return m
}

func classified(m mailstore.Message, c *mailstore.Classification) mailstore.Message {
	m.State = mailstore.StateClassified
	m.Classification = c
	return m
}

func testReceivedThenClassified(t *testing.T, r mailstore.Repository) {
	m := received("ada", 1)
	mustReceive(t, r, m)
	got := mustGet(t, r, "ada", m.ID)
	if diff := cmp.Diff(m, got, ignoreTimes, emptyLists); diff != "" {
		t.Fatalf("after received (-want +got):\n%s", diff)
	}
	if got.CreateTime.IsZero() || got.UpdateTime.IsZero() {
		t.Errorf("create/update time not set: %v %v", got.CreateTime, got.UpdateTime)
	}

	// A verdict whose metadata differs must not overwrite what MailReceived said.
	v := verdict(m, "newsletters", 0)
	v.Message.Subject = "something else"
	v.Message.ReceivedTime = base
	mustClassify(t, r, v)
	got = mustGet(t, r, "ada", m.ID)
	if diff := cmp.Diff(classified(m, v.Message.Classification), got, ignoreTimes, emptyLists); diff != "" {
		t.Fatalf("after classified (-want +got):\n%s", diff)
	}
}

func testClassifiedBeforeReceived(t *testing.T, r mailstore.Repository) {
	m := received("ada", 1)
	v := verdict(m, "newsletters", 0)
	mustClassify(t, r, v)
	got := mustGet(t, r, "ada", m.ID)
	if diff := cmp.Diff(v.Message, got, ignoreTimes, emptyLists); diff != "" {
		t.Fatalf("after classified alone (-want +got):\n%s", diff)
	}

	// The late MailReceived brings the authoritative metadata (and body) but
	// never takes the classification away.
	late := m
	late.Subject = "Subject as received"
	late.Body = "the text"
	mustReceive(t, r, late)
	got = mustGet(t, r, "ada", m.ID)
	if diff := cmp.Diff(classified(late, v.Message.Classification), got, ignoreTimes, emptyLists); diff != "" {
		t.Fatalf("after late received (-want +got):\n%s", diff)
	}
}

func testRedelivered(t *testing.T, r mailstore.Repository) {
	var msgs []mailstore.Message
	var vs []mailstore.Classified
	for n := range 4 {
		m := received("ada", n)
		msgs = append(msgs, m)
		vs = append(vs, llmVerdict(m, "work", n, mailstore.Cost{PromptTokens: 100, CompletionTokens: 10, CostMicros: 50, Requests: 1}))
	}
	mustReceive(t, r, msgs...)
	mustClassify(t, r, vs[:2]...)
	before := list(t, r, "ada", mailstore.ListQuery{Limit: 100})
	usageBefore := usage(t, r, "ada")

	time.Sleep(10 * time.Millisecond) // so that a rewrite would show in update_time
	mustReceive(t, r, msgs...)
	mustClassify(t, r, vs[:2]...)
	after := list(t, r, "ada", mailstore.ListQuery{Limit: 100})
	if diff := cmp.Diff(before, after, emptyLists); diff != "" {
		t.Errorf("redelivery changed messages (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(usageBefore, usage(t, r, "ada")); diff != "" {
		t.Errorf("redelivery changed usage (-before +after):\n%s", diff)
	}
	if got, want := usageBefore.Classifications, int64(2); got != want {
		t.Errorf("classifications = %d, want %d", got, want)
	}
}

func testDuplicateKeys(t *testing.T, r mailstore.Repository) {
	first := received("ada", 1)
	second := first
	second.Subject = "second delivery"
	mustReceive(t, r, first, received("ada", 2), second)
	if got := mustGet(t, r, "ada", first.ID).Subject; got != "second delivery" {
		t.Errorf("subject = %q, want the last of the batch", got)
	}

	cost := mailstore.Cost{PromptTokens: 10, Requests: 1, CostMicros: 7}
	older := llmVerdict(first, "work", 1, cost)
	newer := llmVerdict(first, "finance", 2, cost)
	// The same verdict twice, and two verdicts on one message, in one batch.
	mustClassify(t, r, newer, older, newer, llmVerdict(received("ada", 2), "social", 1, cost))
	if got := mustGet(t, r, "ada", first.ID).Classification.Category; got != "finance" {
		t.Errorf("category = %q, want the latest verdict's", got)
	}
	u := usage(t, r, "ada")
	if got, want := u.Classifications, int64(3); got != want {
		t.Errorf("classifications = %d, want %d (distinct verdicts)", got, want)
	}
	if got, want := u.CostMicros, int64(21); got != want {
		t.Errorf("cost = %d, want %d", got, want)
	}
}

func testOlderVerdict(t *testing.T, r mailstore.Repository) {
	m := received("ada", 1)
	mustReceive(t, r, m)
	mustClassify(t, r, verdict(m, "finance", 10))
	mustClassify(t, r, verdict(m, "work", 5))
	got := mustGet(t, r, "ada", m.ID).Classification
	if got.Category != "finance" || !got.ClassifyTime.Equal(base.Add(time.Hour+10*time.Second)) {
		t.Errorf("classification = %s at %v, want finance at +10s", got.Category, got.ClassifyTime)
	}
}

func testReclassification(t *testing.T, r mailstore.Repository) {
	m := received("ada", 1)
	mustReceive(t, r, m)
	mustClassify(t, r, llmVerdict(m, "work", 1, mailstore.Cost{CostMicros: 5, Requests: 1}))
	mustClassify(t, r, llmVerdict(m, "finance", 2, mailstore.Cost{CostMicros: 5, Requests: 1}))
	if got := mustGet(t, r, "ada", m.ID).Classification.Category; got != "finance" {
		t.Errorf("category = %q, want finance", got)
	}
	// Both verdicts were paid for.
	if got := usage(t, r, "ada"); got.Classifications != 2 || got.CostMicros != 10 {
		t.Errorf("usage = %d classifications, %d micros; want 2, 10", got.Classifications, got.CostMicros)
	}
}

func testGetMissing(t *testing.T, r mailstore.Repository) {
	if _, err := r.GetMessage(ctx(t), "ada", "nope"); err != mailstore.ErrNotFound {
		t.Errorf("GetMessage of a missing message: err = %v, want ErrNotFound", err)
	}
	svc := mailstore.NewService(r, mailstore.Options{})
	if _, err := svc.Get(ctx(t), "ada", "nope"); apierror.KindOf(err) != apierror.NotFound {
		t.Errorf("Service.Get of a missing message: err = %v, want NotFound", err)
	}
}

func list(t *testing.T, r mailstore.Repository, user string, q mailstore.ListQuery) []mailstore.Message {
	t.Helper()
	q.User = user
	msgs, err := r.ListMessages(ctx(t), q)
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	return msgs
}

func ids(msgs []mailstore.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func usage(t *testing.T, r mailstore.Repository, user string) mailstore.Usage {
	t.Helper()
	u, err := r.Usage(ctx(t), user)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

func testListNewestFirst(t *testing.T, r mailstore.Repository) {
	a, b, c := received("ada", 1), received("ada", 3), received("ada", 2)
	// Two messages at the same time are ordered by id, descending.
	tie := received("ada", 4)
	tie.ReceivedTime = b.ReceivedTime
	mustReceive(t, r, a, b, c, tie)
	got := ids(list(t, r, "ada", mailstore.ListQuery{Limit: 10}))
	want := []string{"m004", "m003", "m002", "m001"}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func testListEmpty(t *testing.T, r mailstore.Repository) {
	svc := mailstore.NewService(r, mailstore.Options{})
	p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(p.Messages) != 0 || p.NextPageToken != "" {
		t.Errorf("empty list = %d messages, token %q; want none", len(p.Messages), p.NextPageToken)
	}
}

func testPagination(t *testing.T, r mailstore.Repository) {
	var msgs []mailstore.Message
	for n := range 7 {
		msgs = append(msgs, received("ada", n))
	}
	// Same-time messages across a page boundary must not be lost or repeated.
	msgs[3].ReceivedTime = msgs[4].ReceivedTime
	msgs[2].ReceivedTime = msgs[4].ReceivedTime
	mustReceive(t, r, msgs...)
	svc := mailstore.NewService(r, mailstore.Options{})

	var got []string
	var sizes []int
	token := ""
	for range 10 {
		p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got = append(got, ids(p.Messages)...)
		sizes = append(sizes, len(p.Messages))
		token = p.NextPageToken
		if token == "" {
			break
		}
	}
	want := []string{"m006", "m005", "m004", "m003", "m002", "m001", "m000"}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
	if !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("page sizes = %v, want [3 3 1]", sizes)
	}

	// An exact multiple: the last full page says there is no more.
	p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 7})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(p.Messages) != 7 || p.NextPageToken != "" {
		t.Errorf("page of 7 of 7: %d messages, token %q; want 7 and no token", len(p.Messages), p.NextPageToken)
	}

	// Page sizes: default, maximum, negative.
	if _, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: -1}); apierror.KindOf(err) != apierror.InvalidArgument {
		t.Errorf("page_size -1: err = %v, want InvalidArgument", err)
	}
	if p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 5000}); err != nil || len(p.Messages) != 7 {
		t.Errorf("page_size 5000: %d messages, err %v; want 7 (capped, not refused)", len(p.Messages), err)
	}
}

func testPaginationStable(t *testing.T, r mailstore.Repository) {
	for n := range 4 {
		mustReceive(t, r, received("ada", n))
	}
	svc := mailstore.NewService(r, mailstore.Options{})
	p1, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, r, received("ada", 10)) // newer mail arrives
	p2, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 2, PageToken: p1.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	got := append(ids(p1.Messages), ids(p2.Messages)...)
	if want := []string{"m003", "m002", "m001", "m000"}; !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
}

func testPageTokenBinding(t *testing.T, r mailstore.Repository) {
	for n := range 3 {
		mustReceive(t, r, received("ada", n), received("bob", n))
	}
	svc := mailstore.NewService(r, mailstore.Options{})
	p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 1, Filter: `from = "sender@example.com"`})
	if err != nil || p.NextPageToken == "" {
		t.Fatalf("List: token %q, err %v", p.NextPageToken, err)
	}
	// The same filter written differently is the same filter.
	if _, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 1, Filter: `from="SENDER@example.com"`, PageToken: p.NextPageToken}); err != nil {
		t.Errorf("same filter, other spelling: %v", err)
	}
	for _, tc := range []struct {
		name, user, filter, token string
	}{
		{"another user", "bob", `from = "sender@example.com"`, p.NextPageToken},
		{"another filter", "ada", `category = "work"`, p.NextPageToken},
		{"no filter", "ada", "", p.NextPageToken},
		{"garbage", "ada", `from = "sender@example.com"`, "not-a-token"},
		{"base64 of garbage", "ada", `from = "sender@example.com"`, "eyJ2Ijo5fQ"},
	} {
		_, err := svc.List(ctx(t), tc.user, mailstore.ListRequest{PageSize: 1, Filter: tc.filter, PageToken: tc.token})
		if e, ok := apierror.As(err); !ok || e.Kind != apierror.InvalidArgument || e.Field != "page_token" {
			t.Errorf("%s: err = %v, want InvalidArgument on page_token", tc.name, err)
		}
	}
}

func testFilters(t *testing.T, r mailstore.Repository) {
	m0 := received("ada", 0) // pending
	m1 := received("ada", 1)
	m1.MailboxID = "work"
	m1.FromAddress = "boss@example.com"
	m2 := received("ada", 2)
	m3 := received("ada", 3)
	mustReceive(t, r, m0, m1, m2, m3)
	mustClassify(t, r,
		verdict(m1, "work", 0),
		llmVerdict(m2, "newsletters", 0, mailstore.Cost{}),
		verdict(m3, "newsletters", 0))
	svc := mailstore.NewService(r, mailstore.Options{})

	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{``, []string{"m003", "m002", "m001", "m000"}},
		{`category = "newsletters"`, []string{"m003", "m002"}},
		{`category = newsletters`, []string{"m003", "m002"}},
		{`category = "other"`, []string{}},
		{`mailbox = "users/ada/mailboxes/work"`, []string{"m001"}},
		{`mailbox = "users/me/mailboxes/inbox"`, []string{"m003", "m002", "m000"}},
		{`from = "boss@example.com"`, []string{"m001"}},
		{`from = "Sender@Example.com"`, []string{"m003", "m002", "m000"}},
		{`received_time > "2026-03-01T12:02:00Z"`, []string{"m003"}},
		{`received_time >= "2026-03-01T12:02:00Z"`, []string{"m003", "m002"}},
		{`received_time < "2026-03-01T12:01:00Z"`, []string{"m000"}},
		{`received_time <= "2026-03-01T13:01:00+01:00"`, []string{"m001", "m000"}},
		{`received_time = "2026-03-01T12:01:00Z"`, []string{"m001"}},
		{`needs_reply = true`, []string{"m002"}},
		{`needs_reply = false`, []string{"m003", "m001"}},
		{`state = PENDING`, []string{"m000"}},
		{`state = CLASSIFIED`, []string{"m003", "m002", "m001"}},
		{`state = "MESSAGE_STATE_FAILED"`, []string{}},
		{`category = "newsletters" AND received_time < "2026-03-01T12:03:00Z"`, []string{"m002"}},
		{`received_time > "2026-03-01T12:00:00Z" AND received_time < "2026-03-01T12:03:00Z" AND state = CLASSIFIED`, []string{"m002", "m001"}},
	} {
		p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{Filter: tc.filter})
		if err != nil {
			t.Errorf("filter %s: %v", tc.filter, err)
			continue
		}
		if got := ids(p.Messages); !slices.Equal(got, tc.want) {
			t.Errorf("filter %s = %v, want %v", tc.filter, got, tc.want)
		}
	}

	// Paging through a filtered list.
	p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{Filter: `category = "newsletters"`, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := svc.List(ctx(t), "ada", mailstore.ListRequest{Filter: `category = "newsletters"`, PageSize: 1, PageToken: p.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	if got := append(ids(p.Messages), ids(p2.Messages)...); !slices.Equal(got, []string{"m003", "m002"}) || p2.NextPageToken != "" {
		t.Errorf("filtered pages = %v (next %q), want [m003 m002] and no token", got, p2.NextPageToken)
	}

	_, err = svc.List(ctx(t), "ada", mailstore.ListRequest{Filter: `mailbox = "users/bob/mailboxes/inbox"`})
	if e, ok := apierror.As(err); !ok || e.Kind != apierror.InvalidArgument || e.Field != "filter" {
		t.Errorf("another user's mailbox: err = %v, want InvalidArgument on filter", err)
	}
	_, err = svc.List(ctx(t), "ada", mailstore.ListRequest{Filter: `subject = "x"`})
	if e, ok := apierror.As(err); !ok || e.Kind != apierror.InvalidArgument || e.Field != "filter" {
		t.Errorf("unknown field: err = %v, want InvalidArgument on filter", err)
	}
}

func testStats(t *testing.T, r mailstore.Repository) {
	var msgs []mailstore.Message
	for n := range 6 {
		m := received("ada", n)
		if n >= 4 {
			m.MailboxID = "work"
		}
		msgs = append(msgs, m)
	}
	mustReceive(t, r, msgs...)
	mustClassify(t, r,
		verdict(msgs[0], "newsletters", 0),
		verdict(msgs[1], "newsletters", 0),
		verdict(msgs[2], "work", 0),
		verdict(msgs[4], "finance", 0),
		verdict(msgs[5], "newsletters", 0))
	mustReceive(t, r, received("bob", 1)) // someone else's

	got, err := r.Stats(ctx(t), "ada")
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := mailstore.Stats{
		Total: 6, Classified: 5, Pending: 1, Failed: 0,
		Categories: []mailstore.CategoryCount{
			{Category: "newsletters", Count: 3},
			{Category: "finance", Count: 1},
			{Category: "work", Count: 1},
		},
		Mailboxes: []mailstore.MailboxCount{
			{MailboxID: "inbox", Count: 4, Classified: 3},
			{MailboxID: "work", Count: 2, Classified: 2},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}

	empty, err := r.Stats(ctx(t), "nobody")
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if diff := cmp.Diff(mailstore.Stats{}, empty, emptyLists); diff != "" {
		t.Errorf("Stats of nobody (-want +got):\n%s", diff)
	}
}

func testUsage(t *testing.T, r mailstore.Repository) {
	m0, m1, m2 := received("ada", 0), received("ada", 1), received("ada", 2)
	mustReceive(t, r, m0, m1, m2)
	m3, m4 := received("ada", 3), received("ada", 4)
	mustReceive(t, r, m3, m4)
	// An escalated verdict: two models, each priced on its own.
	llm := llmVerdict(m1, "work", 3, mailstore.Cost{PromptTokens: 400, CompletionTokens: 20, CachedPromptTokens: 128, CostMicros: 90, Requests: 2,
		Models: []mailstore.ModelCost{
			{Model: "gpt-4o-mini", PromptTokens: 200, CompletionTokens: 10, CachedPromptTokens: 128, CostMicros: 30, Requests: 1},
			{Model: "gpt-4o", PromptTokens: 200, CompletionTokens: 10, CostMicros: 60, Requests: 1},
		}})
	cache := verdict(m2, "work", 4)
	cache.Message.Classification.Source = mailstore.SourceCache
	learned := verdict(m3, "work", 5)
	learned.Message.Classification.Source = mailstore.SourceLearned
	batch := []mailstore.Classified{verdict(m0, "newsletters", 2), llm, cache, learned}
	mustClassify(t, r, batch...)
	mustClassify(t, r, batch...) // redelivered: counted once
	// A message given up on: its failed attempts were paid for and count
	// (once, however often the dead letter is delivered), but not as a
	// classification.
	dead := mailstore.Failed{Message: m4, Reason: "model answered 500", FailTime: base.Add(time.Hour + 6*time.Second),
		Cost: mailstore.Cost{PromptTokens: 300, CompletionTokens: 0, CostMicros: 45, Requests: 3,
			Models: []mailstore.ModelCost{{Model: "gpt-4o-mini", PromptTokens: 300, CostMicros: 45, Requests: 3}}}}
	for range 2 {
		if err := r.SaveFailed(ctx(t), []mailstore.Failed{dead}); err != nil {
			t.Fatalf("SaveFailed: %v", err)
		}
	}

	got := usage(t, r, "ada")
	want := mailstore.Usage{
		Classifications: 4, RuleClassifications: 1, LLMClassifications: 1, CacheClassifications: 1, LearnedClassifications: 1,
		DeadLetters: 1,
		Requests:    5, PromptTokens: 700, CompletionTokens: 20, CachedPromptTokens: 128, CostMicros: 135,
		Models: []mailstore.ModelCost{
			{Model: "gpt-4o", PromptTokens: 200, CompletionTokens: 10, CostMicros: 60, Requests: 1},
			{Model: "gpt-4o-mini", PromptTokens: 500, CompletionTokens: 10, CachedPromptTokens: 128, CostMicros: 75, Requests: 4},
		},
		StartTime: base.Add(time.Hour + 2*time.Second),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Usage (-want +got):\n%s", diff)
	}

	svc := mailstore.NewService(r, mailstore.Options{Now: func() time.Time { return base.Add(48 * time.Hour) }})
	su, err := svc.Usage(ctx(t), "ada")
	if err != nil {
		t.Fatal(err)
	}
	if !su.EndTime.Equal(base.Add(48 * time.Hour)) {
		t.Errorf("EndTime = %v, want now", su.EndTime)
	}
	if got := usage(t, r, "nobody"); !cmp.Equal(got, mailstore.Usage{}) {
		t.Errorf("Usage of nobody = %+v, want zero", got)
	}
}

func testBodies(t *testing.T, r mailstore.Repository) {
	m := received("ada", 1)
	m.Body = "the whole text"
	m.Subject = "with a NUL \x00 inside"
	without := mailstore.NewService(r, mailstore.Options{})
	if err := without.RecordReceived(ctx(t), []mailstore.Message{m}); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, r, "ada", m.ID)
	if got.Body != "" {
		t.Errorf("body stored without StoreBodies: %q", got.Body)
	}
	if got.Subject != "with a NUL  inside" {
		t.Errorf("subject = %q, want the NUL removed", got.Subject)
	}

	m2 := received("ada", 2)
	m2.Body = "the whole text"
	with := mailstore.NewService(r, mailstore.Options{StoreBodies: true})
	if err := with.RecordReceived(ctx(t), []mailstore.Message{m2}); err != nil {
		t.Fatal(err)
	}
	// A verdict, even one that carries a body by mistake, keeps the body.
	v := verdict(m2, "work", 1)
	v.Message.Body = "not this"
	if err := with.RecordClassified(ctx(t), []mailstore.Classified{v}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, r, "ada", m2.ID).Body; got != "the whole text" {
		t.Errorf("body with StoreBodies = %q, want the received body", got)
	}
}

func testTenantIsolation(t *testing.T, r mailstore.Repository) {
	// The same message id under two users is two messages.
	a, b := received("ada", 1), received("bob", 1)
	b.Subject = "bob's"
	mustReceive(t, r, a, b, received("bob", 2))
	mustClassify(t, r, llmVerdict(b, "finance", 1, mailstore.Cost{CostMicros: 100, Requests: 1}))

	if got := mustGet(t, r, "ada", a.ID); got.Subject != a.Subject || got.Classification != nil {
		t.Errorf("ada's message = %q classified %v; bob's verdict leaked", got.Subject, got.Classification != nil)
	}
	if got := ids(list(t, r, "ada", mailstore.ListQuery{Limit: 10})); !slices.Equal(got, []string{"m001"}) {
		t.Errorf("ada lists %v, want only her own [m001]", got)
	}
	if _, err := r.GetMessage(ctx(t), "ada", "m002"); err != mailstore.ErrNotFound {
		t.Errorf("ada gets bob's m002: err = %v, want ErrNotFound", err)
	}
	if s, _ := r.Stats(ctx(t), "ada"); s.Total != 1 || s.Classified != 0 {
		t.Errorf("ada's stats = %+v, want 1 message, none classified", s)
	}
	if u := usage(t, r, "ada"); u.Classifications != 0 || u.CostMicros != 0 {
		t.Errorf("ada's usage = %+v, want none", u)
	}
	if u := usage(t, r, "bob"); u.Classifications != 1 || u.CostMicros != 100 {
		t.Errorf("bob's usage = %+v, want 1 classification, 100 micros", u)
	}
}

func testConcurrentWriters(t *testing.T, r mailstore.Repository) {
	const (
		writers  = 6
		rounds   = 3
		messages = 40
	)
	var all []mailstore.Message
	for n := range messages {
		all = append(all, received("ada", n))
	}
	// Overlapping batches in random order, planned up front so that the
	// outcome is known: every message written, its latest verdict, and the
	// number of distinct verdicts.
	type plan struct {
		received []mailstore.Message
		verdicts []mailstore.Classified
	}
	plans := make([][]plan, writers)
	latest := map[string]int{}
	distinct := map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for w := range writers {
		for round := range rounds {
			batch := slices.Clone(all)
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			batch = batch[:messages/2]
			var vs []mailstore.Classified
			for _, m := range batch {
				vs = append(vs, llmVerdict(m, fmt.Sprintf("c%d", round), round, mailstore.Cost{CostMicros: 1, Requests: 1}))
				latest[m.ID] = max(latest[m.ID], round)
				distinct[fmt.Sprint(m.ID, round)] = true
			}
			plans[w] = append(plans[w], plan{batch, vs})
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Go(func() {
			for _, p := range plans[w] {
				if w%2 == 0 {
					errs <- r.SaveClassified(context.Background(), p.verdicts)
					errs <- r.SaveReceived(context.Background(), p.received)
				} else {
					errs <- r.SaveReceived(context.Background(), p.received)
					errs <- r.SaveClassified(context.Background(), p.verdicts)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent write: %v", err)
		}
	}

	got := list(t, r, "ada", mailstore.ListQuery{Limit: 1000})
	if len(got) != len(latest) {
		t.Errorf("%d messages after concurrent writes, want %d", len(got), len(latest))
	}
	for _, m := range got {
		want := fmt.Sprintf("c%d", latest[m.ID])
		if m.State != mailstore.StateClassified || m.Classification == nil || m.Classification.Category != want {
			t.Errorf("message %s: state %s, classification %+v; want the latest verdict %s", m.ID, m.State, m.Classification, want)
		}
	}
	u := usage(t, r, "ada")
	if got, want := u.Classifications, int64(len(distinct)); got != want || u.CostMicros != want {
		t.Errorf("usage after concurrent writes: %d classifications, %d micros; want %d of each", got, u.CostMicros, want)
	}
}
