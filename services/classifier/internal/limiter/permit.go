package limiter

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Permit is an admitted request. Exactly one of Done or Cancel must be
// called.
type Permit struct {
	// Key is the ID of the key to send the request with.
	Key string

	l                *Limiter
	p                *pool
	tokens           float64
	sentReq, sentTok float64 // bucket levels right after admission
	corrReq, corrTok float64 // the pool's corrections at admission
	admitted         time.Time
	done             bool
}

// Outcome is what became of a sent request.
type Outcome struct {
	// Status is the HTTP status; 0 when no response came (a timeout, a reset).
	Status int
	// Header holds the response headers (x-ratelimit-*, retry-after).
	Header http.Header
	// Body is the error message of a 429, for its "Please try again in 1.2s".
	Body string
}

// Cancel gives the permit's capacity back: the request was never sent.
func (p *Permit) Cancel() {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	now := p.l.clock.Now()
	p.p.inFlight--
	p.p.totals.Sent--
	p.p.totals.SentTokens -= p.tokens
	p.p.refill(now)
	p.p.req.give(1)
	p.p.tok.give(p.tokens)
	p.l.dispatch(now)
}

// Done reports the request's outcome.
//
// Every answer teaches the pool the limits the provider advertises, and
// lowers its buckets when the provider has less left than the pool thought
// at admission (less what earlier answers took off already). A 429 sets the
// buckets to what the provider says remains (never below minus this
// request's cost), freezes the pool until the reset the provider named and
// cuts its rate ceiling. A 429 "Request too large" and other 4xx answers
// did no work: their tokens are given back.
func (p *Permit) Done(o Outcome) {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	now := p.l.clock.Now()
	pl := p.p
	pl.inFlight--
	pl.refill(now)
	if o.Status != 0 {
		pl.totals.Answers++
		rtt := now.Sub(p.admitted)
		if pl.rtt == 0 {
			pl.rtt = rtt
		} else {
			pl.rtt = (7*pl.rtt + rtt) / 8
		}
		before := pl.limits()
		learned := pl.learn(o)
		if !pl.answered || learned {
			pl.answered = true
			pl.resize(now)
			if after := pl.limits(); after.RPM < before.RPM || after.TPM < before.TPM || before.RPM <= 0 {
				pl.loweredAt = now
				if before.RPM > 0 {
					// What went out at the old rate has emptied the
					// provider's window: pause for one burst, so that it
					// refills ahead of the new rate instead of refusing
					// every request that comes a little early.
					pl.req.level = min(pl.req.level, 0) - pl.req.cap
					pl.tok.level = min(pl.tok.level, 0) - pl.tok.cap
				}
			}
		}
		if o.Status != http.StatusTooManyRequests {
			pl.oks.add(now, 1)
			if pl.firstOK.IsZero() {
				pl.firstOK = now
			}
			pl.lastOK = now
		}
	}
	share := p.l.share
	switch {
	case o.Status == http.StatusTooManyRequests && IsTooLarge(o.Body):
		pl.tok.give(p.tokens)
	case o.Status == http.StatusTooManyRequests:
		pl.limited.add(now, 1)
		pl.totals.RateLimited++
		if until := now.Add(RetryAfter(o.Header, o.Body)); until.After(pl.frozen) {
			pl.frozen = until
		}
		pl.cut(p, now)
		reqLeft, tokLeft := 0.0, 0.0
		if r, ok := headerFloat(o.Header, "x-ratelimit-remaining-requests"); ok {
			reqLeft = r * share
		}
		if r, ok := headerFloat(o.Header, "x-ratelimit-remaining-tokens"); ok {
			tokLeft = r * share
		}
		pl.req.level = max(min(pl.req.level, reqLeft), min(pl.req.level, -1))
		pl.tok.level = max(min(pl.tok.level, tokLeft), min(pl.tok.level, -p.tokens))
	case o.Status >= 400 && o.Status < 500:
		pl.tok.give(p.tokens)
	default:
		// The provider's remaining counts are org-wide; this limiter owns
		// its share of them. When the provider has less than the pool had
		// right after admitting this request (corrected by what answers
		// since then took off), something else spends from the same key:
		// take the difference off, once. More than expected is not added:
		// other replicas may be about to spend it, and the provider's
		// window may be longer than the burst.
		if r, ok := headerFloat(o.Header, "x-ratelimit-remaining-requests"); ok {
			if d := p.sentReq - (pl.corrReq - p.corrReq) - r*share; d > 0 {
				pl.req.level = max(pl.req.level-d, min(pl.req.level, -1))
				pl.corrReq += d
			}
		}
		if r, ok := headerFloat(o.Header, "x-ratelimit-remaining-tokens"); ok {
			if d := p.sentTok - (pl.corrTok - p.corrTok) - r*share; d > 0 {
				pl.tok.level = max(pl.tok.level-d, min(pl.tok.level, -p.tokens))
				pl.corrTok += d
			}
		}
	}
	p.l.dispatch(now)
}

// learn takes the limits an answer advertises (x-ratelimit-limit-*, or the
// limit a "Request too large" names) and reports whether they changed.
func (pl *pool) learn(o Outcome) bool {
	adv := pl.advertised
	if v, ok := headerFloat(o.Header, "x-ratelimit-limit-requests"); ok && v > 0 {
		adv.RPM = v
	}
	if v, ok := headerFloat(o.Header, "x-ratelimit-limit-tokens"); ok && v > 0 {
		adv.TPM = v
	}
	if o.Status == http.StatusTooManyRequests && IsTooLarge(o.Body) {
		if m := tooLargeLimit.FindStringSubmatch(o.Body); m != nil {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil && v > 0 {
				adv.TPM = v
			}
		}
	}
	if adv == pl.advertised {
		return false
	}
	pl.advertised = adv
	return true
}

var tooLargeLimit = regexp.MustCompile(`(?i)tokens per min[^:]*:\s*Limit\s+([0-9]+)`)

// IsTooLarge reports whether a 429's message says the request alone is
// larger than the limit ("Request too large for gpt-4o … on tokens per
// min"): waiting cannot help, and it is no sign of the rate.
func IsTooLarge(body string) bool {
	return strings.Contains(strings.ToLower(body), "request too large")
}

var tryAgain = regexp.MustCompile(`(?i)try again in ([0-9.]+(?:ms|s|m|h)(?:[0-9.]+(?:ms|s))?)`)

// RetryAfter is how long a 429 asks to wait: retry-after-ms, Retry-After
// (seconds), the "Please try again in 1.2s" of the body, or the later of
// the x-ratelimit-reset-* headers, in that order; 1 s when none says.
func RetryAfter(h http.Header, body string) time.Duration {
	if v, ok := headerFloat(h, "retry-after-ms"); ok && v >= 0 {
		return time.Duration(v * float64(time.Millisecond))
	}
	if v, ok := headerFloat(h, "retry-after"); ok && v >= 0 {
		return time.Duration(v * float64(time.Second))
	}
	if m := tryAgain.FindStringSubmatch(body); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			return d
		}
	}
	var d time.Duration
	for _, name := range []string{"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} {
		if v := h.Get(name); v != "" {
			if r, err := ParseReset(v); err == nil {
				d = max(d, r)
			}
		}
	}
	if d > 0 {
		return d
	}
	return time.Second
}

// ParseReset parses an x-ratelimit-reset-* value: a Go duration string
// such as "6m0s", "1.2s" or "20ms", or a bare number of seconds.
func ParseReset(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

func headerFloat(h http.Header, name string) (float64, bool) {
	if h == nil {
		return 0, false
	}
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}
