package fakeopenai_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// burst posts n requests for model and returns their statuses.
func burst(t *testing.T, url, key, model string, n, maxTokens int) []int {
	t.Helper()
	var got []int
	for range n {
		b := chat("x", maxTokens)
		b["model"] = model
		got = append(got, post(t, url, key, b).status)
	}
	return got
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// A 1 s window enforces a per-minute limit as its sixtieth a second, exactly.
func TestOneSecondWindow(t *testing.T) {
	t.Run("1,200 RPM as 20 a second", func(t *testing.T) {
		clk := newClock()
		fake, url := serve(t, fakeopenai.Config{Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 1200}}, Window: time.Second, Now: clk.Now})
		if got := burst(t, url, "sk-a", "gpt-4o-mini", 21, 1); count(got, 200) != 20 || got[20] != 429 {
			t.Fatalf("statuses %v, want 20 admitted then a 429", got)
		}
		r := post(t, url, "sk-a", chat("x", 1))
		if got, want := r.header.Get("retry-after-ms"), "50"; r.status != 429 || got != want {
			t.Errorf("status %d, retry-after-ms %s; want 429, %s", r.status, got, want)
		}
		clk.Advance(50 * time.Millisecond)
		if got := burst(t, url, "sk-a", "gpt-4o-mini", 2, 1); !slices.Equal(got, []int{200, 429}) {
			t.Errorf("after 50 ms: %v, want one admitted", got)
		}
		// A long pause refills one second's worth, no more.
		clk.Advance(time.Minute)
		if got := burst(t, url, "sk-a", "gpt-4o-mini", 21, 1); count(got, 200) != 20 {
			t.Errorf("after a minute: %d admitted, want 20", count(got, 200))
		}
		if st := fake.Stats().Keys["sk-a"]; st.Admitted != 41 {
			t.Errorf("admitted %d, want 41", st.Admitted)
		}
	})
	t.Run("60,000 RPM as 1,000 a second", func(t *testing.T) {
		clk := newClock()
		_, url := serve(t, fakeopenai.Config{Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 60_000}}, Window: time.Second, Now: clk.Now})
		r := post(t, url, "sk-a", chat("x", 1))
		for name, want := range map[string]string{
			"x-ratelimit-limit-requests":     "60000",
			"x-ratelimit-remaining-requests": "999",
			"x-ratelimit-reset-requests":     "1ms",
		} {
			if got := r.header.Get(name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	})
}

// With RemainingPerMinute the headers report what is left of the minute's
// limit while the window still enforces.
func TestRemainingPerMinute(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys:               map[string]fakeopenai.Limits{"sk-a": {RPM: 600, TPM: 600_000}},
		Window:             time.Second,
		RemainingPerMinute: true,
		Now:                clk.Now,
	})
	cost := promptOf("x") + 100
	var last reply
	for i := range 10 {
		last = post(t, url, "sk-a", chat("x", 100))
		if last.status != 200 {
			t.Fatalf("request %d: status %d", i, last.status)
		}
	}
	for name, want := range map[string]string{
		"x-ratelimit-limit-requests":     "600",
		"x-ratelimit-remaining-requests": "590",
		"x-ratelimit-reset-requests":     "1s", // 10 requests at 10 a second
		"x-ratelimit-remaining-tokens":   strconv.Itoa(600_000 - 10*cost),
		"x-ratelimit-reset-tokens":       fakeopenai.FormatDuration(time.Duration(cost) * time.Millisecond), // 10,000 tokens a second
	} {
		if got := last.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The 1 s window (10 requests) is spent although the minute is not.
	r := post(t, url, "sk-a", chat("x", 100))
	if r.status != 429 || r.header.Get("x-ratelimit-remaining-requests") != "590" || r.header.Get("retry-after-ms") != "100" {
		t.Errorf("11th request: %d, remaining %s, retry-after-ms %s; want 429, 590, 100",
			r.status, r.header.Get("x-ratelimit-remaining-requests"), r.header.Get("retry-after-ms"))
	}
}

