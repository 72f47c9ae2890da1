package fakeopenai_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		fault    fakeopenai.Fault
		status   int
		admitted int64 // whether the fault used rate-limit capacity
		check    func(t *testing.T, r reply)
	}{
		{fakeopenai.ServerError, 500, 1, func(t *testing.T, r reply) {
			if r.errorField("type") != "server_error" || r.errorField("message") != "The server had an error while processing your request. Sorry about that!" {
				t.Errorf("body %s", r.raw)
			}
		}},
		{fakeopenai.Overloaded, 503, 0, func(t *testing.T, r reply) {
			if r.errorField("type") != "server_error" {
				t.Errorf("body %s", r.raw)
			}
		}},
		{fakeopenai.InvalidJSON, 200, 1, func(t *testing.T, r reply) {
			if c := r.content(); c == "" || json.Valid([]byte(c)) {
				t.Errorf("content %q is valid JSON", c)
			}
		}},
		{fakeopenai.OutsideEnum, 200, 1, func(t *testing.T, r reply) {
			var out map[string]any
			if err := json.Unmarshal([]byte(r.content()), &out); err != nil {
				t.Fatalf("content %q: %v", r.content(), err)
			}
			if slices.Contains(taxonomy, out["category"]) {
				t.Errorf("category %v is in the enum", out["category"])
			}
			if out["priority"] == nil || out["reason"] == nil {
				t.Errorf("content %s lacks the other fields", r.content())
			}
		}},
		{fakeopenai.RateLimitStorm(1500 * time.Millisecond), 429, 0, func(t *testing.T, r reply) {
			m := tryAgainRE.FindStringSubmatch(fmt.Sprint(r.errorField("message")))
			if m == nil || m[5] != "1.5s" || r.errorField("code") != "rate_limit_exceeded" {
				t.Errorf("body %s", r.raw)
			}
			for name, want := range map[string]string{
				"retry-after": "2", "retry-after-ms": "1500",
				"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		}},
	} {
		t.Run(string(tc.fault.Kind), func(t *testing.T) {
			clk := newClock()
			fake, url := serve(t, fakeopenai.Config{Now: clk.Now})
			fake.Inject(tc.fault, 2)
			for i := range 2 {
				r := post(t, url, fakeopenai.DefaultKey, withSchema(chat("Your invoice", 100), classificationSchema()))
				if r.status != tc.status {
					t.Fatalf("request %d: status %d, want %d: %s", i, r.status, tc.status, r.raw)
				}
				tc.check(t, r)
			}
			if r := post(t, url, fakeopenai.DefaultKey, withSchema(chat("Your invoice", 100), classificationSchema())); r.status != 200 || !json.Valid([]byte(r.content())) {
				t.Errorf("after the faults: %d %s", r.status, r.raw)
			}
			st := fake.Stats().Keys[fakeopenai.DefaultKey]
			if st.Faults[tc.fault.Kind] != 2 || st.Admitted != 2*tc.admitted+1 || st.Requests != 3 {
				t.Errorf("stats %+v, want 2 faults, %d admitted, 3 requests", st, 2*tc.admitted+1)
			}
		})
	}
}

func TestSlowFault(t *testing.T) {
	var slept sleeps
	fake, url := serve(t, fakeopenai.Config{Latency: 20 * time.Millisecond, Sleep: slept.Sleep})
	fake.Inject(fakeopenai.Slow(300*time.Millisecond), 1)
	if r := post(t, url, fakeopenai.DefaultKey, chat("x", 10)); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	post(t, url, fakeopenai.DefaultKey, chat("x", 10))
	if got, want := slept.all(), []time.Duration{300 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("latencies %v, want %v (the slow one, then the configured one)", got, want)
	}
	if st := fake.Stats().Keys[fakeopenai.DefaultKey]; st.Faults[fakeopenai.FaultSlow] != 1 || st.Admitted != 2 {
		t.Errorf("stats %+v, want 1 slow fault of 2 admitted", st)
	}
}

// A queued fault that happens after admission waits for a request that is
// admitted; one rejected by the limiter does not use it up.
func TestQueuedFaultSurvivesRateLimit(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 10}}, Now: clk.Now})
	post(t, url, "sk-a", chat("x", 1))
	fake.Inject(fakeopenai.ServerError, 1)
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 429 {
		t.Fatalf("status %d, want 429", r.status)
	}
	clk.Advance(6 * time.Second)
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 500 {
		t.Errorf("status %d, want the queued 500", r.status)
	}
}

// Random faults follow the seed.
func TestFaultRatesDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		_, url := serve(t, fakeopenai.Config{Seed: seed, Faults: fakeopenai.FaultRates{ServerError: 0.3, Overloaded: 0.2}})
		var got []int
		for range 30 {
			got = append(got, post(t, url, fakeopenai.DefaultKey, chat("x", 1)).status)
		}
		return got
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different runs:\n%v\n%v", a, b)
	}
	count := map[int]int{}
	for _, s := range a {
		count[s]++
	}
	if count[500] == 0 || count[503] == 0 || count[200] == 0 || count[500]+count[503]+count[200] != 30 {
		t.Errorf("statuses %v, want a mix of 200, 500 and 503", count)
	}
}

