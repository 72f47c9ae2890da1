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
	// RealWorld are issue 9's runs, in order.
	RealWorld []*RealWorldResult
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
	for _, rw := range r.RealWorld {
		ts = append(ts, rw.Targets()...)
	}
	return ts
}

// Targets checks the run's targets.
func (r *RealWorldResult) Targets() []Target {
	sc := r.Scenario
	label := sc.Name
	ok := r.Err == nil
	var ts []Target
	switch {
	case len(r.Models) > 0:
		for _, m := range r.Models {
			ts = append(ts, Target{label + ": " + m.Model + " completion ÷ its own floor", fmt.Sprintf("≤ %.2f×", sc.MaxRatio),
				fmt.Sprintf("%.3f× (%s ÷ %s)", m.Ratio(), secs(m.Completion), secs(m.Floor)), ok && m.Floor > 0 && m.Ratio() <= sc.MaxRatio})
		}
	case sc.Setup.Other.Share > 0:
		want := 1 / sc.MaxRatio
		ts = append(ts, Target{label + ": mailroom's share of what the other client left", fmt.Sprintf("≥ %.0f%%", 100*want),
			fmt.Sprintf("%.1f%% (floor %s ÷ completion %s)", 100*r.RestShare(), secs(r.Floor), secs(r.Completion)), ok && r.Floor > 0 && r.RestShare() >= want-1e-9})
	default:
		ts = append(ts, Target{label + ": completion ÷ floor at the real limits", fmt.Sprintf("≤ %.2f×", sc.MaxRatio),
			fmt.Sprintf("%.3f× (%s ÷ %s)", r.FloorRatio(), secs(r.Completion), secs(r.Floor)), ok && r.Floor > 0 && r.FloorRatio() <= sc.MaxRatio})
	}
	ts = append(ts, Target{label + ": requests answered 429", fmt.Sprintf("≤ %.0f%%", 100*sc.Max429),
		fmt.Sprintf("%.2f%% (%d of %d)", 100*r.RateLimitedShare(), r.RateLimited, r.Requests), r.RateLimitedShare() <= sc.Max429})
	if sc.NoSecondOver {
		ts = append(ts, Target{label + ": seconds with a request over the limit (a 429 in the fake's series)", "0",
			fmt.Sprintf("%d (most admitted in one second: %d; the limit is %s a second, and a full %s bucket adds its %s)", r.SecondsOver, r.MaxPerSecond, perSecond(sc.Setup.RPM), sc.Setup.Window, perSecond(int(float64(sc.Setup.RPM)*sc.Setup.Window.Seconds()))), r.SecondsOver == 0})
	}
	ts = append(ts, Target{label + ": mails lost / classified twice", "0 / 0", fmt.Sprintf("%d / %d", r.Lost, r.Duplicated), ok && r.Lost == 0 && r.Duplicated == 0})
	return ts
}

