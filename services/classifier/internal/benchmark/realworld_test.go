package benchmark_test

import (
	"strings"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/benchmark"
)

// The scenarios are issue 9's table: the right runs, each with its targets,
// and a two-model run whose escalation model is its own bottleneck.
func TestScenarios(t *testing.T) {
	scs := benchmark.Scenarios(benchmark.Setup{Dir: t.TempDir()}, benchmark.RealWorldOptions{TokensPerMail: 600, Floor: 60 * time.Second})
	var names []string
	for _, sc := range scs {
		names = append(names, sc.Name)
		if sc.Setup.Window != time.Second || sc.MaxRatio <= 1 || sc.Max429 <= 0 || len(sc.Mails) == 0 {
			t.Errorf("%s: window %s, targets %.2f× %.2f, %d mails", sc.Name, sc.Setup.Window, sc.MaxRatio, sc.Max429, len(sc.Mails))
		}
	}
	if got, want := strings.Join(names, ","), "window-1s,window-1s-minute,over-4x,learned,tier-change,shared,two-models,latency"; got != want {
		t.Fatalf("runs %s, want %s", got, want)
	}
	two := scs[6]
	first, esc := two.Setup.ModelLimits[benchmark.FirstModel], two.Setup.ModelLimits[benchmark.EscalationModel]
	urgent := 0
	for _, m := range two.Mails {
		if strings.HasPrefix(m.GetContent().GetSubject(), "Urgent:") {
			urgent++
		}
	}
	// Escalations arrive at the first model's rate × their share.
	if arrive := float64(first.RPM) * float64(urgent) / float64(len(two.Mails)); arrive <= float64(esc.RPM) {
		t.Errorf("escalations arrive at %.0f a minute, within %s's %d RPM: it is not the bottleneck", arrive, benchmark.EscalationModel, esc.RPM)
	}
	if two.Setup.EscalateModel != benchmark.EscalationModel || two.Setup.ConfiguredLimits().RPM != 0 {
		t.Errorf("two-models setup %+v", two.Setup)
	}
	if c := scs[2].Setup.ConfiguredLimits(); c.RPM != 4*scs[2].Setup.RPM {
		t.Errorf("over-4x told %d RPM of a real %d", c.RPM, scs[2].Setup.RPM)
	}
}

// A short shared run: the figures come from the fake's counts, the other
// client's included.
func TestRealWorldShortSharedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the classifier for several seconds")
	}
	ctx := t.Context()
	base := benchmark.Setup{Dir: t.TempDir(), Timeout: time.Minute, MaxAckPending: 100}
	var sc benchmark.Scenario
	for _, x := range benchmark.Scenarios(base, benchmark.RealWorldOptions{RPM: 1200, TokensPerMail: 700, Floor: 3 * time.Second, Latency: 50 * time.Millisecond, Users: 2}) {
		if x.Name == "shared" {
			sc = x
		}
	}
	r, err := benchmark.RunRealWorld(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Err != nil || r.Lost != 0 || r.Duplicated != 0 || r.Classified != len(sc.Mails) {
		t.Fatalf("err %v, classified %d of %d, lost %d, duplicated %d", r.Err, r.Classified, len(sc.Mails), r.Lost, r.Duplicated)
	}
	if r.Other.Requests == 0 || r.Floor <= 0 || r.RestShare() <= 0 {
		t.Errorf("other client %+v, floor %s, share of the rest %.2f", r.Other, r.Floor, r.RestShare())
	}
	t.Logf("completion %s, floor %s, share of the rest %.2f, 429s %d of %d, other %+v", r.Completion, r.Floor, r.RestShare(), r.RateLimited, r.Requests, r.Other.Admitted)
	rep := &benchmark.Report{Date: time.Now(), Setup: base, RealWorld: []*benchmark.RealWorldResult{r}, Charts: map[string]string{}}
	if md := rep.Markdown(); !strings.Contains(md, "shared: mailroom's share of what the other client left") || strings.Contains(md, "## Runs") {
		t.Errorf("report:\n%s", md)
	}
}
