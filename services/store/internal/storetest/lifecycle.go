package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mailroom.dev/platform/sqldb"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// The contract of dead letters, retention and deleting a user.

func mustFail(t *testing.T, r mailstore.Repository, fs ...mailstore.Failed) {
	t.Helper()
	if err := r.SaveFailed(ctx(t), fs); err != nil {
		t.Fatalf("SaveFailed: %v", err)
	}
}

func failure(m mailstore.Message, reason string, at int) mailstore.Failed {
	return mailstore.Failed{Message: m, Reason: reason, FailTime: base.Add(2*time.Hour + time.Duration(at)*time.Second)}
}

func testClassifiedFilter(t *testing.T, r mailstore.Repository) {
	m0, m1, m2 := received("ada", 0), received("ada", 1), received("ada", 2)
	mustReceive(t, r, m0, m1)
	mustClassify(t, r, verdict(m1, "work", 0))
	mustFail(t, r, failure(m2, "model answered 500", 0))
	svc := mailstore.NewService(r, mailstore.Options{})
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{`classified = false`, []string{"m002", "m000"}},
		{`classified = true`, []string{"m001"}},
		{`state = PENDING`, []string{"m000"}},
		{`state = FAILED`, []string{"m002"}},
		{`classified = false AND state = PENDING`, []string{"m000"}},
		{`classified = true AND state = PENDING`, []string{}},
		{`classified = false AND mailbox = "users/me/mailboxes/inbox"`, []string{"m002", "m000"}},
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
}

func testDeadLetters(t *testing.T, r mailstore.Repository) {
	pending, unseen, done := received("ada", 1), received("ada", 2), received("ada", 3)
	mustReceive(t, r, pending, done)
	v := verdict(done, "work", 0)
	mustClassify(t, r, v)
	mustFail(t, r, failure(pending, "timeout", 0), failure(unseen, "timeout", 0), failure(done, "timeout", 0))

	if got := mustGet(t, r, "ada", pending.ID); got.State != mailstore.StateFailed || got.Classification != nil {
		t.Errorf("pending message after its dead letter: state %s, classification %v; want failed", got.State, got.Classification)
	}
	// A dead letter of a message never seen creates it from the MailReceived it carries.
	want := unseen
	want.State = mailstore.StateFailed
	if diff := diffMessage(want, mustGet(t, r, "ada", unseen.ID)); diff != "" {
		t.Errorf("unseen message after its dead letter (-want +got):\n%s", diff)
	}
	// A classification, earlier or later, wins over a failure.
	if got := mustGet(t, r, "ada", done.ID); got.State != mailstore.StateClassified || got.Classification == nil {
		t.Errorf("classified message after a dead letter: state %s; want classified", got.State)
	}
	mustClassify(t, r, verdict(pending, "finance", 1))
	if got := mustGet(t, r, "ada", pending.ID); got.State != mailstore.StateClassified || got.Classification.Category != "finance" {
		t.Errorf("failed message classified later: state %s; want classified as finance", got.State)
	}

	// Redelivered, or an older failure arriving late: nothing changes.
	before := mustGet(t, r, "ada", unseen.ID)
	time.Sleep(10 * time.Millisecond)
	mustFail(t, r, failure(unseen, "timeout", 0), failure(unseen, "older", -5))
	if after := mustGet(t, r, "ada", unseen.ID); !after.UpdateTime.Equal(before.UpdateTime) {
		t.Errorf("a redelivered dead letter rewrote the message: update time %v → %v", before.UpdateTime, after.UpdateTime)
	}
	// A MailReceived arriving after the dead letter keeps the message failed.
	mustReceive(t, r, unseen)
	if got := mustGet(t, r, "ada", unseen.ID); got.State != mailstore.StateFailed {
		t.Errorf("failed message after a late MailReceived: state %s; want failed", got.State)
	}

	s, err := r.Stats(ctx(t), "ada")
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 3 || s.Failed != 1 || s.Classified != 2 || s.Pending != 0 {
		t.Errorf("stats = %+v; want 3 messages, 2 classified, 1 failed", s)
	}
}

func diffMessage(want, got mailstore.Message) string {
	return cmp.Diff(want, got, ignoreTimes, emptyLists)
}

func testListHasNoBodies(t *testing.T, r mailstore.Repository) {
	svc := mailstore.NewService(r, mailstore.Options{StoreBodies: true})
	m := received("ada", 1)
	m.Body = "the whole text"
	if err := svc.RecordReceived(ctx(t), []mailstore.Message{m}); err != nil {
		t.Fatal(err)
	}
	p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{})
	if err != nil || len(p.Messages) != 1 {
		t.Fatalf("List: %d messages, %v", len(p.Messages), err)
	}
	if p.Messages[0].Body != "" {
		t.Errorf("List returned a body")
	}
	if got, err := svc.Get(ctx(t), "ada", m.ID); err != nil || got.Body != m.Body {
		t.Errorf("Get: body %q, err %v; want the stored body", got.Body, err)
	}
}

