package limiter_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/limiter"
)

// rateHeaders are the x-ratelimit-* headers of an answer.
func rateHeaders(limitReq, remainingReq, limitTok, remainingTok int) http.Header {
	h := http.Header{}
	if limitReq > 0 {
		h.Set("x-ratelimit-limit-requests", strconv.Itoa(limitReq))
		h.Set("x-ratelimit-remaining-requests", strconv.Itoa(remainingReq))
	}
	if limitTok > 0 {
		h.Set("x-ratelimit-limit-tokens", strconv.Itoa(limitTok))
		h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(remainingTok))
	}
	return h
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestStartsEmptyAndGoesAtTheRate: a fresh limiter sends nothing in a burst
// that a one-second window would refuse; it admits at the rate from the
// start and its bucket never holds more than the burst (500 ms by default).
func TestStartsEmptyAndGoesAtTheRate(t *testing.T) {
	c := newClock()
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{key("k", 1200, 1e9)}, Clock: c}) // 20/s
	h := &harness{t: t, clock: c, l: l, perms: map[string]*limiter.Permit{}}
	ctx := context.Background()
	for i := range 60 {
		h.acquire(ctx, strconv.Itoa(i), limiter.Request{User: "u", Tokens: 1})
	}
	if got := len(h.admitted(0)); got != 0 {
		t.Fatalf("admitted %d at the start, want 0 (the buckets start empty)", got)
	}
	c.Advance(time.Second)
	if got := len(h.admitted(20)); got != 20 {
		t.Fatalf("admitted %d in the first second at 1,200 RPM, want 20", got)
	}
	if s := l.Status().Keys[0]; s.Burst != 500*time.Millisecond || s.RequestsAvailable > 10 {
		t.Errorf("burst %v, requests available %v; want 500ms and at most 10", s.Burst, s.RequestsAvailable)
	}
}

// TestLearnsTheLimitsFromTheFirstAnswer: with no configured limits, one
// request goes alone; its answer's x-ratelimit-limit-* set the rates.
func TestLearnsTheLimitsFromTheFirstAnswer(t *testing.T) {
	c := newClock()
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "k"}}, Models: []string{"m"}, Clock: c})
	h := &harness{t: t, clock: c, l: l, perms: map[string]*limiter.Permit{}}
	if s := l.Status().Keys[0]; s.Source != limiter.SourceLearning {
		t.Fatalf("source %q before any answer, want learning", s.Source)
	}
	ctx := context.Background()
	for i := range 5 {
		h.acquire(ctx, strconv.Itoa(i), limiter.Request{User: "u", Model: "m", Tokens: 100})
	}
	if got := h.admitted(1); len(got) != 1 {
		t.Fatalf("admitted %v before the first answer, want exactly one", got)
	}
	c.Advance(10 * time.Second)
	if got := h.admitted(1); len(got) != 1 {
		t.Fatalf("admitted %v while the first request is out, want one", got)
	}
	h.permit("0").Done(limiter.Outcome{Status: 200, Header: rateHeaders(600, 599, 600_000, 599_000)})
	s := l.Status().Keys[0]
	if s.Source != limiter.SourceAdvertised || s.RequestsPerMinute != 600 || s.TokensPerMinute != 600_000 || s.Advertised.RPM != 600 {
		t.Fatalf("after the answer: %+v; want the advertised 600 RPM, 600,000 TPM in force", s)
	}
	c.Advance(100 * time.Millisecond) // 10/s: one more request
	if got := h.admitted(2); len(got) != 2 {
		t.Fatalf("admitted %v 100 ms after learning 600 RPM, want 2", got)
	}
}

// TestNoHeadersMeansTheFallback: a server that advertises nothing gets the
// fallback limits, not unlimited traffic.
func TestNoHeadersMeansTheFallback(t *testing.T) {
	c := newClock()
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "k"}}, Models: []string{""}, Clock: c})
	h := &harness{t: t, clock: c, l: l, perms: map[string]*limiter.Permit{}}
	h.acquire(context.Background(), "a", limiter.Request{User: "u", Tokens: 1})
	h.admitted(1)
	h.permit("a").Done(limiter.Outcome{Status: 200})
	s := l.Status().Keys[0]
	if s.Source != limiter.SourceFallback || !near(s.RequestsPerMinute, limiter.Fallback.RPM) {
		t.Fatalf("after an answer without headers: source %q, %v RPM; want the fallback %v", s.Source, s.RequestsPerMinute, limiter.Fallback.RPM)
	}
}

