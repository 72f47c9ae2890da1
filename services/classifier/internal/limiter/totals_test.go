package limiter_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/limiter"
)

// TestStatusTotalsAndOldestWait: the totals count what was sent (a cancelled
// permit was not), the answers and the 429s; the oldest wait of a lane is
// that of its longest-waiting request, retries included.
func TestStatusTotalsAndOldestWait(t *testing.T) {
	// 600 RPM = 10 requests/s; a 200 ms burst holds 2.
	h := newHarness(t, 200*time.Millisecond, key("k1", 600, 1e9))
	ctx := context.Background()
	h.acquire(ctx, "a", limiter.Request{User: "u", Lane: limiter.Backfill, Tokens: 100})
	h.acquire(ctx, "b", limiter.Request{User: "u", Lane: limiter.Backfill, Tokens: 50})
	h.admitted(2)
	h.acquire(ctx, "c", limiter.Request{User: "u", Lane: limiter.Backfill, Tokens: 10})
	h.clock.Advance(30 * time.Millisecond)
	h.acquire(ctx, "d", limiter.Request{User: "u", Lane: limiter.Backfill, Tokens: 10, Retry: true})
	h.clock.Advance(20 * time.Millisecond)

	s := h.l.Status()
	if got, want := s.Keys[0].Totals, (limiter.Totals{Sent: 2, SentTokens: 150}); got != want {
		t.Errorf("totals after two admissions = %+v, want %+v", got, want)
	}
	if got, want := s.OldestWait[limiter.Backfill], 50*time.Millisecond; got != want {
		t.Errorf("oldest backfill wait = %v, want %v (c, behind the retry d)", got, want)
	}
	if got := s.OldestWait[limiter.Live]; got != 0 {
		t.Errorf("oldest live wait = %v, want 0: none waits", got)
	}

	h.permit("a").Done(limiter.Outcome{Status: http.StatusOK})
	h.permit("b").Done(limiter.Outcome{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}})
	h.clock.Advance(2 * time.Second)
	h.admitted(4)
	h.permit("c").Cancel()
	h.permit("d").Done(limiter.Outcome{Status: http.StatusTooManyRequests, Body: "Request too large for gpt-4o-mini on tokens per min (TPM): Limit 100, Requested 200."})

	s = h.l.Status()
	if got, want := s.Keys[0].Totals, (limiter.Totals{Sent: 3, SentTokens: 160, Answers: 3, RateLimited: 1}); got != want {
		t.Errorf("totals = %+v, want %+v (c cancelled: not sent; d too large: answered, no rate limit)", got, want)
	}
	if got := s.OldestWait[limiter.Backfill]; got != 0 {
		t.Errorf("oldest backfill wait = %v, want 0 once every request is admitted", got)
	}
}
