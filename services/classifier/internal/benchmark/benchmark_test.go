package benchmark_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/benchmark"
)

// TestHarnessOnATinyWorkload runs the whole harness — the real classifier
// over JetStream against the fake, the baseline, the fairness case, the
// report and a chart — on a workload of a few seconds. Every mail ends
// classified by the model, none lost or classified twice; the limiter keeps
// the fake from answering 429 and, by the fake's own per-second counts,
// never admits faster than the limit allows. How fast it goes is the
// benchmark's to measure (`make bench-classifier`), not this test's: no
// threshold here depends on how busy the machine is.
func TestHarnessOnATinyWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the classifier for several seconds")
	}
	ctx := t.Context()
	mails := benchmark.Backfill(benchmark.Users(4), 50) // 200 mails
	perMail, err := benchmark.AdmissionTokens(ctx, mails, 20)
	if err != nil {
		t.Fatal(err)
	}
	if perMail < 300 || perMail > 1500 {
		t.Fatalf("admission tokens per mail = %.0f, want a classifier-sized prompt (300–1500)", perMail)
	}
	const rpm = 6000 // 100 a second: 200 mails take 2 s at the limit
	s := benchmark.Setup{
		RPM: rpm, TPM: int(rpm * perMail), Latency: 50 * time.Millisecond, Jitter: 20 * time.Millisecond,
		Burst: time.Second, MaxAckPending: 100, Timeout: time.Minute, Dir: t.TempDir(),
	}
	r, err := benchmark.RunPipeline(ctx, s, "tiny", mails, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Err != nil {
		t.Fatalf("the run did not finish: %v", r.Err)
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.Classified != len(mails) || r.ByModel != len(mails) {
		t.Errorf("classified %d (%d by the model), lost %d, duplicated %d; want all %d by the model, none lost or duplicated",
			r.Classified, r.ByModel, r.Lost, r.Duplicated, len(mails))
	}
	if r.RateLimited != 0 {
		t.Errorf("%d requests answered 429, want none", r.RateLimited)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("the classifier logged warnings: %v", r.Warnings)
	}
	if r.Admitted != int64(len(mails)) {
		t.Errorf("the fake admitted %d requests for %d mails", r.Admitted, len(mails))
	}
	// The limiter admits at most a burst (1 s, 100 requests) plus the rate
	// (100 a second): by the end of the fake's second i, at most
	// 100 + 100 × (i + 1).
	var admitted int64
	for i, sec := range r.Series {
		admitted += sec.Admitted
		if most := int64(100 + 100*(i+1)); admitted > most {
			t.Errorf("by the end of second %d the fake admitted %d requests, more than the limits allow (%d)", i, admitted, most)
		}
	}
	if ratio := r.Ratio(); ratio <= 0 || math.IsNaN(ratio) {
		t.Errorf("completion %s ÷ minimum %s = %.2f, want a ratio", r.Completion, r.Minimum(), ratio)
	}
	if r.MaxInFlight < 1 || r.MedianLatency < s.Latency {
		t.Errorf("max in flight %d, median latency %s: the meter saw nothing", r.MaxInFlight, r.MedianLatency)
	}

	b, err := benchmark.RunBaseline(ctx, s, mails, 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 10 at a time at 50–70 ms a call: never more than 200 in a second.
	if b.Completed < 1 || b.Completed > 10*int(time.Second/s.Latency) || b.Failed != 0 {
		t.Errorf("baseline completed %d (failed %d) in 1 s with 10 slots at 50–70 ms", b.Completed, b.Failed)
	}
	if b.MaxInFlight > 10 {
		t.Errorf("baseline had %d requests in flight, want at most its semaphore, 10", b.MaxInFlight)
	}

	f, err := benchmark.RunFairness(ctx, s, 800)
	if err != nil {
		t.Fatal(err)
	}
	if f.Err != nil || f.Lost != 0 || f.Duplicated != 0 {
		t.Fatalf("fairness run: err %v, lost %d, duplicated %d", f.Err, f.Lost, f.Duplicated)
	}
	if len(f.Live) == 0 || len(f.Live) != len(f.Backfill) {
		t.Fatalf("fairness run: %d live and %d backfill waits, want some of each, as many", len(f.Live), len(f.Backfill))
	}
	if f.LiveP50() <= 0 {
		t.Errorf("B's live mail waited %s (p50)", f.LiveP50())
	}

	rep := &benchmark.Report{Date: time.Now(), Machine: benchmark.ThisMachine(), Setup: s, TokensPerMail: perMail, Main: r, Baseline: b, Fairness: f,
		Charts: map[string]string{"tiny": "chart-tiny.png"}}
	md := rep.Markdown()
	for _, want := range []string{"## Targets", "1 replica: completion ÷ theoretical minimum", "fairness: B's live mail, p95 wait", "projected", "chart-tiny.png"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}