func TestLatencyJitter(t *testing.T) {
	var slept sleeps
	_, url := serve(t, fakeopenai.Config{Latency: 50 * time.Millisecond, Jitter: 50 * time.Millisecond, Seed: 1, Sleep: slept.Sleep})
	for range 20 {
		post(t, url, fakeopenai.DefaultKey, chat("x", 1))
	}
	got := slept.all()
	if len(got) != 20 {
		t.Fatalf("%d latencies for 20 requests", len(got))
	}
	for _, d := range got {
		if d < 50*time.Millisecond || d >= 100*time.Millisecond {
			t.Errorf("latency %v, want within [50ms, 100ms)", d)
		}
	}
	if slices.Min(got) == slices.Max(got) {
		t.Errorf("latencies %v: no jitter", got)
	}
}

func TestStatsAndReset(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 60, TPM: 100_000}}, Now: clk.Now})
	p := promptOf("x")
	post(t, url, "sk-a", chat("x", 10))
	clk.Advance(1500 * time.Millisecond)
	post(t, url, "sk-a", chat("x", 20))
	post(t, url, "sk-a", chat("x", 20))
	clk.Advance(time.Second)
	for range 10 {
		post(t, url, "sk-a", chat("x", 1))
	}

	resp, err := http.Get(url + "/fake/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st fakeopenai.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	ks := st.Keys["sk-a"]
	// 6 requests per window, 1/s: 1 at 0s (5 left), 2 at 1.5s (refilled to
	// 6, 4 left), then 5 of the 10 at 2.5s.
	want := []fakeopenai.Second{
		{Admitted: 1, AdmittedTokens: int64(p + 10)},
		{Admitted: 2, AdmittedTokens: int64(2 * (p + 20))},
		{Admitted: 5, AdmittedTokens: int64(5 * (p + 1)), RateLimited: 5},
	}
	if !slices.Equal(ks.Series, want) {
		t.Errorf("series %+v, want %+v", ks.Series, want)
	}
	if ks.Requests != 13 || ks.Admitted != 8 || ks.RateLimited != 5 || ks.RPM != 60 || ks.TPM != 100_000 {
		t.Errorf("totals %+v", ks)
	}
	if ks.PromptTokens != int64(8*p) {
		t.Errorf("prompt tokens %d, want %d", ks.PromptTokens, 8*p)
	}
	if st.MaxInFlight < 1 || st.InFlight != 0 {
		t.Errorf("in flight %d, max %d", st.InFlight, st.MaxInFlight)
	}

	if resp, err := http.Post(url+"/fake/reset", "", nil); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: %v %v", resp, err)
	}
	st = fake.Stats()
	if ks := st.Keys["sk-a"]; ks.Requests != 0 || len(ks.Series) != 0 || !st.Start.Equal(clk.Now()) {
		t.Errorf("after reset %+v", st)
	}
	// Reset refills the buckets.
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 200 || r.header.Get("x-ratelimit-remaining-requests") != "5" {
		t.Errorf("after reset: %d, remaining %s", r.status, r.header.Get("x-ratelimit-remaining-requests"))
	}
}

// Under concurrent requests the limiter admits exactly the window's
// capacity, and the books balance.
func TestConcurrency(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{
		Keys:    map[string]fakeopenai.Limits{"sk-a": {RPM: 1000}, "sk-b": {TPM: 60_000}},
		Latency: 20 * time.Millisecond,
		Now:     clk.Now,
	})
	fake.Inject(fakeopenai.ServerError, 5)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]map[int]int{"sk-a": {}, "sk-b": {}}
	for g := range 16 {
		wg.Go(func() {
			key := []string{"sk-a", "sk-b"}[g%2]
			for range 10 {
				r := post(t, url, key, chat("x", 100))
				mu.Lock()
				statuses[key][r.status]++
				mu.Unlock()
				_ = fake.Stats()
			}
		})
	}
	wg.Wait()
	st := fake.Stats()
	a, b := st.Keys["sk-a"], st.Keys["sk-b"]
	if a.Admitted != 80 || a.RateLimited != 0 {
		t.Errorf("sk-a (100 per window): admitted %d, limited %d; want 80, 0", a.Admitted, a.RateLimited)
	}
	capB := int64(6000 / (promptOf("x") + 100))
	if b.Admitted != capB || b.RateLimited != 80-capB {
		t.Errorf("sk-b (6000 tokens per window): admitted %d, limited %d; want %d, %d", b.Admitted, b.RateLimited, capB, 80-capB)
	}
	if got := statuses["sk-a"][500] + statuses["sk-b"][500]; got != 5 {
		t.Errorf("%d server errors, want the 5 injected", got)
	}
	if st.MaxInFlight < 2 || st.MaxInFlight > 16 || st.InFlight != 0 {
		t.Errorf("in flight %d, max %d; want 0 and 2..16", st.InFlight, st.MaxInFlight)
	}
}

func TestNotFound(t *testing.T) {
	_, url := serve(t, fakeopenai.Config{})
	resp, err := http.Get(url + "/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Message, Type string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 404 || body.Error.Message != "Invalid URL (GET /v1/nope)" || body.Error.Type != "invalid_request_error" {
		t.Errorf("got %d %+v", resp.StatusCode, body)
	}
}

func TestStart(t *testing.T) {
	fake, url, stop, err := fakeopenai.Start(fakeopenai.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if r := post(t, url, fakeopenai.DefaultKey, chat("x", 1)); r.status != 200 {
		t.Errorf("status %d", r.status)
	}
	if fake.Stats().Keys[fakeopenai.DefaultKey].Admitted != 1 {
		t.Error("not counted")
	}
}