// Changes move a key to other limits at their time; the headers and the
// stats follow, and Reset restores the configured limits.
func TestLimitChanges(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{
		Keys:   map[string]fakeopenai.Limits{"sk-a": {RPM: 600}},
		Window: time.Second,
		Changes: []fakeopenai.LimitChange{
			{At: 20 * time.Second, Key: "sk-a", Limits: fakeopenai.Limits{RPM: 1200}},
			{At: 10 * time.Second, Key: "sk-a", Limits: fakeopenai.Limits{RPM: 300}},
		},
		Now: clk.Now,
	})
	check := func(when string, wantAdmitted int, wantLimit string) {
		t.Helper()
		got := burst(t, url, "sk-a", "gpt-4o-mini", wantAdmitted+1, 1)
		if count(got, 200) != wantAdmitted {
			t.Errorf("%s: %d admitted, want %d", when, count(got, 200), wantAdmitted)
		}
		if r := post(t, url, "sk-a", chat("x", 1)); r.header.Get("x-ratelimit-limit-requests") != wantLimit {
			t.Errorf("%s: limit header %q, want %s", when, r.header.Get("x-ratelimit-limit-requests"), wantLimit)
		}
	}
	check("at 0 s", 10, "600")
	clk.Advance(10 * time.Second)
	check("at 10 s (halved)", 5, "300")
	if got := fake.Stats().Keys["sk-a"].RPM; got != 300 {
		t.Errorf("stats RPM %d, want 300", got)
	}
	// At 20 s the bucket holds the 5 it refilled to, then refills at 20/s.
	clk.Advance(10 * time.Second)
	check("at 20 s (doubled)", 5, "1200")
	clk.Advance(time.Second)
	check("at 21 s", 20, "1200")

	fake.Reset()
	if got := fake.Stats().Keys["sk-a"].RPM; got != 600 {
		t.Errorf("after Reset: RPM %d, want 600", got)
	}
	check("after Reset", 10, "600")
}

// The other client sends its share from the same buckets, one request at
// a time on the fake clock, and is counted apart.
func TestOtherClient(t *testing.T) {
	t.Run("half of the requests", func(t *testing.T) {
		clk := newClock()
		fake, url := serve(t, fakeopenai.Config{
			Keys:   map[string]fakeopenai.Limits{"sk-a": {RPM: 600, TPM: 60_000}},
			Window: time.Second,
			Other:  fakeopenai.OtherClient{Share: 0.5},
			Now:    clk.Now,
		})
		clk.Advance(10 * time.Second)
		// 5 a second at 0 s, 0.2 s, … 10 s, each of TPM ÷ RPM = 100 tokens.
		o := fake.Stats().Other
		if o.Requests != 51 || o.Admitted != 51 || o.Refused != 0 || o.AdmittedTokens != 5100 {
			t.Errorf("other client %+v, want 51 requests admitted, 5,100 tokens", o)
		}
		if len(o.Series) != 11 || o.Series[0].Admitted != 5 || o.Series[10].Admitted != 1 {
			t.Errorf("other client's series %+v", o.Series)
		}
		// Its request at 10 s left 9 of the window's 10.
		got := burst(t, url, "sk-a", "gpt-4o-mini", 10, 1)
		if count(got, 200) != 9 {
			t.Errorf("own requests %v, want 9 admitted", got)
		}
		// Over the next second the bucket gains 10 and the other takes 5.
		clk.Advance(time.Second)
		if got := burst(t, url, "sk-a", "gpt-4o-mini", 6, 1); count(got, 200) != 5 {
			t.Errorf("own requests a second later %v, want 5 admitted", got)
		}
		st := fake.Stats()
		if st.Keys["sk-a"].Admitted != 14 || st.Other.Admitted != 56 || st.Other.Refused != 0 {
			t.Errorf("own admitted %d, other %+v; want 14 and 56", st.Keys["sk-a"].Admitted, st.Other)
		}
	})
	t.Run("refused while the buckets are in debt", func(t *testing.T) {
		clk := newClock()
		fake, url := serve(t, fakeopenai.Config{
			Keys:   map[string]fakeopenai.Limits{"sk-a": {TPM: 60_000}}, // 1,000 tokens a second
			Window: time.Second,
			Other:  fakeopenai.OtherClient{Share: 0.5, Tokens: 100}, // 5 a second
			Now:    clk.Now,
		})
		clk.Advance(100 * time.Millisecond)
		// 3,000 tokens from a full bucket (1,000 after the other's 100 at
		// 0 s and 100 ms of refill) leave it 2,000 in debt until 2.1 s.
		if r := post(t, url, "sk-a", chat("x", 3000-promptOf("x"))); r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		clk.Advance(2900 * time.Millisecond)
		o := fake.Stats().Other
		// 0 s admitted; 0.2 … 2.0 s refused; 2.2 … 3.0 s admitted.
		if o.Requests != 16 || o.Refused != 10 || o.Admitted != 6 {
			t.Errorf("other client %+v, want 16 requests: 10 refused, 6 admitted", o)
		}
		if o.Series[1].RateLimited != 5 || o.Series[2].Admitted != 4 {
			t.Errorf("other client's series %+v", o.Series)
		}
	})
}