// TestTheLowerOfConfiguredAndAdvertisedApplies: an operator who configured
// 4× the real limit runs at the real one from the first answer; a tier
// change takes effect at the next answer, and never lifts the limit above
// what was configured.
func TestTheLowerOfConfiguredAndAdvertisedApplies(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 1200, 1e9))
	ctx := context.Background()
	n := 0
	answer := func(name string, advertised int) {
		h.acquire(ctx, name, limiter.Request{User: "u", Tokens: 1})
		h.clock.Advance(2 * time.Second) // past the pause after a lowered limit
		n++
		h.admitted(n)
		h.permit(name).Done(limiter.Outcome{Status: 200, Header: rateHeaders(advertised, advertised, 0, 0)})
	}
	answer("a", 300)
	if s := h.l.Status().Keys[0]; s.RequestsPerMinute != 300 || s.Source != limiter.SourceAdvertised || s.Configured.RPM != 1200 {
		t.Fatalf("advertised 300 under a configured 1,200: %v RPM from %q", s.RequestsPerMinute, s.Source)
	}
	answer("b", 600)
	if s := h.l.Status().Keys[0]; s.RequestsPerMinute != 600 {
		t.Fatalf("after the tier rose to 600: %v RPM", s.RequestsPerMinute)
	}
	answer("c", 5000)
	if s := h.l.Status().Keys[0]; s.RequestsPerMinute != 1200 || s.Source != limiter.SourceConfigured {
		t.Fatalf("advertised 5,000 over a configured 1,200: %v RPM from %q; want the configured", s.RequestsPerMinute, s.Source)
	}
}

// TestReconcileTakesEachDifferenceOnce is the bug of issue 9: twenty
// requests admitted together were answered by a server that had ten fewer
// than the limiter thought; the old reconciliation took the ten off twenty
// times and drove the bucket hundreds into debt.
func TestReconcileTakesEachDifferenceOnce(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 1200, 1e9)) // 20 a second, bucket of 20
	ctx := context.Background()
	for i := range 20 {
		h.acquire(ctx, strconv.Itoa(i), limiter.Request{User: "u", Tokens: 1})
	}
	h.admitted(20)
	// The server admitted them into a bucket that held ten less: each
	// answer's remaining is the limiter's level after it, minus ten.
	for i := range 20 {
		rem := max(0, 20-(i+1)-10)
		h.permit(strconv.Itoa(i)).Done(limiter.Outcome{Status: 200, Header: rateHeaders(1200, rem, 0, 0)})
	}
	if got := h.l.Status().Keys[0].RequestsAvailable; got < -1 || got > 0 {
		t.Fatalf("requests available = %v after twenty answers ten short, want the ten taken off once (-1 at most: never below one request), not a deep debt", got)
	}
}

