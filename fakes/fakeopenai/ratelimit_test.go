package fakeopenai_test

import (
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{time.Nanosecond, "1ms"},
		{6 * time.Millisecond, "6ms"},
		{5*time.Millisecond + 1, "6ms"},
		{20 * time.Millisecond, "20ms"},
		{1200 * time.Millisecond, "1.2s"},
		{1500 * time.Millisecond, "1.5s"},
		{63 * time.Second, "1m3s"},
		{6 * time.Minute, "6m0s"},
	} {
		if got := fakeopenai.FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// Admission costs prompt tokens + max_completion_tokens (or max_tokens, or
// the default) × n, whatever the answer turns out to use.
func TestAdmissionCountsMaxTokens(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{
		Keys:             map[string]fakeopenai.Limits{"sk-a": {TPM: 600_000}}, // 60,000 tokens per 6 s window
		DefaultMaxTokens: 3000,
		Now:              clk.Now,
	})
	p := promptOf("hello")
	for _, tc := range []struct {
		name string
		body map[string]any
		cost int
	}{
		{"max_completion_tokens", chat("hello", 1000), p + 1000},
		{"max_tokens", func() map[string]any { b := chat("hello", 0); b["max_tokens"] = 700; return b }(), p + 700},
		{"both: max_completion_tokens wins", func() map[string]any { b := chat("hello", 50); b["max_tokens"] = 700; return b }(), p + 50},
		{"neither: the default", chat("hello", 0), p + 3000},
		{"n=3", func() map[string]any { b := chat("hello", 100); b["n"] = 3; return b }(), p + 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.Reset()
			r := post(t, url, "sk-a", tc.body)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if got, want := r.header.Get("x-ratelimit-remaining-tokens"), strconv.Itoa(60_000-tc.cost); got != want {
				t.Errorf("remaining tokens = %s, want %s", got, want)
			}
			st := fake.Stats().Keys["sk-a"]
			if st.AdmittedTokens != int64(tc.cost) || st.Admitted != 1 {
				t.Errorf("admitted %d requests, %d tokens; want 1, %d", st.Admitted, st.AdmittedTokens, tc.cost)
			}
			if got := r.usage("prompt_tokens"); got != p {
				t.Errorf("prompt_tokens = %d, want %d", got, p)
			}
			if got := r.usage("completion_tokens"); got >= tc.cost-p {
				t.Errorf("completion_tokens = %d, want fewer than the %d admitted", got, tc.cost-p)
			}
		})
	}
}

// The buckets refill at limit/60 per second, hold Window's worth and no more.
func TestBucketRefill(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{
		Keys:   map[string]fakeopenai.Limits{"sk-a": {RPM: 600}}, // 10/s, 60 per 6 s window
		Window: 6 * time.Second,
		Now:    clk.Now,
	})
	burst := func() (admitted int) {
		for {
			r := post(t, url, "sk-a", chat("x", 1))
			if r.status == 429 {
				return admitted
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			admitted++
			if admitted > 1000 {
				t.Fatal("never limited")
			}
		}
	}
	if got, want := burst(), 60; got != want {
		t.Errorf("fresh bucket admitted %d, want %d (a window's worth)", got, want)
	}
	// Rejections deducted nothing: exactly one request per 100 ms refills.
	clk.Advance(99 * time.Millisecond)
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 429 {
		t.Errorf("after 99ms: status %d, want 429", r.status)
	}
	clk.Advance(time.Millisecond)
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 200 {
		t.Errorf("after 100ms: status %d, want 200: %s", r.status, r.raw)
	}
	clk.Advance(time.Second)
	if got, want := burst(), 10; got != want {
		t.Errorf("after 1s admitted %d, want %d", got, want)
	}
	// An idle hour still buys only a window's worth.
	clk.Advance(time.Hour)
	if got, want := burst(), 60; got != want {
		t.Errorf("after an hour admitted %d, want %d", got, want)
	}
	st := fake.Stats().Keys["sk-a"]
	if st.Admitted != 60+1+10+60 || st.RateLimited != 4 {
		t.Errorf("stats admitted %d, rate limited %d; want 131, 4", st.Admitted, st.RateLimited)
	}
}

