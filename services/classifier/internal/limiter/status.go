package limiter

import "time"

// KeyStatus is one key's state.
type KeyStatus struct {
	ID string
	// RequestsPerMinute and TokensPerMinute are this limiter's share of the key's limits.
	RequestsPerMinute, TokensPerMinute float64
	// RequestsAvailable and TokensAvailable are the buckets' levels.
	RequestsAvailable, TokensAvailable float64
	InFlight                           int
	RateLimitedLastMinute              int64
	RetriesLastMinute                  int64
	// Frozen is how long the key stays frozen after a 429.
	Frozen time.Duration
}

// Status is the limiter's state.
type Status struct {
	Keys []KeyStatus
	// Waiting counts the requests waiting, indexed by lane.
	Waiting [numLanes]int
	Share   float64
}

// Status reports the limiter's state.
func (l *Limiter) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	s := Status{Share: l.share}
	for _, k := range l.keys {
		k.req.refill(now)
		k.tok.refill(now)
		ks := KeyStatus{
			ID:                    k.cfg.ID,
			RequestsPerMinute:     k.cfg.RPM * l.share,
			TokensPerMinute:       k.cfg.TPM * l.share,
			RequestsAvailable:     k.req.level,
			TokensAvailable:       k.tok.level,
			InFlight:              k.inFlight,
			RateLimitedLastMinute: k.limited.sum(now),
			RetriesLastMinute:     k.retries.sum(now),
		}
		if now.Before(k.frozen) {
			ks.Frozen = k.frozen.Sub(now)
		}
		s.Keys = append(s.Keys, ks)
	}
	for i := range l.lanes {
		s.Waiting[i] = l.lanes[i].count
	}
	return s
}

// Lanes lists the lanes in priority order.
func Lanes() []Lane { return []Lane{Interactive, Live, Backfill} }
