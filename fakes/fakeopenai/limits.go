package fakeopenai

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// LimitChange changes limits at a given time: At after the server's start
// (or its last Reset, on Config.Now's clock) the limits of Key — for Model
// when the key has limits of its own for it (Config.ModelLimits), otherwise
// the key's — become Limits. The enforcing buckets take the new rate and
// capacity at once (a bucket keeps its level, cut to the new capacity), as
// when an account moves to another usage tier; the x-ratelimit-limit-*
// headers advertise the new limits from then on.
type LimitChange struct {
	At     time.Duration
	Key    string
	Model  string
	Limits Limits
}

// LatencyStep sets the base latency (Config.Latency) to Latency from At
// after the server's start (or its last Reset) on Config.Now's clock.
type LatencyStep struct {
	At      time.Duration
	Latency time.Duration
}

// OtherClient is someone else on the same organization: another
// application sending a steady Share of the key's requests per minute
// (Share × RPM ÷ 60 a second, or Share × TPM ÷ Tokens ÷ 60 on a key without
// an RPM), each costing Tokens, from the same buckets as the requests the
// server receives. Its requests are simulated on Config.Now's clock, one at
// a time at their exact times, whenever the server looks at its buckets:
// one that finds the buckets short is refused (it does not retry), one that
// finds them full enough is admitted and takes its cost. Stats.Other counts
// them apart from the key's own.
type OtherClient struct {
	// Key is the API key (organization) it shares; default: the only key,
	// or DefaultKey.
	Key string
	// Model picks the key's limits for that model (Config.ModelLimits);
	// "" or a model without limits of its own: the key's.
	Model string
	// Share is the fraction of the limit it sends, in (0, 1]; 0: none.
	Share float64
	// Tokens is the admission cost of each of its requests; default
	// TPM ÷ RPM, so that it takes the same share of both limits.
	Tokens int
}

// limitState is one set of limits and its buckets: a key's, or a key's
// for one model. Guarded by Server.mu.
type limitState struct {
	limits           Limits
	requests, tokens *bucket // enforced
	// minuteRequests and minuteTokens hold a whole minute of the limits
	// and take every admission; they enforce nothing and only feed the
	// x-ratelimit-remaining-* and reset-* headers with
	// Config.RemainingPerMinute.
	minuteRequests, minuteTokens *bucket
	// stats is the key's own (all models) for a key's limits, the model's
	// for a model's.
	stats *KeyStats
}

func newLimitState(l Limits, window time.Duration, now time.Time, stats *KeyStats) *limitState {
	ls := &limitState{stats: stats}
	ls.reset(l, window, now)
	return ls
}

func (ls *limitState) reset(l Limits, window time.Duration, now time.Time) {
	ls.limits = l
	ls.requests = newBucket(l.RPM, window, now)
	ls.tokens = newBucket(l.TPM, window, now)
	ls.minuteRequests = newBucket(l.RPM, time.Minute, now)
	ls.minuteTokens = newBucket(l.TPM, time.Minute, now)
	ls.stats.RPM, ls.stats.TPM = l.RPM, l.TPM
}

func (ls *limitState) refill(now time.Time) {
	for _, b := range []*bucket{ls.requests, ls.tokens, ls.minuteRequests, ls.minuteTokens} {
		b.refill(now)
	}
}

// admit takes cost (1 request, tokens) from every bucket.
func (ls *limitState) admit(tokens int64) {
	for _, b := range []*bucket{ls.requests, ls.minuteRequests} {
		if !b.unlimited() {
			b.level--
		}
	}
	for _, b := range []*bucket{ls.tokens, ls.minuteTokens} {
		if !b.unlimited() {
			b.level -= float64(tokens)
		}
	}
}

// wait is how long until the buckets hold tokens and a request.
func (ls *limitState) wait(tokens int64) (requests, toks time.Duration) {
	return ls.requests.wait(1), ls.tokens.wait(float64(tokens))
}

// setLimits moves to l at now: each bucket keeps its level, cut to its new
// capacity; a bucket that was unlimited starts full.
func (ls *limitState) setLimits(l Limits, window time.Duration, now time.Time) {
	ls.refill(now)
	ls.requests = ls.requests.withLimit(l.RPM, window, now)
	ls.tokens = ls.tokens.withLimit(l.TPM, window, now)
	ls.minuteRequests = ls.minuteRequests.withLimit(l.RPM, time.Minute, now)
	ls.minuteTokens = ls.minuteTokens.withLimit(l.TPM, time.Minute, now)
	ls.limits = l
	ls.stats.RPM, ls.stats.TPM = l.RPM, l.TPM
}

