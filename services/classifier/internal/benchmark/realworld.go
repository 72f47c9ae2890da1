package benchmark

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"mailroom.dev/fakes/fakeopenai"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
)

// Scenario is one run of issue 9's table: the limiter against limits,
// windows and neighbours that are not what it was told.
type Scenario struct {
	// Name names the run (-only, -skip, the chart's file), Title says what
	// it is in the report.
	Name, Title string
	// Setup is the run's setup: the fake's real limits in RPM and TPM,
	// the rest as in Setup.
	Setup Setup
	// Mails is the run's workload.
	Mails []*eventsv1.MailReceived
	// MaxRatio is the target on completion ÷ the floor at the real limits
	// (for the shared run: 1 ÷ the share of the rest mailroom must get;
	// for the two-model run: each model's ratio), Max429 on the share of
	// requests answered 429.
	MaxRatio, Max429 float64
	// NoSecondOver asks that no second of the fake's series holds a 429.
	NoSecondOver bool
}

// RealWorldOptions size the scenarios.
type RealWorldOptions struct {
	// RPM is the real limit of the runs (default 1,200), TPM its tokens
	// (default RPM × TokensPerMail).
	RPM, TPM      int
	TokensPerMail float64
	// Floor is about how long each run's floor is (default 50 s): the
	// workloads are sized from it.
	Floor time.Duration
	// Latency and Jitter are the fake's (default 1 s and 500 ms); the
	// latency run steps from 300 ms to 3 s and back whatever they are.
	Latency, Jitter time.Duration
	// RemainingPerMinute is how the fake reports the remaining counts in
	// the runs other than the first two (which try both).
	RemainingPerMinute bool
	// Users spread the mails (default 20).
	Users int
}

func (o *RealWorldOptions) defaults() {
	if o.RPM <= 0 {
		o.RPM = 1200
	}
	if o.TPM <= 0 {
		o.TPM = int(math.Round(float64(o.RPM) * o.TokensPerMail))
	}
	if o.Floor <= 0 {
		o.Floor = 50 * time.Second
	}
	if o.Latency <= 0 {
		o.Latency = time.Second
		if o.Jitter <= 0 {
			o.Jitter = 500 * time.Millisecond
		}
	}
	if o.Users <= 0 {
		o.Users = 20
	}
}

// The models of the two-model run.
const (
	FirstModel      = "gpt-4o-mini"
	EscalationModel = "gpt-4o"
)

