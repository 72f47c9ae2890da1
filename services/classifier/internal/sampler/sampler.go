// Package sampler keeps the last hour of the limiter's state: every
// Interval (10 s) a snapshot of each key's limits, buckets and what it sent,
// answered and was refused since the snapshot before, the lanes' queues and
// the work stream's backlog, in a ring of Size (360) snapshots. GetLimits
// serves it as the history the console charts.
package sampler

import (
	"context"
	"sort"
	"sync"
	"time"

	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
)

// Defaults: a snapshot every 10 s, an hour of them.
const (
	DefaultInterval = 10 * time.Second
	DefaultSize     = 360
)

// Snapshot is the limiter's state at one time.
type Snapshot struct {
	Time time.Time
	Keys []KeySample
	// Lanes are the lanes' queues, interactive, live, backfill.
	Lanes   []LaneSample
	Backlog int64
}

// KeySample is one key's pool for one model in a snapshot. The rates and
// counts are of the interval since the snapshot before (since the sampler
// was made, in the first: a first tick that comes late, on a loaded
// machine, still counts what was sent before it).
type KeySample struct {
	Key, Model string
	// RequestsPerMinute and TokensPerMinute are the rates admitted then.
	RequestsPerMinute, TokensPerMinute float64
	// RequestsUsedPerMinute and TokensUsedPerMinute are what was sent in
	// the interval, as per-minute rates.
	RequestsUsedPerMinute, TokensUsedPerMinute float64
	RequestsAvailable, TokensAvailable         float64
	InFlight                                   int64
	// Requests and RateLimited count the answers and the 429s of the interval.
	Requests, RateLimited int64
	Frozen                time.Duration
}

// LaneSample is one lane's queue in a snapshot.
type LaneSample struct {
	Lane       classify.Lane
	Waiting    int64
	OldestWait time.Duration
}

// Status is what the sampler reads the limiter through (*limiter.Limiter).
type Status interface {
	Status() limiter.Status
}

// Config configures a Sampler.
type Config struct {
	// Limiter is read at each snapshot; nil when only rules run (the
	// snapshots then carry the backlog alone).
	Limiter Status
	// Backlog reads the work stream's backlog; nil: 0.
	Backlog func(ctx context.Context) (int64, error)
	// Interval is the time between snapshots (DefaultInterval); Size how
	// many are kept (DefaultSize).
	Interval time.Duration
	Size     int
	// Now is the clock (time.Now); tests move it by hand and call Sample.
	Now func() time.Time
}

// Sampler keeps the snapshots. Its methods are safe for concurrent use.
type Sampler struct {
	cfg Config

	mu   sync.Mutex
	ring []Snapshot // oldest first, at most cfg.Size
	// last are the totals of the snapshot before, per key and model, and
	// when it was taken.
	last   map[poolID]limiter.Totals
	lastAt time.Time
}

type poolID struct{ key, model string }

// New returns a sampler over cfg.
func New(cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The limiter's totals start at zero with the process, before the
	// sampler is made: the first snapshot counts from zero since then.
	return &Sampler{cfg: cfg, last: map[poolID]limiter.Totals{}, lastAt: cfg.Now()}
}

// Run takes a snapshot now and then every Interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) error {
	s.Sample(ctx)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Sample(ctx)
		}
	}
}

// Sample takes a snapshot now, dropping the oldest beyond Size, and
// returns it.
func (s *Sampler) Sample(ctx context.Context) Snapshot {
	var backlog int64
	if s.cfg.Backlog != nil {
		// A backlog that cannot be read (NATS away for a moment) shows as
		// 0 rather than holding the snapshot back.
		if n, err := s.cfg.Backlog(ctx); err == nil {
			backlog = n
		}
	}
	var st limiter.Status
	if s.cfg.Limiter != nil {
		st = s.cfg.Limiter.Status()
	}
	now := s.cfg.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Time: now, Backlog: backlog}
	for _, lane := range []classify.Lane{classify.LaneInteractive, classify.LaneLive, classify.LaneBackfill} {
		ll := llm.LimiterLane(lane)
		snap.Lanes = append(snap.Lanes, LaneSample{Lane: lane, Waiting: int64(st.Waiting[ll]), OldestWait: st.OldestWait[ll]})
	}
	minutes := now.Sub(s.lastAt).Minutes()
	seen := make(map[poolID]limiter.Totals, len(st.Keys))
	for _, k := range st.Keys {
		id := poolID{k.ID, k.Model}
		seen[id] = k.Totals
		ks := KeySample{
			Key: k.ID, Model: k.Model,
			RequestsPerMinute: k.RequestsPerMinute, TokensPerMinute: k.TokensPerMinute,
			RequestsAvailable: k.RequestsAvailable, TokensAvailable: k.TokensAvailable,
			InFlight: int64(k.InFlight), Frozen: k.Frozen,
		}
		// A pool new since the snapshot before (or in the first) counts
		// from zero.
		prev := s.last[id]
		if minutes > 0 {
			// A request admitted before the snapshot before and cancelled
			// after it takes one off; the interval shows none rather than
			// fewer than none.
			ks.RequestsUsedPerMinute = max(0, float64(k.Totals.Sent-prev.Sent)) / minutes
			ks.TokensUsedPerMinute = max(0, k.Totals.SentTokens-prev.SentTokens) / minutes
			ks.Requests = k.Totals.Answers - prev.Answers
			ks.RateLimited = k.Totals.RateLimited - prev.RateLimited
		}
		snap.Keys = append(snap.Keys, ks)
	}
	sort.Slice(snap.Keys, func(i, j int) bool {
		a, b := snap.Keys[i], snap.Keys[j]
		return a.Key < b.Key || a.Key == b.Key && a.Model < b.Model
	})
	s.last, s.lastAt = seen, now
	if len(s.ring) == s.cfg.Size {
		copy(s.ring, s.ring[1:])
		s.ring = s.ring[:len(s.ring)-1]
	}
	s.ring = append(s.ring, snap)
	return snap
}

// Since returns the snapshots taken after t, oldest first (all of them for
// a zero t). The slice is the caller's; the snapshots' Keys are shared and
// must not be changed.
func (s *Sampler) Since(t time.Time) []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.ring), func(i int) bool { return s.ring[i].Time.After(t) })
	return append([]Snapshot(nil), s.ring[i:]...)
}
