package benchmark

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is one benchmark: the setup, the machine, each run's result and
// the targets.
type Report struct {
	Date     time.Time
	Duration time.Duration
	Machine  Machine
	Setup    Setup
	// TokensPerMail is the calibrated mean admission cost the TPM was set from.
	TokensPerMail float64
	Main          *PipelineResult
	Replicas      *PipelineResult
	Baseline      *BaselineResult
	Fairness      *FairnessResult
	// Charts maps a run's name to its chart's file name (next to the report).
	Charts map[string]string
	// Notes are added below the tables, as written.
	Notes []string
}

// Machine describes where the benchmark ran.
type Machine struct {
	GoVersion, OS, Arch, CPUModel string
	CPUs                          int
	// LoadBefore and LoadAfter are /proc/loadavg at the start and the end.
	LoadBefore, LoadAfter string
}

// ThisMachine describes this machine now (LoadAfter is left empty).
func ThisMachine() Machine {
	m := Machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), LoadBefore: LoadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// LoadAverage is the 1, 5 and 15 minute load averages, or "".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Target is one of the targets with the measured figure.
type Target struct {
	What, Want, Got string
	Pass            bool
}

// Targets checks the targets against the results present.
func (r *Report) Targets() []Target {
	var ts []Target
	pipeline := func(p *PipelineResult, label string, ratio float64) {
		if p == nil {
			return
		}
		ok := p.Err == nil
		ts = append(ts,
			Target{label + ": completion ÷ theoretical minimum", fmt.Sprintf("≤ %.2f×", ratio), fmt.Sprintf("%.3f× (%s ÷ %s)", p.Ratio(), secs(p.Completion), secs(p.Minimum())), ok && p.Ratio() <= ratio},
			Target{label + ": requests answered 429", "≤ 1%", fmt.Sprintf("%.2f%% (%d of %d)", 100*p.RateLimitedShare(), p.RateLimited, p.Requests), p.RateLimitedShare() <= 0.01},
			Target{label + ": mails lost / classified twice", "0 / 0", fmt.Sprintf("%d / %d", p.Lost, p.Duplicated), ok && p.Lost == 0 && p.Duplicated == 0},
		)
	}
	pipeline(r.Main, "1 replica", 1.05)
	pipeline(r.Replicas, "3 replicas", 1.10)
	if f := r.Fairness; f != nil {
		ts = append(ts,
			Target{"fairness: B's live mail, p95 wait", "≤ 2 request latencies", fmt.Sprintf("%.2f latencies (%s; median latency %s)", f.InLatencies(f.LiveP95()), secs(f.LiveP95()), secs(f.MedianLatency)), f.Err == nil && len(f.Live) > 0 && f.InLatencies(f.LiveP95()) <= 2},
			Target{"fairness run: mails lost / classified twice", "0 / 0", fmt.Sprintf("%d / %d", f.Lost, f.Duplicated), f.Err == nil && f.Lost == 0 && f.Duplicated == 0},
		)
	}
	return ts
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**MISS**"
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	s := r.Setup
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Classifier benchmark\n\n")
	p("Run %s (%s in all) with %s on %s/%s, %d CPUs (%s); load average %s at the start, %s at the end. ",
		r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Duration.Round(time.Second), r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch,
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.LoadBefore, r.Machine.LoadAfter)
	p("The machine is shared and noisy: quote the ratios of one run, not a best of several.\n\n")
	p("Every run has its own embedded JetStream server, SQLite files and fake OpenAI (`fakeopenai`, over HTTP on loopback) with the same limits: ")
	p("**RPM %s, TPM %s** per key (the TPM is RPM × %.1f, the classifier's mean admission cost per mail — prompt tokens + max_completion_tokens 120 — measured on a sample, so that tokens bind about as much as requests), ", thousands(int64(s.RPM)), thousands(int64(s.TPM)), r.TokensPerMail)
	p("enforced over a %s window; fake latency %s + up to %s jitter (mean %s). ", s.Window, s.Latency, s.Jitter, s.MeanLatency())
	p("Classifier: defaults except the limits (burst %s, MaxAckPending %s, Workers %s per lane consumer). ", orDefault(s.Burst.String(), s.Burst == 0, "3s"), orDefaultInt(s.MaxAckPending, 1000), orDefaultInt(s.Workers, 0))
	p("The mails are plain personal mails, each with its own content: no rule is sure of them and the verdict cache never answers, so each goes to the model.\n\n")

	p("## Targets\n\n| target | wanted | measured | |\n| --- | --- | --- | --- |\n")
	for _, t := range r.Targets() {
		p("| %s | %s | %s | %s |\n", t.What, t.Want, t.Got, passMiss(t.Pass))
	}

	p("\n## Runs\n\n")
	p("Completion is from the first publish to the last classified event in the classified stream. The theoretical minimum is max(requests ÷ RPM, admitted tokens ÷ TPM) over what the fake admitted.\n\n")
	cols := []string{}
	if r.Main != nil {
		cols = append(cols, "1 replica")
	}
	if r.Replicas != nil {
		cols = append(cols, "3 replicas, one key")
	}
	if r.Baseline != nil {
		cols = append(cols, fmt.Sprintf("baseline: Semaphore(%d) + backoff", r.Baseline.Concurrency))
	}
	p("| | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	row := func(label string, main, reps, base string) {
		var cells []string
		if r.Main != nil {
			cells = append(cells, main)
		}
		if r.Replicas != nil {
			cells = append(cells, reps)
		}
		if r.Baseline != nil {
			cells = append(cells, base)
		}
		p("| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	pr := func(x *PipelineResult, f func(*PipelineResult) string) string {
		if x == nil {
			return ""
		}
		return f(x)
	}
	br := func(f func(*BaselineResult) string) string {
		if r.Baseline == nil {
			return ""
		}
		return f(r.Baseline)
	}
	both := func(f func(*PipelineResult) string) (string, string) { return pr(r.Main, f), pr(r.Replicas, f) }
	m, rp := both(func(x *PipelineResult) string { return thousands(int64(x.Mails)) })
	row("mails", m, rp, br(func(x *BaselineResult) string {
		return fmt.Sprintf("%s offered; %s classified in the %s it ran", thousands(int64(x.Mails)), thousands(int64(x.Completed)), secs(x.Wall))
	}))
	m, rp = both(func(x *PipelineResult) string {
		if x.Err != nil {
			return fmt.Sprintf("did not finish: %v", x.Err)
		}
		return secs(x.Completion)
	})
	row("completion", m, rp, br(func(x *BaselineResult) string {
		return fmt.Sprintf("**projected** %.1f min for %s (%.0f mails/min measured)", x.Projected().Minutes(), thousands(int64(x.Mails)), x.PerMinute())
	}))
	m, rp = both(func(x *PipelineResult) string {
		return fmt.Sprintf("%s (requests %s, tokens %s)", secs(x.Minimum()), secs(x.MinRequests()), secs(x.MinTokens()))
	})
	row("theoretical minimum", m, rp, br(func(x *BaselineResult) string {
		return fmt.Sprintf("%s for %s mails", secs(time.Duration(float64(x.Mails)/float64(x.RPM)*float64(time.Minute))), thousands(int64(x.Mails)))
	}))
	m, rp = both(func(x *PipelineResult) string { return fmt.Sprintf("**%.3f×**", x.Ratio()) })
	row("completion ÷ minimum", m, rp, br(func(x *BaselineResult) string {
		if x.Projected() == 0 {
			return "—"
		}
		return fmt.Sprintf("**projected %.0f×** (uses %.1f%% of the RPM)", float64(x.Projected())/(float64(x.Mails)/float64(x.RPM)*float64(time.Minute)), 100*x.UsedShare())
	}))
	m, rp = both(func(x *PipelineResult) string {
		return fmt.Sprintf("%s sent, %s admitted", thousands(x.Requests), thousands(x.Admitted))
	})
	row("requests at the fake", m, rp, br(func(x *BaselineResult) string {
		return fmt.Sprintf("%s sent, %s admitted", thousands(x.Requests), thousands(x.Admitted))
	}))
	m, rp = both(func(x *PipelineResult) string {
		return fmt.Sprintf("%.2f%% (%d)", 100*x.RateLimitedShare(), x.RateLimited)
	})
	row("answered 429", m, rp, br(func(x *BaselineResult) string {
		return fmt.Sprintf("%.2f%% (%d)", 100*x.RateLimitedShare(), x.RateLimited)
	}))
	m, rp = both(func(x *PipelineResult) string {
		return fmt.Sprintf("%d / %d / %d", x.Lost, x.Duplicated, x.DeadLettered)
	})
	row("lost / classified twice / dead-lettered", m, rp, br(func(x *BaselineResult) string { return fmt.Sprintf("— / — / %d failed", x.Failed) }))
	m, rp = both(func(x *PipelineResult) string {
		return fmt.Sprintf("%.3f (%s of %s by the model)", x.ModelCallsPerMail(), thousands(int64(x.ByModel)), thousands(int64(x.Classified)))
	})
	row("model calls per mail", m, rp, br(func(x *BaselineResult) string { return "1 per classified mail" }))
	m, rp = both(func(x *PipelineResult) string { return fmt.Sprintf("%d (median %d)", x.MaxInFlight, x.MedianInFlight) })
	row("requests in flight at the fake: most (median)", m, rp, br(func(x *BaselineResult) string { return fmt.Sprintf("%d (median %d)", x.MaxInFlight, x.MedianInFlight) }))
	m, rp = both(func(x *PipelineResult) string { return fmt.Sprintf("%.0f", x.TokensPerRequest()) })
	row("admission tokens per request", m, rp, br(func(x *BaselineResult) string { return fmt.Sprintf("%.0f", x.TokensPerRequest()) }))
	m, rp = both(func(x *PipelineResult) string { return secs(x.MedianLatency) })
	row("median request latency", m, rp, br(func(x *BaselineResult) string { return secs(x.MedianLatency) }))
	m, rp = both(func(x *PipelineResult) string {
		return fmt.Sprintf("published in %s; first answered request sent at %s, last at %s; last classified %s after it", secs(x.Publishing), secs(x.FirstAnswered), secs(x.LastAnswered), secs(x.Tail))
	})
	row("where the time went", m, rp, br(func(x *BaselineResult) string { return "—" }))
	m, rp = both(func(x *PipelineResult) string { return warnings(x.Warnings) })
	row("classifier warnings in the log", m, rp, br(func(x *BaselineResult) string { return "—" }))
	m, rp = both(func(x *PipelineResult) string { return chartLink(r.Charts[x.Name]) })
	row("chart", m, rp, br(func(x *BaselineResult) string { return chartLink(r.Charts["baseline"]) }))

	if f := r.Fairness; f != nil {
		p("\n## Fairness\n\n")
		p("User A's backfill of %s mails saturates the limiter; meanwhile user B publishes, every 1–2 s, one live mail and one backfill mail. ", thousands(int64(f.Backlog)))
		p("Waits are from the publish to the classified event; a request latency is the fake's median answer time, %s.\n\n", secs(f.MedianLatency))
		p("| B's mail | n | p50 wait | p95 wait | p95 in request latencies |\n| --- | --- | --- | --- | --- |\n")
		p("| live lane | %d | %s | %s | **%.2f** |\n", len(f.Live), secs(f.LiveP50()), secs(f.LiveP95()), f.InLatencies(f.LiveP95()))
		p("| backfill lane, behind A's backlog (contrast) | %d | %s | %s | %.2f |\n\n", len(f.Backfill), secs(f.BackfillP50()), secs(f.BackfillP95()), f.InLatencies(f.BackfillP95()))
		p("%d of B's %d live mails were classified while A still had at least the limiter's in-flight worth of mail left (the limiter saturated). ", f.Saturated, len(f.Live))
		p("The run: %.2f%% of %s requests answered 429, %d lost, %d classified twice, %s; classifier warnings: %s. %s\n", 100*f.RateLimitedShare(), thousands(f.Requests), f.Lost, f.Duplicated, secs(f.Completion), warnings(f.Warnings), chartLink(r.Charts["fairness"]))
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func chartLink(file string) string {
	if file == "" {
		return "—"
	}
	return fmt.Sprintf("[%s](%s)", file, file)
}

func orDefault(v string, isDefault bool, def string) string {
	if isDefault {
		return def + " (default)"
	}
	return v
}

func orDefaultInt(v, def int) string {
	if v == 0 {
		if def == 0 {
			return "= MaxAckPending (default)"
		}
		return fmt.Sprintf("%d (default)", def)
	}
	return fmt.Sprint(v)
}

// warnings lists log messages with their counts, most frequent first.
func warnings(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	msgs := slices.Collect(maps.Keys(m))
	slices.SortFunc(msgs, func(a, b string) int { return cmp.Or(m[b]-m[a], strings.Compare(a, b)) })
	var parts []string
	for _, msg := range msgs {
		parts = append(parts, fmt.Sprintf("%q ×%d", msg, m[msg]))
	}
	return strings.Join(parts, ", ")
}