// Scenarios returns issue 9's seven runs (the first in two, one per way of
// reporting the remaining counts), on base (whose directory, logs,
// timeout and classifier tuning they keep).
func Scenarios(base Setup, o RealWorldOptions) []Scenario {
	o.defaults()
	mailsFor := func(rpm int, floor time.Duration) []*eventsv1.MailReceived {
		n := int(float64(rpm) * floor.Minutes())
		return Backfill(Users(o.Users), max(1, n/o.Users))
	}
	setup := func(perMinute bool) Setup {
		s := base
		s.RPM, s.TPM = o.RPM, o.TPM
		s.Window = time.Second
		s.Latency, s.Jitter = o.Latency, o.Jitter
		s.RemainingPerMinute = perMinute
		s.Changes, s.LatencySteps, s.ModelLimits, s.Configured = nil, nil, nil, nil
		s.Other = fakeopenai.OtherClient{}
		s.Model, s.EscalateModel, s.EscalateCategories = "", "", nil
		return s
	}
	half := o.Floor / 2
	var scs []Scenario

	s := setup(false)
	scs = append(scs, Scenario{Name: "window-1s", Title: "right limits, enforced over 1 s windows, remaining per window",
		Setup: s, Mails: mailsFor(o.RPM, half), MaxRatio: 1.10, Max429: 0.01})
	s = setup(true)
	scs = append(scs, Scenario{Name: "window-1s-minute", Title: "right limits, enforced over 1 s windows, remaining per minute",
		Setup: s, Mails: mailsFor(o.RPM, half), MaxRatio: 1.10, Max429: 0.01})

	s = setup(o.RemainingPerMinute)
	s.Configured = &fakeopenai.Limits{RPM: 4 * o.RPM, TPM: 4 * o.TPM}
	scs = append(scs, Scenario{Name: "over-4x", Title: "configured limits 4× the real ones",
		Setup: s, Mails: mailsFor(o.RPM, o.Floor), MaxRatio: 1.10, Max429: 0.02})

	s = setup(o.RemainingPerMinute)
	s.Configured = &fakeopenai.Limits{}
	scs = append(scs, Scenario{Name: "learned", Title: "no limits configured (learned from the headers)",
		Setup: s, Mails: mailsFor(o.RPM, o.Floor), MaxRatio: 1.10, Max429: 0.02})

	// Halved at 30% of the floor, doubled back at 60%.
	s = setup(o.RemainingPerMinute)
	at1, at2 := o.Floor*3/10, o.Floor*6/10
	s.Changes = []fakeopenai.LimitChange{
		{At: at1, Limits: fakeopenai.Limits{RPM: o.RPM / 2, TPM: o.TPM / 2}},
		{At: at2, Limits: fakeopenai.Limits{RPM: o.RPM, TPM: o.TPM}},
	}
	scs = append(scs, Scenario{Name: "tier-change", Title: fmt.Sprintf("real limits halve at %s, double back at %s", secs(at1), secs(at2)),
		Setup: s, Mails: mailsFor(o.RPM, o.Floor), MaxRatio: 1.15, Max429: 0.02})

	// The other client takes half; mailroom, told the organization's
	// limits, must get 90% of the rest: a ratio of at most 1 ÷ 0.9.
	s = setup(o.RemainingPerMinute)
	s.Other = fakeopenai.OtherClient{Share: 0.5}
	scs = append(scs, Scenario{Name: "shared", Title: "another client takes 50% of the organization's limits",
		Setup: s, Mails: mailsFor(o.RPM/2, o.Floor), MaxRatio: 1 / 0.9, Max429: 0.02})

	// Every 6th mail is urgent: the first model's traffic is the whole
	// workload at its limit; the escalation model gets a sixth of it at a
	// twelfth of the first model's limit (half the rate the escalations
	// arrive at), so that it is the bottleneck of its own traffic; its
	// floor is 1.5 × the first model's.
	s = setup(o.RemainingPerMinute)
	first := fakeopenai.Limits{RPM: o.RPM * 3 / 4, TPM: o.TPM * 3 / 4}
	esc := fakeopenai.Limits{RPM: first.RPM / 9, TPM: first.TPM / 9}
	s.RPM, s.TPM = first.RPM, first.TPM
	s.ModelLimits = map[string]fakeopenai.Limits{FirstModel: first, EscalationModel: esc}
	s.Configured = &fakeopenai.Limits{}
	s.Model, s.EscalateModel, s.EscalateCategories = FirstModel, EscalationModel, []string{"important"}
	n := int(float64(first.RPM) * o.Floor.Minutes())
	scs = append(scs, Scenario{Name: "two-models", Title: fmt.Sprintf("%s and %s (important mail) with separate limits on one key", FirstModel, EscalationModel),
		Setup: s, Mails: Escalating(Users(o.Users), max(1, n/o.Users), 6), MaxRatio: 1.10, Max429: 0.02})

	s = setup(o.RemainingPerMinute)
	s.Latency, s.Jitter = 300*time.Millisecond, 100*time.Millisecond
	s.LatencySteps = []fakeopenai.LatencyStep{{At: at1, Latency: 3 * time.Second}, {At: at2, Latency: 300 * time.Millisecond}}
	scs = append(scs, Scenario{Name: "latency", Title: fmt.Sprintf("latency 300 ms, 3 s from %s, 300 ms from %s", secs(at1), secs(at2)),
		Setup: s, Mails: mailsFor(o.RPM, o.Floor), MaxRatio: 1.10, Max429: 0.02, NoSecondOver: true})
	return scs
}