// withLimit is b with a new per-minute limit.
func (b *bucket) withLimit(limit int, window time.Duration, now time.Time) *bucket {
	nb := newBucket(limit, window, now)
	if !b.unlimited() && !nb.unlimited() {
		nb.level = math.Min(b.level, nb.capacity)
	}
	return nb
}

// otherState is the OtherClient's progress. Guarded by Server.mu.
type otherState struct {
	cfg   OtherClient
	ls    *limitState
	next  time.Time // of its next request
	stats OtherStats
}

// interval is the time between two of its requests under the current
// limits; 0: it sends nothing.
func (o *otherState) interval() time.Duration {
	l := o.ls.limits
	perMinute := 0.0
	switch {
	case l.RPM > 0:
		perMinute = o.cfg.Share * float64(l.RPM)
	case l.TPM > 0 && o.tokens() > 0:
		perMinute = o.cfg.Share * float64(l.TPM) / float64(o.tokens())
	}
	if perMinute <= 0 {
		return 0
	}
	return time.Duration(float64(time.Minute) / perMinute)
}

func (o *otherState) tokens() int64 {
	if o.cfg.Tokens > 0 {
		return int64(o.cfg.Tokens)
	}
	if l := o.ls.limits; l.RPM > 0 && l.TPM > 0 {
		return int64(l.TPM / l.RPM)
	}
	return 0
}

// send makes the other client's request at now.
func (o *otherState) send(start, now time.Time) {
	o.ls.refill(now)
	cost := o.tokens()
	o.stats.Requests++
	sec := secondOf(&o.stats.Series, start, now)
	if wr, wt := o.ls.wait(cost); wr > 0 || wt > 0 {
		o.stats.Refused++
		sec.RateLimited++
		return
	}
	o.ls.admit(cost)
	o.stats.Admitted++
	o.stats.AdmittedTokens += cost
	sec.Admitted++
	sec.AdmittedTokens += cost
}

// advanceLocked brings the limits up to now: it applies the limit changes
// and the other client's requests due by then, in the order of their
// times, then refills every bucket to now.
func (s *Server) advanceLocked(now time.Time) {
	for {
		at, which := now, 0
		if s.nextChange < len(s.changes) {
			if t := s.start.Add(s.changes[s.nextChange].At); !t.After(at) {
				at, which = t, 1
			}
		}
		// The other client's request at the very time of a change comes
		// after it; one due at now is made.
		if o := s.other; o != nil && o.interval() > 0 && (o.next.Before(at) || which == 0 && o.next.Equal(at)) {
			at, which = o.next, 2
		}
		switch which {
		case 1:
			c := s.changes[s.nextChange]
			s.nextChange++
			if ks := s.keys[c.Key]; ks != nil {
				ks.limitsFor(c.Model).setLimits(c.Limits, s.cfg.Window, at)
			}
			continue
		case 2:
			s.other.send(s.start, at)
			s.other.next = at.Add(s.other.interval())
			continue
		}
		break
	}
	for _, ks := range s.keys {
		ks.base.refill(now)
		for _, ls := range ks.models {
			ls.refill(now)
		}
	}
}

// latencyAt is the base latency at now (Config.Latency, then LatencySteps).
func (s *Server) latencyAt(now time.Time) time.Duration {
	d := s.cfg.Latency
	for _, st := range s.cfg.LatencySteps {
		if !s.start.Add(st.At).After(now) {
			d = st.Latency
		}
	}
	return d
}

func sortedChanges(cs []LimitChange) []LimitChange {
	cs = slices.Clone(cs)
	slices.SortStableFunc(cs, func(a, b LimitChange) int { return cmp.Compare(a.At, b.At) })
	return cs
}

func sortedSteps(ss []LatencyStep) []LatencyStep {
	ss = slices.Clone(ss)
	slices.SortStableFunc(ss, func(a, b LatencyStep) int { return cmp.Compare(a.At, b.At) })
	return ss
}
