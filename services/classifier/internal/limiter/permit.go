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
	k                *key
	tokens           float64
	sentReq, sentTok float64 // bucket levels right after admission
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
	p.k.inFlight--
	p.k.req.refill(now)
	p.k.tok.refill(now)
	p.k.req.level = min(p.k.req.cap, p.k.req.level+1)
	p.k.tok.level = min(p.k.tok.cap, p.k.tok.level+p.tokens)
	p.l.dispatch(now)
}

// Done reports the request's outcome. A 429 freezes the key until the
// reset the provider named (Retry-After, retry-after-ms, "Please try again
// in …", or the reset headers) and empties its buckets; any response's
// x-ratelimit-remaining headers lower the buckets when the provider has less
// than the limiter thought.
func (p *Permit) Done(o Outcome) {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	now := p.l.clock.Now()
	k := p.k
	k.inFlight--
	k.req.refill(now)
	k.tok.refill(now)
	if o.Status == http.StatusTooManyRequests {
		k.limited.add(now, 1)
		if until := now.Add(RetryAfter(o.Header, o.Body)); until.After(k.frozen) {
			k.frozen = until
		}
		k.req.level = min(k.req.level, 0)
		k.tok.level = min(k.tok.level, 0)
	} else if o.Header != nil {
		// The provider's remaining counts are org-wide; this limiter owns
		// its share of them. When the provider has less than the limiter
		// had right after admitting this request, something else spends
		// from the same key: take the difference off now. More than
		// expected is not added: other replicas may be about to spend it.
		if r, ok := headerFloat(o.Header, "x-ratelimit-remaining-requests"); ok {
			if d := p.sentReq - r*p.l.share; d > 0 {
				k.req.level -= d
			}
		}
		if r, ok := headerFloat(o.Header, "x-ratelimit-remaining-tokens"); ok {
			if d := p.sentTok - r*p.l.share; d > 0 {
				k.tok.level -= d
			}
		}
	}
	p.l.dispatch(now)
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