// A key's limits per model: separate buckets, headers for the model asked,
// stats per model beside the key's totals.
func TestModelLimits(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{
		Keys:        map[string]fakeopenai.Limits{"sk-a": {RPM: 600}},
		ModelLimits: map[string]map[string]fakeopenai.Limits{"sk-a": {"gpt-4o": {RPM: 120, TPM: 30_000}}},
		Window:      time.Second,
		Changes:     []fakeopenai.LimitChange{{At: 10 * time.Second, Key: "sk-a", Model: "gpt-4o", Limits: fakeopenai.Limits{RPM: 240, TPM: 30_000}}},
		Now:         clk.Now,
	})
	if got := burst(t, url, "sk-a", "gpt-4o", 3, 1); !slices.Equal(got, []int{200, 200, 429}) {
		t.Errorf("gpt-4o: %v, want 2 admitted (120 RPM over 1 s)", got)
	}
	b := chat("x", 1)
	b["model"] = "gpt-4o"
	r := post(t, url, "sk-a", b)
	if r.header.Get("x-ratelimit-limit-requests") != "120" || r.header.Get("x-ratelimit-limit-tokens") != "30000" {
		t.Errorf("gpt-4o headers %v", r.header)
	}
	if got := burst(t, url, "sk-a", "gpt-4o-mini", 11, 1); count(got, 200) != 10 {
		t.Errorf("gpt-4o-mini: %v, want its own 10", got)
	}
	r = post(t, url, "sk-a", chat("x", 1))
	if r.header.Get("x-ratelimit-limit-requests") != "600" || r.header.Get("x-ratelimit-limit-tokens") != "" {
		t.Errorf("gpt-4o-mini headers %v", r.header)
	}
	st := fake.Stats().Keys["sk-a"]
	m := st.Models["gpt-4o"]
	if m.RPM != 120 || m.Requests != 4 || m.Admitted != 2 || m.RateLimited != 2 || len(m.Series) != 1 || m.Series[0].Admitted != 2 {
		t.Errorf("gpt-4o stats %+v", m)
	}
	if st.Requests != 16 || st.Admitted != 12 || st.RateLimited != 4 {
		t.Errorf("key stats %+v, want every model's: 16 requests, 12 admitted", st)
	}
	if _, ok := st.Models["gpt-4o-mini"]; ok || len(st.Models) != 1 {
		t.Errorf("models %v, want gpt-4o only", st.Models)
	}
	clk.Advance(10 * time.Second)
	if got := burst(t, url, "sk-a", "gpt-4o", 5, 1); count(got, 200) != 2 {
		t.Errorf("gpt-4o at 10 s: %v, want 2 admitted (the bucket keeps its level)", got)
	}
	clk.Advance(time.Second)
	if got := burst(t, url, "sk-a", "gpt-4o", 5, 1); count(got, 200) != 4 {
		t.Errorf("gpt-4o at 11 s: %v, want 4 admitted (240 RPM)", got)
	}
	if got := fake.Stats().Keys["sk-a"].Models["gpt-4o"].RPM; got != 240 {
		t.Errorf("gpt-4o RPM %d after the change, want 240", got)
	}
}

// LatencySteps change the base latency at their times on the fake clock.
func TestLatencySteps(t *testing.T) {
	clk := newClock()
	var slept sleeps
	_, url := serve(t, fakeopenai.Config{
		Latency:      300 * time.Millisecond,
		LatencySteps: []fakeopenai.LatencyStep{{At: 20 * time.Second, Latency: 300 * time.Millisecond}, {At: 10 * time.Second, Latency: 3 * time.Second}},
		Sleep:        slept.Sleep,
		Now:          clk.Now,
	})
	for range 3 {
		post(t, url, fakeopenai.DefaultKey, chat("x", 1))
		clk.Advance(10 * time.Second)
	}
	if got, want := slept.all(), []time.Duration{300 * time.Millisecond, 3 * time.Second, 300 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("latencies %v, want %v", got, want)
	}
}