func perSecond(rpm int) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", float64(rpm)/60), "0"), ".0")
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
	p("Classifier: defaults except the limits (burst %s, MaxAckPending %s, Workers %s per lane consumer). ", orDefault(s.Burst.String(), s.Burst == 0, "500ms"), orDefaultInt(s.MaxAckPending, 1000), orDefaultInt(s.Workers, 0))
	p("The mails are plain personal mails, each with its own content: no rule is sure of them and the verdict cache never answers, so each goes to the model.\n\n")

	p("## Targets\n\n| target | wanted | measured | |\n| --- | --- | --- | --- |\n")
	for _, t := range r.Targets() {
		p("| %s | %s | %s | %s |\n", t.What, t.Want, t.Got, passMiss(t.Pass))
	}

	if r.Main != nil || r.Replicas != nil || r.Baseline != nil {
		r.runsMarkdown(p)
	}
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
	if len(r.RealWorld) > 0 {
		r.realWorldMarkdown(p)
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

// realWorldMarkdown renders issue 9's runs.
func (r *Report) realWorldMarkdown(p func(string, ...any)) {
	p("\n## The limiter in the real world (issue 9)\n\n")
	p("One classifier against a fake that enforces its limits over **1 s windows** (a minute's limit as its sixtieth each second) and advertises them in `x-ratelimit-limit-*`. ")
	p("The floor is at the fake's **real** limits, whatever the classifier was told: the earliest time by which the real limits, over time (their changes; less what the other client took), let through the requests and the admission tokens the fake admitted for mailroom. ")
	p("Completion is from the first publish to the last classified event (for a model: to its last answer). 429s count mailroom's requests only.\n\n")
	p("| run | real limits | told | latency | mails | completion | floor | completion ÷ floor | 429s | lost / twice | most in flight | chart |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, x := range r.RealWorld {
		s := x.Scenario.Setup
		real := fmt.Sprintf("%s RPM, %s TPM", thousands(int64(s.RPM)), thousands(int64(s.TPM)))
		if len(s.ModelLimits) > 0 {
			var parts []string
			for _, m := range x.Models {
				parts = append(parts, fmt.Sprintf("%s: %s RPM, %s TPM", m.Model, thousands(int64(m.Limits.RPM)), thousands(int64(m.Limits.TPM))))
			}
			real = strings.Join(parts, "; ")
		}
		for _, c := range s.Changes {
			real += fmt.Sprintf("; %s RPM from %s", thousands(int64(c.Limits.RPM)), secs(c.At))
		}
		if s.Other.Share > 0 {
			real += fmt.Sprintf("; %.0f%% taken by another client", 100*s.Other.Share)
		}
		if s.RemainingPerMinute {
			real += "; remaining per minute"
		} else {
			real += "; remaining per window"
		}
		told := "none (learned)"
		if c := s.ConfiguredLimits(); c.RPM > 0 || c.TPM > 0 {
			told = fmt.Sprintf("%s RPM, %s TPM", thousands(int64(c.RPM)), thousands(int64(c.TPM)))
		}
		lat := fmt.Sprintf("%s + ≤%s", s.Latency, s.Jitter)
		for _, st := range s.LatencySteps {
			lat += fmt.Sprintf("; %s from %s", st.Latency, secs(st.At))
		}
		completion := secs(x.Completion)
		if x.Err != nil {
			completion = fmt.Sprintf("did not finish: %v", x.Err)
		}
		ratioCell := fmt.Sprintf("**%.3f×**", x.FloorRatio())
		if s.Other.Share > 0 {
			ratioCell += fmt.Sprintf(" (mailroom got %.1f%% of what the other client left, %.1f%% of the nominal %.0f%%; the other client: %s admitted, %s refused)",
				100*x.RestShare(), 100*ratio(x.NominalFloor, x.Completion), 100*(1-s.Other.Share), thousands(x.Other.Admitted), thousands(x.Other.Refused))
		}
		for _, m := range x.Models {
			ratioCell += fmt.Sprintf("; %s **%.3f×** (%s ÷ %s, %s requests, %d 429s, %s)", m.Model, m.Ratio(), secs(m.Completion), secs(m.Floor), thousands(m.Admitted), m.RateLimited, chartLink(r.Charts[x.Scenario.Name+"-"+m.Model]))
		}
		if x.Scenario.NoSecondOver {
			ratioCell += fmt.Sprintf("; %d seconds with a 429, at most %d admitted in a second", x.SecondsOver, x.MaxPerSecond)
		}
		p("| %s: %s | %s | %s | %s | %s | %s | %s (requests %s, tokens %s) | %s | %.2f%% (%d of %s) | %d / %d | %d | %s |\n",
			x.Scenario.Name, x.Scenario.Title, real, told, lat, thousands(int64(x.Mails)), completion, secs(x.Floor), secs(x.FloorRequests), secs(x.FloorTokens),
			ratioCell, 100*x.RateLimitedShare(), x.RateLimited, thousands(x.Requests), x.Lost, x.Duplicated, x.MaxInFlight, chartLink(r.Charts[x.Scenario.Name]))
	}
	p("\nClassifier warnings in the log: ")
	var ws []string
	for _, x := range r.RealWorld {
		ws = append(ws, fmt.Sprintf("%s: %s", x.Scenario.Name, warnings(x.Warnings)))
	}
	p("%s.\n", strings.Join(ws, "; "))
}

// runsMarkdown renders the main, replicas and baseline runs side by side.
func (r *Report) runsMarkdown(p func(string, ...any)) {
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

}
