// Command run is `make bench-classifier`: it runs the classifier benchmark
// (package benchmark) — the main run, three replicas sharing one key, the
// Semaphore(10) baseline, the fairness case and issue 9's real-world runs
// (1 s windows, wrong or no configured limits, a change of tier, another
// client on the organization, two models, latency steps) — writes
// report.md, traffic.json (which `go run ./bench/cmd/charts` turns into the
// charts) and the services' logs under -out, and prints the report.
//
//	go run ./services/classifier/internal/benchmark/run [-out bench/out/classifier] [-only latency] [-skip main,replicas]
//
// Runs: main, replicas, baseline, fairness, and the real-world ones
// (window-1s, window-1s-minute, over-4x, learned, tier-change, shared,
// two-models, latency; "realworld" names them all).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/services/classifier/internal/benchmark"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-classifier:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		out       = flag.String("out", "bench/out/classifier", "directory for report.md, the charts and the logs")
		users     = flag.Int("users", 20, "users in the main run")
		perUser   = flag.Int("per-user", 500, "backfill mails per user")
		rpm       = flag.Int("rpm", 10000, "requests per minute of the key")
		tpm       = flag.Int("tpm", 0, "tokens per minute of the key (0: RPM × the measured admission tokens per mail)")
		latency   = flag.Duration("latency", 2500*time.Millisecond, "the fake's base latency")
		jitter    = flag.Duration("jitter", time.Second, "the most jitter added to the latency")
		window    = flag.Duration("window", 6*time.Second, "the fake's enforcement window")
		burst     = flag.Duration("burst", 0, "the classifier's OPENAI_BURST (0: its default)")
		mapend    = flag.Int("max-ack-pending", 0, "the classifier's MaxAckPending (0: its default)")
		workers   = flag.Int("workers", 0, "the classifier's Workers (0: its default)")
		replicas  = flag.Int("replicas", 3, "replicas in the shared-key run")
		baseConc  = flag.Int("baseline-concurrency", 10, "the baseline's semaphore")
		baseWall  = flag.Duration("baseline-wall", 60*time.Second, "how long the baseline runs")
		backlog   = flag.Int("fairness-backlog", 6000, "user A's backfill in the fairness case")
		skip      = flag.String("skip", "", "comma-separated runs to leave out: main, replicas, baseline, fairness, realworld (all of issue 9's) or one of them: window-1s, window-1s-minute, over-4x, learned, tier-change, shared, two-models, latency")
		only      = flag.String("only", "", "comma-separated runs to do, the others left out (names as for -skip)")
		rwRPM     = flag.Int("rw-rpm", 1200, "real-world runs: the fake's real RPM (TPM: RPM × the admission tokens per mail)")
		rwFloor   = flag.Duration("rw-floor", 50*time.Second, "real-world runs: about how long each run's floor is (the workloads are sized from it; the first row's two runs take half each)")
		rwLatency = flag.Duration("rw-latency", time.Second, "real-world runs: the fake's base latency (the latency run steps 300ms → 3s → 300ms)")
		rwJitter  = flag.Duration("rw-jitter", 500*time.Millisecond, "real-world runs: the most jitter added to the latency")
		rwRemain  = flag.String("rw-remaining", "minute", "real-world runs after the first two: how the fake reports x-ratelimit-remaining-*, per minute (as OpenAI documents it) or per window")
		rwUsers   = flag.Int("rw-users", 20, "real-world runs: users the mails are spread over")
		rwTimeout = flag.Duration("rw-timeout", 3*time.Minute, "real-world runs: bound on one run")
		timeout   = flag.Duration("timeout", 5*time.Minute, "bound on one run")
		seed      = flag.Uint64("seed", 1, "seed of the fake's jitter")
		tmpParent = flag.String("tmp", "", "where runs keep their NATS and SQLite files (default: the system's temp dir)")
	)
	flag.Parse()
	list := func(v string) map[string]bool {
		m := map[string]bool{}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				m[s] = true
			}
		}
		return m
	}
	skipList, onlyList := list(*skip), list(*only)
	// want reports whether the named run (of group, "" or "realworld") is to be done.
	want := func(name, group string) bool {
		if skipList[name] || group != "" && skipList[group] {
			return false
		}
		return len(onlyList) == 0 || onlyList[name] || group != "" && onlyList[group]
	}
	skipped := map[string]bool{}
	for _, n := range []string{"main", "replicas", "baseline", "fairness"} {
		skipped[n] = !want(n, "")
	}
	if *rwRemain != "minute" && *rwRemain != "window" {
		return fmt.Errorf("-rw-remaining %q: want minute or window", *rwRemain)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(filepath.Join(*out, "logs"), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(*tmpParent, "mailroom-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	began := time.Now()
	machine := benchmark.ThisMachine()
	mails := benchmark.Backfill(benchmark.Users(*users), *perUser)
	logf("measuring the admission tokens of %d mails on a sample", len(mails))
	perMail, err := benchmark.AdmissionTokens(ctx, mails, 200)
	if err != nil {
		return err
	}
	if *tpm == 0 {
		*tpm = int(math.Round(float64(*rpm) * perMail))
	}
	var logFiles []*os.File
	defer func() {
		for _, f := range logFiles {
			f.Close()
		}
	}()
	setup := benchmark.Setup{
		RPM: *rpm, TPM: *tpm, Latency: *latency, Jitter: *jitter, Window: *window, Burst: *burst,
		MaxAckPending: *mapend, Workers: *workers, Timeout: *timeout, Dir: tmp, Seed: *seed,
		LogsFor: func(run string) io.Writer {
			f, err := os.Create(filepath.Join(*out, "logs", run+".log"))
			if err != nil {
				return nil
			}
			logFiles = append(logFiles, f)
			return f
		},
	}
	logf("limits: RPM %d, TPM %d (%.1f admission tokens per mail); latency %s + up to %s", *rpm, *tpm, perMail, *latency, *jitter)
	rep := &benchmark.Report{Date: began, Machine: machine, Setup: setup, TokensPerMail: perMail, Charts: map[string]string{}}

	// The charts are drawn by bench/cmd/charts from traffic.json, so that
	// this module does not pull in a plotting library.
	var traffic []chartRun
	chart := func(name, title string, t benchmark.Traffic, seconds float64) {
		file := "chart-" + name + ".png"
		traffic = append(traffic, chartRun{File: file, Title: title, Seconds: seconds, RPM: t.RPM, TPM: t.TPM, RateLimited: t.RateLimited, Series: t.Series})
		rep.Charts[name] = file
	}
	// writeTraffic writes traffic.json; after every run, so that an
	// interrupted benchmark still leaves the charts of the runs it made.
	writeTraffic := func() error {
		tj, err := json.Marshal(traffic)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(*out, "traffic.json"), tj, 0o644)
	}

	if !skipped["main"] {
		logf("main run: %d mails, 1 replica", len(mails))
		r, err := benchmark.RunPipeline(ctx, setup, "main", mails, 1)
		if err != nil {
			return err
		}
		rep.Main = r
		logf("main run: %s, ratio %.3f, 429s %d, lost %d, duplicated %d, max in flight %d, err %v", r.Completion.Round(time.Millisecond), r.Ratio(), r.RateLimited, r.Lost, r.Duplicated, r.MaxInFlight, r.Err)
		chart("main", "1 replica", r.Traffic, r.Completion.Seconds())
	}
	if !skipped["replicas"] && *replicas > 1 {
		logf("replicas run: %d mails, %d replicas on one key", len(mails), *replicas)
		r, err := benchmark.RunPipeline(ctx, setup, "replicas", mails, *replicas)
		if err != nil {
			return err
		}
		rep.Replicas = r
		logf("replicas run: %s, ratio %.3f, 429s %d, lost %d, duplicated %d, max in flight %d, err %v", r.Completion.Round(time.Millisecond), r.Ratio(), r.RateLimited, r.Lost, r.Duplicated, r.MaxInFlight, r.Err)
		chart("replicas", fmt.Sprintf("%d replicas", *replicas), r.Traffic, r.Completion.Seconds())
	}
	if !skipped["baseline"] {
		logf("baseline: Semaphore(%d) for %s", *baseConc, *baseWall)
		r, err := benchmark.RunBaseline(ctx, setup, mails, *baseConc, *baseWall)
		if err != nil {
			return err
		}
		rep.Baseline = r
		logf("baseline: %d classified, %.0f/min, projected %s, 429s %d", r.Completed, r.PerMinute(), r.Projected().Round(time.Second), r.RateLimited)
		chart("baseline", fmt.Sprintf("Semaphore(%d) baseline", *baseConc), r.Traffic, r.Wall.Seconds())
	}
	if !skipped["fairness"] {
		logf("fairness: user A's backfill of %d, user B's live mail", *backlog)
		r, err := benchmark.RunFairness(ctx, setup, *backlog)
		if err != nil {
			return err
		}
		rep.Fairness = r
		logf("fairness: live p50 %s p95 %s (n=%d); backfill p50 %s p95 %s; err %v", r.LiveP50().Round(time.Millisecond), r.LiveP95().Round(time.Millisecond), len(r.Live), r.BackfillP50().Round(time.Millisecond), r.BackfillP95().Round(time.Millisecond), r.Err)
		chart("fairness", "fairness", r.Traffic, r.Completion.Seconds())
	}
	if err := writeTraffic(); err != nil {
		return err
	}

	rwOpts := benchmark.RealWorldOptions{
		RPM: *rwRPM, TokensPerMail: perMail, Floor: *rwFloor, Latency: *rwLatency, Jitter: *rwJitter,
		RemainingPerMinute: *rwRemain == "minute", Users: *rwUsers,
	}
	rwBase := setup
	rwBase.Timeout = *rwTimeout
	for _, sc := range benchmark.Scenarios(rwBase, rwOpts) {
		if !want(sc.Name, "realworld") {
			continue
		}
		logf("%s: %s; %d mails", sc.Name, sc.Title, len(sc.Mails))
		r, err := benchmark.RunRealWorld(ctx, sc)
		if err != nil {
			return err
		}
		rep.RealWorld = append(rep.RealWorld, r)
		logf("%s: %s, floor %s (requests %s, tokens %s), ratio %.3f, 429s %d of %d, lost %d, duplicated %d, max in flight %d, other client %d admitted %d refused, seconds with a 429 %d, err %v",
			sc.Name, r.Completion.Round(time.Millisecond), r.Floor.Round(time.Millisecond), r.FloorRequests.Round(time.Millisecond), r.FloorTokens.Round(time.Millisecond),
			r.FloorRatio(), r.RateLimited, r.Requests, r.Lost, r.Duplicated, r.MaxInFlight, r.Other.Admitted, r.Other.Refused, r.SecondsOver, r.Err)
		chart(sc.Name, sc.Title, r.Traffic, r.Completion.Seconds())
		traffic[len(traffic)-1].Other = r.Other.Series
		traffic[len(traffic)-1].Limits = limitSteps(sc.Setup.RPM, sc.Setup.TPM, sc.Setup.Changes, "")
		for _, m := range r.Models {
			logf("%s: %s: %s, floor %s, ratio %.3f, %d admitted, 429s %d", sc.Name, m.Model, m.Completion.Round(time.Millisecond), m.Floor.Round(time.Millisecond), m.Ratio(), m.Admitted, m.RateLimited)
			name := sc.Name + "-" + m.Model
			chart(name, sc.Name+": "+m.Model, benchmark.Traffic{RPM: m.Limits.RPM, TPM: m.Limits.TPM, RateLimited: m.RateLimited, Series: m.Series}, m.Completion.Seconds())
			traffic[len(traffic)-1].Limits = limitSteps(m.Limits.RPM, m.Limits.TPM, sc.Setup.Changes, m.Model)
		}
		if err := writeTraffic(); err != nil {
			return err
		}
	}

	rep.Duration = time.Since(began)
	rep.Machine.LoadAfter = benchmark.LoadAverage()
	rep.Notes = append(rep.Notes, notes(rep)...)
	md := rep.Markdown()
	if err := os.WriteFile(filepath.Join(*out, "report.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	logf("wrote %s", filepath.Join(*out, "report.md"))
	return nil
}

// chartRun is one entry of traffic.json, as bench/trafficchart reads it.
type chartRun struct {
	File        string              `json:"file"`
	Title       string              `json:"title"`
	Seconds     float64             `json:"seconds"`
	RPM         int                 `json:"rpm"`
	TPM         int                 `json:"tpm"`
	RateLimited int64               `json:"rateLimited"`
	Series      []fakeopenai.Second `json:"series"`
	// Other is the other client's admissions, Limits the limits over time
	// where they change.
	Other  []fakeopenai.Second `json:"other,omitempty"`
	Limits []chartLimit        `json:"limits,omitempty"`
}

// chartLimit is limits in force from At seconds.
type chartLimit struct {
	At  float64 `json:"at"`
	RPM int     `json:"rpm"`
	TPM int     `json:"tpm"`
}

// limitSteps is the limits of model ("": the key's) over time, or nil
// when they do not change.
func limitSteps(rpm, tpm int, changes []fakeopenai.LimitChange, model string) []chartLimit {
	var out []chartLimit
	for _, c := range changes {
		if c.Model == model {
			out = append(out, chartLimit{At: c.At.Seconds(), RPM: c.Limits.RPM, TPM: c.Limits.TPM})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return append([]chartLimit{{At: 0, RPM: rpm, TPM: tpm}}, out...)
}

// notes explains the figures that need it.
func notes(r *benchmark.Report) []string {
	var ns []string
	s := r.Setup
	burst := s.Burst
	if burst == 0 {
		burst = 500 * time.Millisecond
	}
	perSec := float64(s.RPM) / 60
	if r.Main != nil {
		ns = append(ns, fmt.Sprintf("The limiter starts with empty buckets that hold %s of the limits (%d requests), while the fake starts full (%s of them), and the last requests' answers come a latency (~%s) after their admission: a ratio a latency ÷ the completion above 1 is the best to expect.",
			burst, int(perSec*burst.Seconds()), s.Window, s.MeanLatency()))
		ns = append(ns, fmt.Sprintf("In flight: at the limit, RPM ÷ 60 × latency = %.0f requests are out at once (the median above); the most comes about one latency after the start, while the initial burst is still out.",
			perSec*s.MeanLatency().Seconds()))
	}
	if r.Replicas != nil {
		ns = append(ns, fmt.Sprintf("The %d replicas share one durable consumer per lane and one key; each counts the live replicas in a NATS KV bucket and takes that share of the limits.", r.Replicas.Replicas))
	}
	if b := r.Baseline; b != nil {
		ns = append(ns, fmt.Sprintf("The baseline's time is projected from its measured rate over %s; it was not run to the end. With %d calls in flight at ~%s each it uses %.1f%% of the RPM, so the limits never push back and it sees no 429s here. The seed's 1-in-9 429s cannot come from its 10,000 RPM at that rate either; its 200,000 TPM, which 200 requests a minute reach at ~1,000 admission tokens each, is the likely cause (not reproduced: here the TPM is scaled with the RPM).",
			secs(b.Wall), b.Concurrency, s.MeanLatency(), 100*b.UsedShare()))
	}
	if len(r.RealWorld) > 0 {
		ns = append(ns, "Real-world runs: the floor leaves out the fake's initial full bucket (one second of the limits, with 1 s windows), so a client that uses it can finish a second under the floor; the last answers come a latency after the last admission, above it.")
	}
	return ns
}

func secs(d time.Duration) string { return fmt.Sprintf("%.0f s", d.Seconds()) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