// A request larger than the window's capacity but within the minute's limit
// is admitted from a full bucket; one above the minute's limit never is.
func TestLargerThanWindow(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys: map[string]fakeopenai.Limits{"sk-a": {TPM: 10_000}}, // 1,000 per window
		Now:  clk.Now,
	})
	if r := post(t, url, "sk-a", chat("x", 5000)); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	r := post(t, url, "sk-a", chat("x", 100))
	if r.status != 429 {
		t.Fatalf("status %d, want 429 while in debt", r.status)
	}
	r = post(t, url, "sk-a", chat("x", 20_000))
	if r.status != 429 || r.errorField("code") != "rate_limit_exceeded" {
		t.Fatalf("status %d: %s, want 429", r.status, r.raw)
	}
	if msg := r.errorField("message").(string); !regexp.MustCompile(`^Request too large for gpt-4o-mini in organization org-fake on tokens per min \(TPM\): Limit 10000, Requested \d+\.`).MatchString(msg) {
		t.Errorf("message = %q", msg)
	}
}

var tryAgainRE = regexp.MustCompile(`^Rate limit reached for gpt-4o-mini in organization org-fake on (tokens per min \(TPM\)|requests per min \(RPM\)): Limit (\d+), Used (\d+), Requested (\d+)\. Please try again in (\S+)\. Visit https://platform\.openai\.com/account/rate-limits to learn more\.$`)

// The 429 says exactly how long to wait, in OpenAI's words and headers.
func Test429Tokens(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 6000, TPM: 60_000}}, // 6,000 tokens per window, 1 token/ms
		Now:  clk.Now,
	})
	p := promptOf("x")
	first := post(t, url, "sk-a", chat("x", 4000))
	if first.status != 200 {
		t.Fatalf("status %d", first.status)
	}
	clk.Advance(123456 * time.Microsecond) // refills 123.456 tokens
	level := 6000 - float64(p+4000) + 123.456
	cost := p + 3000
	wantWait := time.Duration((float64(cost) - level) * float64(time.Millisecond))

	r := post(t, url, "sk-a", chat("x", 3000))
	if r.status != 429 {
		t.Fatalf("status %d, want 429", r.status)
	}
	if r.errorField("code") != "rate_limit_exceeded" || r.errorField("type") != "tokens" || r.errorField("param") != nil {
		t.Errorf("error = %s", r.raw)
	}
	m := tryAgainRE.FindStringSubmatch(r.errorField("message").(string))
	if m == nil {
		t.Fatalf("message = %q", r.errorField("message"))
	}
	if m[1] != "tokens per min (TPM)" || m[2] != "60000" || m[4] != strconv.Itoa(cost) {
		t.Errorf("message = %q", m[0])
	}
	if got, want := m[3], strconv.Itoa(60_000-int(math.Floor(level))); got != want {
		t.Errorf("used = %s, want %s", got, want)
	}
	wait, err := time.ParseDuration(m[5])
	if err != nil {
		t.Fatal(err)
	}
	if wait < wantWait || wait-wantWait > time.Millisecond {
		t.Errorf("try again in %v, want %v within a millisecond above", wait, wantWait)
	}
	if got, want := r.header.Get("retry-after-ms"), strconv.Itoa(int(wait/time.Millisecond)); got != want {
		t.Errorf("retry-after-ms = %s, want %s", got, want)
	}
	if got, want := r.header.Get("retry-after"), strconv.Itoa(int(math.Ceil(wait.Seconds()))); got != want {
		t.Errorf("retry-after = %s, want %s", got, want)
	}
	// A rejection deducts nothing.
	if got, want := r.header.Get("x-ratelimit-remaining-tokens"), strconv.Itoa(int(math.Floor(level))); got != want {
		t.Errorf("remaining tokens on the 429 = %s, want %s", got, want)
	}
	if got, want := r.header.Get("x-ratelimit-remaining-requests"), "600"; got != want { // refilled to the window's 600
		t.Errorf("remaining requests on the 429 = %s, want %s", got, want)
	}

	// Waiting a millisecond less is not enough; waiting as told is.
	clk.Advance(wait - time.Millisecond)
	if r := post(t, url, "sk-a", chat("x", 3000)); r.status != 429 {
		t.Errorf("a millisecond early: status %d, want 429", r.status)
	}
	clk.Advance(time.Millisecond)
	if r := post(t, url, "sk-a", chat("x", 3000)); r.status != 200 {
		t.Errorf("on time: status %d, want 200: %s", r.status, r.raw)
	}
}

