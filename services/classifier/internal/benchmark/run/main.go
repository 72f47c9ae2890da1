// Command run is `make bench-classifier`: it runs the classifier benchmark
// (package benchmark) — the main run, three replicas sharing one key, the
// Semaphore(10) baseline and the fairness case — writes report.md, traffic.json (which `go run ./bench/cmd/charts` turns into
// the charts) and the services' logs under -out, and prints the report.
//
//	go run ./services/classifier/internal/benchmark/run [-out bench/out/classifier]
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
		skip      = flag.String("skip", "", "comma-separated runs to leave out: main, replicas, baseline, fairness")
		timeout   = flag.Duration("timeout", 5*time.Minute, "bound on one run")
		seed      = flag.Uint64("seed", 1, "seed of the fake's jitter")
		tmpParent = flag.String("tmp", "", "where runs keep their NATS and SQLite files (default: the system's temp dir)")
	)
	flag.Parse()
	skipped := map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		skipped[strings.TrimSpace(s)] = true
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
	rep.Duration = time.Since(began)
	rep.Machine.LoadAfter = benchmark.LoadAverage()
	rep.Notes = append(rep.Notes, notes(rep)...)
	tj, err := json.Marshal(traffic)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "traffic.json"), tj, 0o644); err != nil {
		return err
	}
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
}

// notes explains the figures that need it.
func notes(r *benchmark.Report) []string {
	var ns []string
	s := r.Setup
	burst := s.Burst
	if burst == 0 {
		burst = 3 * time.Second
	}
	perSec := float64(s.RPM) / 60
	if r.Main != nil {
		ns = append(ns, fmt.Sprintf("The limiter starts with full buckets (%s of the limits: %d requests go at once) and the last requests' answers come a latency (~%s) after their admission; the two roughly cancel, so a ratio just above 1 is the best to expect, and just under 1 is possible.",
			burst, int(perSec*burst.Seconds()), s.MeanLatency()))
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
	return ns
}

func secs(d time.Duration) string { return fmt.Sprintf("%.0f s", d.Seconds()) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