// ModelResult is one model's share of a run with per-model limits.
type ModelResult struct {
	Model  string
	Limits fakeopenai.Limits
	// Requests, Admitted, AdmittedTokens and RateLimited are the fake's
	// counts for the model.
	Requests, Admitted, AdmittedTokens, RateLimited int64
	// Completion is from the first publish to the model's last answer;
	// Floor is the model's theoretical minimum at its limits.
	Completion, Floor time.Duration
	Series            []fakeopenai.Second
}

// Ratio is Completion ÷ Floor.
func (m ModelResult) Ratio() float64 { return ratio(m.Completion, m.Floor) }

// RealWorldResult is one scenario's run.
type RealWorldResult struct {
	*PipelineResult
	Scenario Scenario
	// Floor is the theoretical minimum of what the fake admitted for
	// mailroom at the fake's real limits over time (its changes, what the
	// other client took): the earliest time by which the limits let
	// through as many requests (FloorRequests) and as many admission
	// tokens (FloorTokens) as were admitted.
	Floor, FloorRequests, FloorTokens time.Duration
	// Models are the per-model figures of a run with per-model limits.
	Models []ModelResult
	// Other is what the other client sent; NominalFloor is the floor at
	// the share of the limits it leaves by its configuration (1 − Share),
	// whatever it actually got.
	Other        fakeopenai.OtherStats
	NominalFloor time.Duration
	// SecondsOver counts the seconds of the fake's series holding a 429,
	// and MaxPerSecond is the most requests admitted in one second (the
	// fake admits up to a full bucket plus a second's refill in one).
	SecondsOver  int
	MaxPerSecond int64
}

// FloorRatio is completion ÷ Floor.
func (r RealWorldResult) FloorRatio() float64 { return ratio(r.Completion, r.Floor) }

// RestShare is, in the shared run, the share of what the other client
// left that mailroom got: Floor ÷ completion.
func (r RealWorldResult) RestShare() float64 {
	if r.Completion <= 0 {
		return 0
	}
	return float64(r.Floor) / float64(r.Completion)
}

// Pass reports whether the run met its targets.
func (r RealWorldResult) Pass() bool {
	ok := r.Err == nil && r.Lost == 0 && r.Duplicated == 0 && r.RateLimitedShare() <= r.Scenario.Max429
	if len(r.Models) > 0 {
		for _, m := range r.Models {
			ok = ok && m.Floor > 0 && m.Ratio() <= r.Scenario.MaxRatio
		}
	} else {
		ok = ok && r.Floor > 0 && r.FloorRatio() <= r.Scenario.MaxRatio
	}
	if r.Scenario.NoSecondOver {
		ok = ok && r.SecondsOver == 0
	}
	return ok
}