func Test429Requests(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 60, TPM: 1_000_000}}, // 6 requests per window, 1/s
		Now:  clk.Now,
	})
	for range 6 {
		if r := post(t, url, "sk-a", chat("x", 10)); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	clk.Advance(400 * time.Millisecond)
	r := post(t, url, "sk-a", chat("x", 10))
	if r.status != 429 || r.errorField("type") != "requests" {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	m := tryAgainRE.FindStringSubmatch(r.errorField("message").(string))
	if m == nil {
		t.Fatalf("message = %q", r.errorField("message"))
	}
	if m[1] != "requests per min (RPM)" || m[2] != "60" || m[3] != "60" || m[4] != "1" || m[5] != "600ms" {
		t.Errorf("message = %q, want Limit 60, Used 60, Requested 1, try again in 600ms", m[0])
	}
	if got, want := r.header.Get("retry-after"), "1"; got != want {
		t.Errorf("retry-after = %s, want %s", got, want)
	}
	if got, want := r.header.Get("x-ratelimit-reset-requests"), "5.6s"; got != want {
		t.Errorf("reset-requests = %s, want %s", got, want)
	}
}

func TestRateHeaders(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys:   map[string]fakeopenai.Limits{"sk-a": {RPM: 120, TPM: 6_000}, "sk-b": {}},
		Window: time.Minute,
		Now:    clk.Now,
	})
	p := promptOf("x")
	r := post(t, url, "sk-a", chat("x", 100))
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	for name, want := range map[string]string{
		"x-ratelimit-limit-requests":     "120",
		"x-ratelimit-limit-tokens":       "6000",
		"x-ratelimit-remaining-requests": "119",
		"x-ratelimit-remaining-tokens":   strconv.Itoa(6000 - p - 100),
		"x-ratelimit-reset-requests":     "500ms",                                                                 // 2/s
		"x-ratelimit-reset-tokens":       fakeopenai.FormatDuration(time.Duration(p+100) * 10 * time.Millisecond), // 100/s
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	clk.Advance(time.Hour)
	r = post(t, url, "sk-a", chat("x", 100))
	if got, err := time.ParseDuration(r.header.Get("x-ratelimit-reset-tokens")); err != nil || got <= 0 {
		t.Errorf("reset-tokens %q does not parse as a positive Go duration: %v", r.header.Get("x-ratelimit-reset-tokens"), err)
	}
	// An unlimited key has no rate headers.
	r = post(t, url, "sk-b", chat("x", 100))
	if r.status != 200 || r.header.Get("x-ratelimit-limit-requests") != "" || r.header.Get("x-ratelimit-remaining-tokens") != "" {
		t.Errorf("unlimited key: status %d, headers %v", r.status, r.header)
	}
}

// Each key has its own buckets.
func TestKeysAreIndependent(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 10}, "sk-b": {RPM: 10}},
		Now:  clk.Now,
	})
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := post(t, url, "sk-a", chat("x", 1)); r.status != 429 {
		t.Errorf("sk-a second: %d, want 429", r.status)
	}
	if r := post(t, url, "sk-b", chat("x", 1)); r.status != 200 {
		t.Errorf("sk-b first: %d, want 200", r.status)
	}
}