// TestA429IsInformationNotADebt: the buckets go to what the server says
// remains, never below minus one request's cost; the pool waits for the
// named reset; the ceiling is cut once per round trip and grows back.
func TestA429IsInformationNotADebt(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 1200, 120_000)) // 20 req/s, 2,000 tok/s
	ctx := context.Background()
	for i := range 10 {
		h.acquire(ctx, strconv.Itoa(i), limiter.Request{User: "u", Tokens: 150})
	}
	h.admitted(10)
	h.clock.Advance(200 * time.Millisecond)
	for i := range 10 {
		h.permit(strconv.Itoa(i)).Done(limiter.Outcome{Status: 429, Header: http.Header{
			"Retry-After-Ms":                 {"300"},
			"X-Ratelimit-Remaining-Requests": {"0"},
			"X-Ratelimit-Remaining-Tokens":   {"0"},
		}})
	}
	s := h.l.Status().Keys[0]
	if s.RequestsAvailable < -1 || s.TokensAvailable < -150 {
		t.Errorf("after ten 429s: %v requests, %v tokens; want at least -1 and -150", s.RequestsAvailable, s.TokensAvailable)
	}
	if s.Frozen != 300*time.Millisecond || s.RateLimitedLastMinute != 10 {
		t.Errorf("frozen %v, 429s %d; want 300ms, 10", s.Frozen, s.RateLimitedLastMinute)
	}
	// One cut for the round trip, by a tenth: nothing was observed yet.
	if !near(s.Ceiling, 0.9) || !near(s.RequestsPerMinute, 1080) {
		t.Errorf("ceiling %v (%v RPM), want one cut to 0.9 (1,080 RPM) for one round trip of 429s", s.Ceiling, s.RequestsPerMinute)
	}
	if s.Burst != 500*time.Millisecond {
		t.Errorf("burst %v after a 429, want it halved to 500ms", s.Burst)
	}
	h.clock.Advance(5 * time.Second)
	if s := h.l.Status().Keys[0]; !near(s.Ceiling, 0.9+0.025+0.005) {
		t.Errorf("ceiling %v 5 s later, want 0.93 (0.5%% of the limit a second + 0.02%% × seconds²)", s.Ceiling)
	}
	// A 429 after six seconds in which the provider accepted 10 a second
	// of the 20 the limit allows: the ceiling goes a tenth under that.
	h.acquire(ctx, "late", limiter.Request{User: "u", Tokens: 1})
	h.admitted(11)
	for i := range 60 {
		h.acquire(ctx, "ok"+strconv.Itoa(i), limiter.Request{User: "u", Tokens: 1})
		h.admitted(12 + i)
		h.clock.Advance(100 * time.Millisecond)
		h.permit("ok" + strconv.Itoa(i)).Done(limiter.Outcome{Status: 200})
	}
	h.permit("late").Done(limiter.Outcome{Status: 429, Header: http.Header{"Retry-After-Ms": {"10"}}})
	if s := h.l.Status().Keys[0]; math.Abs(s.Ceiling-0.45) > 0.05 {
		t.Errorf("ceiling %v after a 429 with ~10 a second accepted of 20, want ≈ 0.9 × 0.5", s.Ceiling)
	}
	h.clock.Advance(60 * time.Second)
	if s := h.l.Status().Keys[0]; s.Ceiling != 1 || s.RequestsPerMinute != 1200 {
		t.Errorf("ceiling %v (%v RPM) a minute later, want back at the limit", s.Ceiling, s.RequestsPerMinute)
	}
}

// TestRequestTooLarge: a request above the minute's token limit is refused
// at once; a 429 "Request too large" is no rate signal, gives its tokens
// back and teaches the limit.
func TestRequestTooLarge(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 600, 6000))
	if _, err := h.l.Acquire(context.Background(), limiter.Request{User: "u", Tokens: 6001}); !errors.Is(err, limiter.ErrTooLarge) {
		t.Fatalf("Acquire of 6,001 tokens under 6,000 TPM: %v, want ErrTooLarge", err)
	}
	h2 := newHarness(t, time.Second, limiter.KeyConfig{ID: "k", RPM: 600})
	h2.acquire(context.Background(), "big", limiter.Request{User: "u", Tokens: 50_000})
	h2.admitted(1)
	h2.permit("big").Done(limiter.Outcome{Status: 429, Body: "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 50000. The input or output tokens must be reduced in order to run successfully."})
	s := h2.l.Status().Keys[0]
	if s.Frozen != 0 || s.RateLimitedLastMinute != 0 || s.Ceiling != 1 || s.Advertised.TPM != 30000 {
		t.Fatalf("after Request too large: %+v; want no freeze, no 429 counted, the TPM learned", s)
	}
	if _, err := h2.l.Acquire(context.Background(), limiter.Request{User: "u", Tokens: 50_000}); !errors.Is(err, limiter.ErrTooLarge) {
		t.Fatalf("the same request again: %v, want ErrTooLarge", err)
	}
}

