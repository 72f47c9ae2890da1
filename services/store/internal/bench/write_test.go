package bench_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/bench"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// The consumer's defaults (MAILROOM_STORE_BATCH_SIZE, MAILROOM_STORE_WRITERS):
// batches of up to 500 events, two batches of a stream written at a time.
// BENCH_BATCH and BENCH_WRITERS try other settings.
var (
	batchSize = envInt("BENCH_BATCH", 500)
	writers   = envInt("BENCH_WRITERS", 2)
)

func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}

// BenchmarkWrite records batches of events through the domain service and
// the real repository, one transaction per batch, as the consumer does.
// One op is one batch; rows/s is the figure to watch.
//
//	received            MailReceived of new messages
//	classified          MailClassified of messages already received (the usual order)
//	classified_first    MailClassified of messages not seen yet
//
// Every run of a kind gets a fresh database, so that the figures do not
// depend on what ran before (a checkpoint falling due, a bigger table).
func BenchmarkWrite(b *testing.B) {
	for _, name := range []string{"postgres", "sqlite"} {
		newURL := testenv.DatabaseURLs()[name]
		b.Run(name, func(b *testing.B) {
			for i, k := range kinds(nil) {
				b.Run(k.name, func(b *testing.B) {
					write(b, b.N, kinds(open(b, newURL(b)))[i].prepare(b, b.N))
				})
			}
		})
	}
}

func open(tb testing.TB, url string) *mailstore.Service {
	db, err := sqlrepo.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return mailstore.NewService(db.Repo, mailstore.Options{})
}

// kind is one kind of write: prepare makes n batches (writing what must be
// there before, untimed) and returns the timed write of batch i. kinds(nil)
// gives the names alone.
type kind struct {
	name    string
	prepare func(tb testing.TB, n int) func(i int) error
}

func kinds(svc *mailstore.Service) []kind {
	ctx := context.Background()
	end := time.Now()
	next := 0
	// Each batch is one user's stretch of mail; users take turns, as in a
	// backfill of several users.
	batches := func(n int) [][]mailstore.Message {
		out := make([][]mailstore.Message, n)
		for i := range out {
			user := bench.UserID(next / batchSize % 20)
			out[i] = make([]mailstore.Message, batchSize)
			for j := range out[i] {
				out[i][j] = bench.Message(user, next, end)
				next++
			}
		}
		return out
	}
	verdicts := func(in [][]mailstore.Message) [][]mailstore.Classified {
		out := make([][]mailstore.Classified, len(in))
		for i, msgs := range in {
			out[i] = make([]mailstore.Classified, len(msgs))
			for j, m := range msgs {
				out[i][j] = bench.Verdict(m, j, end)
			}
		}
		return out
	}
	return []kind{
		{"received", func(tb testing.TB, n int) func(int) error {
			in := batches(n)
			return func(i int) error { return svc.RecordReceived(ctx, in[i]) }
		}},
		{"classified", func(tb testing.TB, n int) func(int) error {
			in := batches(n)
			for _, msgs := range in {
				if err := svc.RecordReceived(ctx, msgs); err != nil {
					tb.Fatal(err)
				}
			}
			vs := verdicts(in)
			return func(i int) error { return svc.RecordClassified(ctx, vs[i]) }
		}},
		{"classified_first", func(tb testing.TB, n int) func(int) error {
			vs := verdicts(batches(n))
			return func(i int) error { return svc.RecordClassified(ctx, vs[i]) }
		}},
	}
}

// write runs batches 0…n-1 through fn on the consumer's number of writers,
// timing only that, and reports rows/s.
func write(b *testing.B, n int, fn func(i int) error) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, writers)
	)
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n*batchSize)/s, "rows/s")
	}
}

// TestWriteSmoke writes one batch of each kind of the write benchmark on
// both backends, so that the benchmark keeps compiling and working under
// `go test`.
func TestWriteSmoke(t *testing.T) {
	for name, url := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			svc := open(t, url(t))
			for _, k := range kinds(svc) {
				if err := k.prepare(t, 1)(0); err != nil {
					t.Errorf("%s: %v", k.name, err)
				}
			}
		})
	}
}