func testPaginationUnderInserts(t *testing.T, r mailstore.Repository) {
	var msgs []mailstore.Message
	for n := range 30 {
		m := received("ada", n)
		if n%3 == 0 {
			m.ReceivedTime = received("ada", n+1).ReceivedTime // ties across pages
		}
		msgs = append(msgs, m)
	}
	mustReceive(t, r, msgs...)
	svc := mailstore.NewService(r, mailstore.Options{})
	for _, filter := range []string{"", `from = "sender@example.com"`} {
		want := ids(list(t, r, "ada", mailstore.ListQuery{Limit: 1000}))
		if len(want) < 30 {
			t.Fatalf("%d messages listed, want at least 30", len(want))
		}
		var got []string
		token := ""
		for page := 0; ; page++ {
			p, err := svc.List(ctx(t), "ada", mailstore.ListRequest{PageSize: 4, PageToken: token, Filter: filter})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			got = append(got, ids(p.Messages)...)
			// Newer mail arrives between every two pages.
			mustReceive(t, r, received("ada", 100+page+len(filter)*10))
			if token = p.NextPageToken; token == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("filter %q: pages = %v, want %v (no duplicate, no skip)", filter, got, want)
		}
	}
}

func testRetention(t *testing.T, r mailstore.Repository) {
	now := base.Add(100 * 24 * time.Hour)
	svc := mailstore.NewService(r, mailstore.Options{
		Retention:      30 * 24 * time.Hour,
		UsageRetention: 60 * 24 * time.Hour,
		PurgeBatch:     3,
		Now:            func() time.Time { return now },
	})
	age := func(m mailstore.Message, days int) mailstore.Message {
		m.ReceivedTime = now.Add(-time.Duration(days)*24*time.Hour + time.Duration(len(m.ID))*time.Second)
		return m
	}
	var old, fresh []mailstore.Message
	for n := range 10 {
		user := []string{"ada", "bob"}[n%2]
		old = append(old, age(received(user, n), 31+n))
	}
	for n := range 4 {
		fresh = append(fresh, age(received("ada", 20+n), 29-n))
	}
	mustReceive(t, r, append(slices.Clone(old), fresh...)...)
	// Usage records: two older than the usage retention, one younger.
	at := func(m mailstore.Message, days int) mailstore.Classified {
		v := llmVerdict(m, "work", 0, mailstore.Cost{CostMicros: 10, Requests: 1})
		v.Message.Classification.ClassifyTime = now.Add(-time.Duration(days) * 24 * time.Hour)
		return v
	}
	mustClassify(t, r, at(fresh[0], 61), at(fresh[1], 70), at(fresh[2], 59))
	// A deletion remembered past its time, and one still remembered.
	if err := r.MarkUserDeleted(ctx(t), "gone-long-ago", now.Add(-mailstore.TombstoneRetention-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := r.MarkUserDeleted(ctx(t), "gone-recently", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	got, err := svc.PurgeExpired(ctx(t))
	if err != nil {
		t.Fatalf("PurgeExpired: %v", err)
	}
	if want := (mailstore.Purged{Messages: 10, UsageRecords: 2, Tombstones: 1}); got != want {
		t.Errorf("PurgeExpired = %+v, want %+v", got, want)
	}
	if got, want := ids(list(t, r, "ada", mailstore.ListQuery{Limit: 100})), ids(fresh); !sameSet(got, want) {
		t.Errorf("ada keeps %v, want the fresh %v", got, want)
	}
	if got := list(t, r, "bob", mailstore.ListQuery{Limit: 100}); len(got) != 0 {
		t.Errorf("bob keeps %d expired messages", len(got))
	}
	if u := usage(t, r, "ada"); u.Classifications != 1 || u.CostMicros != 10 {
		t.Errorf("usage after purge = %+v, want the one recent record", u)
	}
	// The forgotten deletion drops nothing any more; the recent one still does.
	late := func(user string) mailstore.Message {
		m := received(user, 1)
		m.ReceivedTime = now
		m.IngestTime = now.Add(-mailstore.TombstoneRetention - 2*time.Hour)
		return m
	}
	mustReceive(t, r, late("gone-long-ago"), late("gone-recently"))
	if n := len(list(t, r, "gone-long-ago", mailstore.ListQuery{Limit: 10})); n != 1 {
		t.Errorf("forgotten deletion: %d messages stored, want 1", n)
	}
	if n := len(list(t, r, "gone-recently", mailstore.ListQuery{Limit: 10})); n != 0 {
		t.Errorf("recent deletion: %d late messages stored, want 0", n)
	}

	again, err := svc.PurgeExpired(ctx(t))
	if err != nil || again != (mailstore.Purged{}) {
		t.Errorf("second PurgeExpired = %+v, %v; want nothing left to purge", again, err)
	}
	off := mailstore.NewService(r, mailstore.Options{Now: func() time.Time { return now.Add(1000 * 24 * time.Hour) }})
	if p, err := off.PurgeExpired(ctx(t)); err != nil || p.Messages != 0 || p.UsageRecords != 0 {
		t.Errorf("PurgeExpired without retention = %+v, %v; want no message or usage deleted", p, err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func testPurgeUser(t *testing.T, db *sqlrepo.DB) {
	r := db.Repo
	deletedAt := base.Add(24 * time.Hour)
	svc := mailstore.NewService(r, mailstore.Options{PurgeBatch: 4, Now: func() time.Time { return deletedAt }})
	var adas []mailstore.Message
	var verdicts []mailstore.Classified
	for n := range 10 {
		m := received("ada", n)
		adas = append(adas, m)
		if n < 7 {
			verdicts = append(verdicts, llmVerdict(m, "work", n, mailstore.Cost{CostMicros: 1, Requests: 1}))
		}
	}
	mustReceive(t, r, adas...)
	mustClassify(t, r, verdicts...)
	mustFail(t, r, failure(received("ada", 50), "timeout", 0))
	bobs := []mailstore.Message{received("bob", 1), received("bob", 2)}
	mustReceive(t, r, bobs...)
	mustClassify(t, r, llmVerdict(bobs[0], "work", 0, mailstore.Cost{CostMicros: 5, Requests: 1}))

	got, err := svc.PurgeUser(ctx(t), "ada")
	if err != nil {
		t.Fatalf("PurgeUser: %v", err)
	}
	if want := (mailstore.Purged{Messages: 11, UsageRecords: 7}); got != want {
		t.Errorf("PurgeUser = %+v, want %+v", got, want)
	}
	for table, n := range userRows(t, db, "ada") {
		if n != 0 && table != "store_deleted_users" {
			t.Errorf("table %s keeps %d rows of the deleted user", table, n)
		}
	}
	if s, _ := r.Stats(ctx(t), "ada"); s.Total != 0 {
		t.Errorf("stats of the deleted user = %+v", s)
	}
	if n := len(list(t, r, "bob", mailstore.ListQuery{Limit: 10})); n != 2 {
		t.Errorf("bob has %d messages after ada's deletion, want 2", n)
	}
	if u := usage(t, r, "bob"); u.CostMicros != 5 {
		t.Errorf("bob's usage after ada's deletion = %+v", u)
	}

	// Purging again is harmless and finds nothing.
	if again, err := svc.PurgeUser(ctx(t), "ada"); err != nil || again != (mailstore.Purged{}) {
		t.Errorf("second PurgeUser = %+v, %v; want nothing deleted", again, err)
	}
	// A new user of the same id, whose mail is ingested after the deletion.
	m := received("ada", 1)
	m.IngestTime = deletedAt.Add(time.Second)
	v := llmVerdict(m, "finance", 9, mailstore.Cost{CostMicros: 3, Requests: 1})
	v.Message.IngestTime = m.IngestTime
	mustReceive(t, r, m)
	mustClassify(t, r, v)
	if got := mustGet(t, r, "ada", m.ID); got.Classification == nil || got.Classification.Category != "finance" {
		t.Errorf("the new ada's message: %+v", got)
	}
	if u := usage(t, r, "ada"); u.Classifications != 1 || u.CostMicros != 3 {
		t.Errorf("the new ada's usage = %+v, want her one classification", u)
	}
}

// userRows counts user's rows in every table of the store's schema, which
// must all have a user_id column.
func userRows(t *testing.T, db *sqlrepo.DB, user string) map[string]int64 {
	t.Helper()
	c := ctx(t)
	var q string
	if db.Backend == sqldb.Postgres {
		q = `SELECT t.table_name, EXISTS (SELECT FROM information_schema.columns c
                WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'user_id')
             FROM information_schema.tables t
             WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'`
	} else {
		q = `SELECT m.name, EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'user_id')
             FROM sqlite_master m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
	}
	rows, err := db.SQL.QueryContext(c, q)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	counts := map[string]int64{}
	var tables []string
	for rows.Next() {
		var name string
		var hasUser bool
		if err := rows.Scan(&name, &hasUser); err != nil {
			t.Fatal(err)
		}
		// The version table and SQLite's change counter (one number) hold
		// no user's data.
		if name == sqlrepo.VersionTable || name == "store_change_counter" {
			continue
		}
		if !hasUser {
			t.Errorf("table %s has no user_id column: teach userRows how to find a user's rows in it", name)
			continue
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 3 {
		t.Fatalf("found only the tables %v", tables)
	}
	for _, table := range tables {
		var n int64
		if err := db.SQL.QueryRowContext(c, "SELECT count(*) FROM "+table+" WHERE user_id = $1", user).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		counts[table] = n
	}
	return counts
}

func testLateEvents(t *testing.T, r mailstore.Repository) {
	deletedAt := base.Add(24 * time.Hour)
	if err := r.MarkUserDeleted(ctx(t), "ada", deletedAt); err != nil {
		t.Fatal(err)
	}
	ingested := func(m mailstore.Message, at time.Time) mailstore.Message {
		m.IngestTime = at
		return m
	}
	// Events of mail ingested up to the deletion: dropped, without error.
	mustReceive(t, r, ingested(received("ada", 1), deletedAt.Add(-time.Second)))
	v := llmVerdict(ingested(received("ada", 2), deletedAt), "work", 0, mailstore.Cost{CostMicros: 9, Requests: 1})
	mustClassify(t, r, v)
	mustFail(t, r, failure(ingested(received("ada", 3), deletedAt.Add(-time.Hour)), "timeout", 0))
	if got := list(t, r, "ada", mailstore.ListQuery{Limit: 10}); len(got) != 0 {
		t.Errorf("late events of the deleted user stored %v", ids(got))
	}
	if u := usage(t, r, "ada"); u.Classifications != 0 {
		t.Errorf("late verdict of the deleted user counted: %+v", u)
	}
	// Mail ingested after the deletion belongs to a new user of that id;
	// other users are not concerned at all.
	after := ingested(received("ada", 4), deletedAt.Add(time.Millisecond))
	mustReceive(t, r, after, ingested(received("bob", 1), deletedAt.Add(-time.Hour)))
	mustClassify(t, r, llmVerdict(after, "work", 0, mailstore.Cost{CostMicros: 1, Requests: 1}))
	if got := ids(list(t, r, "ada", mailstore.ListQuery{Limit: 10})); !slices.Equal(got, []string{"m004"}) {
		t.Errorf("ada after the deletion = %v, want [m004]", got)
	}
	if got := ids(list(t, r, "bob", mailstore.ListQuery{Limit: 10})); !slices.Equal(got, []string{"m001"}) {
		t.Errorf("bob = %v, want [m001]", got)
	}
	// A second deletion moves the line; an earlier one does not move it back.
	if err := r.MarkUserDeleted(ctx(t), "ada", deletedAt.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustReceive(t, r, ingested(received("ada", 5), deletedAt.Add(-time.Second)))
	if got := ids(list(t, r, "ada", mailstore.ListQuery{Limit: 10})); !slices.Equal(got, []string{"m004"}) {
		t.Errorf("ada after an earlier second deletion = %v, want [m004]", got)
	}
}

// testPurgeRacesWriters deletes a user while batches of that user's mail,
// all ingested before the deletion, are being written: whatever the
// interleaving, nothing of theirs remains.
func testPurgeRacesWriters(t *testing.T, r mailstore.Repository) {
	deletedAt := base.Add(24 * time.Hour)
	svc := mailstore.NewService(r, mailstore.Options{PurgeBatch: 50, Now: func() time.Time { return deletedAt }})
	var (
		stop    atomic.Bool
		batches atomic.Int64
		wg      sync.WaitGroup
		errs    = make(chan error, 100)
	)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				var msgs []mailstore.Message
				var vs []mailstore.Classified
				for k := range 10 {
					m := received("gone", 0)
					m.ID = fmt.Sprintf("w%d-%04d-%02d", w, i, k)
					m.IngestTime = base
					msgs = append(msgs, m)
					vs = append(vs, llmVerdict(m, "work", 0, mailstore.Cost{CostMicros: 1, Requests: 1}))
				}
				if err := r.SaveReceived(context.Background(), msgs); err != nil {
					errs <- err
					return
				}
				if err := r.SaveClassified(context.Background(), vs); err != nil {
					errs <- err
					return
				}
				batches.Add(1)
			}
		})
	}
	for batches.Load() < 6 && len(errs) == 0 {
		time.Sleep(time.Millisecond)
	}
	p, err := svc.PurgeUser(ctx(t), "gone")
	n := batches.Load()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("writer: %v", err)
	}
	if err != nil {
		t.Fatalf("PurgeUser: %v", err)
	}
	if p.Messages == 0 {
		t.Errorf("PurgeUser deleted nothing although %d batches were written before it", n)
	}
	if got := list(t, r, "gone", mailstore.ListQuery{Limit: 10}); len(got) != 0 {
		t.Errorf("%d messages of the deleted user remain (writes raced the deletion)", len(got))
	}
	if u := usage(t, r, "gone"); u.Classifications != 0 {
		t.Errorf("%d usage records of the deleted user remain", u.Classifications)
	}
}