// TestModelsHaveTheirOwnPools: OpenAI's limits are per model; a saturated
// model does not hold back another on the same key.
func TestModelsHaveTheirOwnPools(t *testing.T) {
	c := newClock()
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "k", RPM: 60, TPM: 1e9, Models: map[string]limiter.Limits{"big": {RPM: 6, TPM: 1e9}}}}, Burst: time.Second, Models: []string{"small", "big"}, Clock: c})
	h := &harness{t: t, clock: c, l: l, perms: map[string]*limiter.Permit{}}
	c.Advance(time.Second)
	ctx := context.Background()
	h.acquire(ctx, "small-1", limiter.Request{User: "u", Model: "small", Tokens: 1})
	h.acquire(ctx, "small-2", limiter.Request{User: "u", Model: "small", Tokens: 1})
	h.acquire(ctx, "big-1", limiter.Request{User: "u", Model: "big", Tokens: 1})
	got := h.admitted(2)
	if len(got) != 2 || got[0] != "small-1" || got[1] != "big-1" {
		t.Fatalf("admitted %v; want small-1 and big-1 (small-2 waits for small's refill, not big's)", got)
	}
	st := l.Status()
	if len(st.Keys) != 2 || st.Keys[0].Model != "big" || st.Keys[0].RequestsPerMinute != 6 || st.Keys[1].RequestsPerMinute != 60 {
		t.Fatalf("status %+v; want a pool per model with its own limits", st.Keys)
	}
}

// TestOtherClientErrorsAreRefunded: a 4xx other than 429 did no work.
func TestOtherClientErrorsAreRefunded(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 600, 6000)) // 100-token bucket
	h.acquire(context.Background(), "a", limiter.Request{User: "u", Tokens: 80})
	h.admitted(1)
	h.permit("a").Done(limiter.Outcome{Status: 400})
	if got := h.l.Status().Keys[0].TokensAvailable; got != 100 {
		t.Errorf("tokens = %v after a 400, want the 80 given back (100)", got)
	}
}

// TestUsersShareByTokensNotRequests: inside a lane, a user of long mails
// gets the same token share as a user of short ones (weighted round-robin),
// not the same number of requests.
func TestUsersShareByTokensNotRequests(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 1e6, 60_000)) // 1,000 tokens a second, bucket of 1,000
	ctx := context.Background()
	h.acquire(ctx, "first", limiter.Request{User: "x", Tokens: 1000}) // empties the bucket
	for i := range 20 {
		h.acquire(ctx, "long"+strconv.Itoa(i), limiter.Request{User: "long", Tokens: 3000})
	}
	for i := range 80 {
		h.acquire(ctx, "short"+strconv.Itoa(i), limiter.Request{User: "short", Tokens: 500})
	}
	for range 20 {
		h.clock.Advance(time.Second) // 20,000 tokens in all
	}
	got := h.admitted(1)
	var long, short int
	for _, n := range got[1:] {
		if n[0] == 'l' {
			long += 3000
		} else {
			short += 500
		}
	}
	if long == 0 || short == 0 || math.Abs(float64(long-short)) > 3000 {
		t.Fatalf("tokens served: long %d, short %d; want about equal shares (%v)", long, short, got)
	}
}

// TestAStormIsWaitedOutNotTakenForTheRate: 429 after 429 with nothing going
// through cuts the ceiling once; the freeze does the rest, and sending
// resumes near the learned rate when the storm ends.
func TestAStormIsWaitedOutNotTakenForTheRate(t *testing.T) {
	h := newHarness(t, time.Second, key("k", 1200, 1e9))
	ctx := context.Background()
	for i := range 30 {
		name := strconv.Itoa(i)
		h.acquire(ctx, name, limiter.Request{User: "u", Tokens: 1, Retry: i > 0})
		h.admitted(i + 1)
		h.clock.Advance(100 * time.Millisecond)
		h.permit(name).Done(limiter.Outcome{Status: 429, Header: http.Header{"Retry-After-Ms": {"900"}}})
		h.clock.Advance(time.Second)
	}
	if s := h.l.Status().Keys[0]; s.Ceiling < 0.9 {
		t.Fatalf("ceiling %v after a 30 s storm, want one cut (≥ 0.9), not a collapse", s.Ceiling)
	}
}