// RunRealWorld runs sc with one classifier and computes its figures.
func RunRealWorld(ctx context.Context, sc Scenario) (*RealWorldResult, error) {
	var st fakeopenai.Stats
	p, err := runPipeline(ctx, sc.Setup, sc.Name, sc.Mails, 1, func(f *fakeAPI) { st = f.Stats() })
	if err != nil {
		return nil, err
	}
	r := &RealWorldResult{PipelineResult: p, Scenario: sc, Other: st.Other}
	s := sc.Setup
	ks := st.Keys[APIKey]
	for _, sec := range ks.Series {
		if sec.RateLimited > 0 {
			r.SecondsOver++
		}
		r.MaxPerSecond = max(r.MaxPerSecond, sec.Admitted)
	}
	base := fakeopenai.Limits{RPM: s.RPM, TPM: s.TPM}
	r.FloorRequests = floor(float64(ks.Admitted), limitSteps(base, s.Changes, "", func(l fakeopenai.Limits) int { return l.RPM }), otherUse(st.Other.Series, func(x fakeopenai.Second) int64 { return x.Admitted }))
	r.FloorTokens = floor(float64(ks.AdmittedTokens), limitSteps(base, s.Changes, "", func(l fakeopenai.Limits) int { return l.TPM }), otherUse(st.Other.Series, func(x fakeopenai.Second) int64 { return x.AdmittedTokens }))
	r.Floor = max(r.FloorRequests, r.FloorTokens)
	if share := s.Other.Share; share > 0 && share < 1 {
		rest := fakeopenai.Limits{RPM: int(float64(s.RPM) * (1 - share)), TPM: int(float64(s.TPM) * (1 - share))}
		r.NominalFloor = max(
			floor(float64(ks.Admitted), limitSteps(rest, nil, "", func(l fakeopenai.Limits) int { return l.RPM }), nil),
			floor(float64(ks.AdmittedTokens), limitSteps(rest, nil, "", func(l fakeopenai.Limits) int { return l.TPM }), nil))
	}
	// The pipeline's own minimum is at the real limits too.
	r.Traffic.RPM, r.Traffic.TPM = s.RPM, s.TPM

	models := make([]string, 0, len(s.ModelLimits))
	for m := range s.ModelLimits {
		models = append(models, m)
	}
	slices.Sort(models)
	for _, m := range models {
		l := s.ModelLimits[m]
		ms := ks.Models[m]
		mr := ModelResult{Model: m, Limits: l, Requests: ms.Requests, Admitted: ms.Admitted, AdmittedTokens: ms.AdmittedTokens, RateLimited: ms.RateLimited, Series: ms.Series}
		mr.Floor = max(
			floor(float64(ms.Admitted), limitSteps(l, s.Changes, m, func(l fakeopenai.Limits) int { return l.RPM }), nil),
			floor(float64(ms.AdmittedTokens), limitSteps(l, s.Changes, m, func(l fakeopenai.Limits) int { return l.TPM }), nil))
		mr.Completion = p.modelLast[m]
		r.Models = append(r.Models, mr)
	}
	return r, nil
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// limitStep is a per-minute limit in force from At.
type limitStep struct {
	At    time.Duration
	Limit int
}

// limitSteps is the timeline of one limit of the key (model "") or of a
// model with limits of its own.
func limitSteps(initial fakeopenai.Limits, changes []fakeopenai.LimitChange, model string, pick func(fakeopenai.Limits) int) []limitStep {
	steps := []limitStep{{0, pick(initial)}}
	cs := slices.Clone(changes)
	slices.SortStableFunc(cs, func(a, b fakeopenai.LimitChange) int { return int(a.At - b.At) })
	for _, c := range cs {
		if c.Model == model {
			steps = append(steps, limitStep{c.At, pick(c.Limits)})
		}
	}
	return steps
}

// otherUse returns how much the other client had taken by a time, from its
// per-second series (linear within a second); nil without one.
func otherUse(series []fakeopenai.Second, pick func(fakeopenai.Second) int64) func(time.Duration) float64 {
	if len(series) == 0 {
		return nil
	}
	cum := make([]float64, len(series)+1)
	for i, s := range series {
		cum[i+1] = cum[i] + float64(pick(s))
	}
	return func(t time.Duration) float64 {
		x := t.Seconds()
		i := int(x)
		if i >= len(series) {
			return cum[len(series)]
		}
		return cum[i] + (x-float64(i))*float64(pick(series[i]))
	}
}

// floor is the earliest time by which the limits (per minute, over time),
// less what the other client took, let through amount; 0 when the limit
// is unlimited or amount is 0.
func floor(amount float64, steps []limitStep, other func(time.Duration) float64) time.Duration {
	if amount <= 0 {
		return 0
	}
	for _, s := range steps {
		if s.Limit <= 0 {
			return 0
		}
	}
	const dt = 10 * time.Millisecond
	capacity, i := 0.0, 0
	for t := time.Duration(0); t < 24*time.Hour; t += dt {
		for i+1 < len(steps) && steps[i+1].At <= t {
			i++
		}
		capacity += float64(steps[i].Limit) / 60 * dt.Seconds()
		left := capacity
		if other != nil {
			left -= other(t + dt)
		}
		if left >= amount {
			return t + dt
		}
	}
	return 24 * time.Hour
}
