package limiter

import "time"

// Limit sources, as KeyStatus.Source names them.
const (
	// SourceConfigured: the configured limit is in force (it is the lower,
	// or nothing was advertised yet).
	SourceConfigured = "configured"
	// SourceAdvertised: the limit the provider advertises is in force.
	SourceAdvertised = "advertised"
	// SourceLearning: nothing is configured and no answer came yet; one
	// request at a time is sent to learn the limits.
	SourceLearning = "learning"
	// SourceFallback: nothing is configured and the provider advertises
	// nothing; the Fallback limits are in force.
	SourceFallback = "fallback"
)

// KeyStatus is the state of one key's pool for one model.
type KeyStatus struct {
	ID    string
	Model string
	// RequestsPerMinute and TokensPerMinute are the rates this limiter
	// admits at now: the limits in force × the share × the ceiling.
	RequestsPerMinute, TokensPerMinute float64
	// Configured and Advertised are the configured limits and those the
	// provider's headers advertise (zero: none); Source says which is in
	// force.
	Configured, Advertised Limits
	Source                 string
	// Ceiling is the fraction of the limits in force the pool uses now
	// (below 1 for a while after a 429).
	Ceiling float64
	// Burst is how many seconds' worth the buckets hold.
	Burst time.Duration
	// RequestsAvailable and TokensAvailable are the buckets' levels.
	RequestsAvailable, TokensAvailable float64
	InFlight                           int
	RateLimitedLastMinute              int64
	RetriesLastMinute                  int64
	// Frozen is how long the pool stays frozen after a 429.
	Frozen time.Duration
	// Totals count what the pool did since it was made.
	Totals Totals
}

// Totals count a pool's work since it was made; the difference of two
// readings is what happened between them.
type Totals struct {
	// Sent counts the requests admitted and not cancelled (sent);
	// SentTokens their admission tokens.
	Sent       int64
	SentTokens float64
	// Answers counts the answers (any HTTP status), RateLimited the 429s
	// among them (not counting "request too large").
	Answers, RateLimited int64
}

// Status is the limiter's state.
type Status struct {
	Keys []KeyStatus
	// Waiting counts the requests waiting, indexed by lane.
	Waiting [numLanes]int
	// OldestWait is how long the longest-waiting request of each lane has
	// waited (0: none waits), indexed by lane.
	OldestWait [numLanes]time.Duration
	Share      float64
}

// Status reports the limiter's state: one entry per key and model used so
// far (or named in Config.Models).
func (l *Limiter) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	s := Status{Share: l.share}
	for _, k := range l.keys {
		for _, p := range k.sortedPools() {
			p.refill(now)
			s.Keys = append(s.Keys, p.status(now))
		}
	}
	for _, q := range l.queues {
		for i := range q {
			s.Waiting[i] += q[i].count
			if t := q[i].oldest(); !t.IsZero() {
				s.OldestWait[i] = max(s.OldestWait[i], now.Sub(t))
			}
		}
	}
	return s
}

func (p *pool) status(now time.Time) KeyStatus {
	ks := KeyStatus{
		ID:                    p.key,
		Model:                 p.model,
		RequestsPerMinute:     p.req.rate * 60,
		TokensPerMinute:       p.tok.rate * 60,
		Configured:            p.configured,
		Advertised:            p.advertised,
		Source:                p.source(),
		Ceiling:               p.ceiling,
		Burst:                 p.burst,
		RequestsAvailable:     p.req.level,
		TokensAvailable:       p.tok.level,
		InFlight:              p.inFlight,
		RateLimitedLastMinute: p.limited.sum(now),
		RetriesLastMinute:     p.retries.sum(now),
		Totals:                p.totals,
	}
	if now.Before(p.frozen) {
		ks.Frozen = p.frozen.Sub(now)
	}
	return ks
}

// source says where the request limit in force (or, without one, the token
// limit) comes from.
func (p *pool) source() string {
	c, a := p.configured.RPM, p.advertised.RPM
	if c <= 0 && a <= 0 {
		c, a = p.configured.TPM, p.advertised.TPM
	}
	switch {
	case c <= 0 && a <= 0 && p.answered:
		return SourceFallback
	case c <= 0 && a <= 0:
		return SourceLearning
	case a > 0 && (c <= 0 || a < c):
		return SourceAdvertised
	}
	return SourceConfigured
}

// Lanes lists the lanes in priority order.
func Lanes() []Lane { return []Lane{Interactive, Live, Backfill} }
