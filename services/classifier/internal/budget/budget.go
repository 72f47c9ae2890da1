// Package budget stops the language model from spending past a daily cap
// or past the credit there is. A request reserves its worst-case cost
// before it is sent and settles the actual cost after; while a request
// would cross a limit it waits (the message is held, never lost) until the
// next UTC day or until the limit is raised. The spend is kept in the
// database, so replicas share it and a restart does not forget it.
package budget

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Store keeps the spend per UTC day.
type Store interface {
	AddSpend(ctx context.Context, day string, micros int64) error
	// Spend returns the spend of day and the total of all days.
	Spend(ctx context.Context, day string) (today, total int64, err error)
}

// Config configures a Guard. Amounts are millionths of a US dollar; 0 means
// no limit.
type Config struct {
	DailyMicros  int64
	CreditMicros int64
	// Refresh is how often the shared spend is read back (default 5 s).
	Refresh time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Guard is the spending guard.
type Guard struct {
	cfg   Config
	store Store

	mu        sync.Mutex
	day       string
	today     int64 // spent today, as last read plus what this process settled since
	total     int64
	reserved  int64
	readAt    time.Time
	exhausted bool
	changed   chan struct{} // closed when a reservation settles
}

// New returns a guard over store.
func New(store Store, cfg Config) *Guard {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Guard{cfg: cfg, store: store, changed: make(chan struct{})}
}

// Day is the UTC day of t, as the spend is kept.
func Day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// Reserve waits until a request costing up to estimate may be sent, and
// returns the function that settles it with the actual cost (call it once,
// with 0 if the request was not sent).
func (g *Guard) Reserve(ctx context.Context, estimate int64) (func(actual int64), error) {
	for {
		if err := g.refresh(ctx); err != nil {
			// The database is away: keep going on what is known rather than
			// stop classifying; the next read catches up.
			g.cfg.Logger.WarnContext(ctx, "budget: reading the spend failed", "error", err.Error())
		}
		g.mu.Lock()
		ok := g.fits(estimate)
		if ok {
			g.reserved += estimate
		}
		if g.exhausted == ok {
			g.exhausted = !ok
			if !ok {
				g.cfg.Logger.WarnContext(ctx, "budget reached: the language model pauses; messages wait", "spent_today_micros", g.today, "daily_limit_micros", g.cfg.DailyMicros, "spent_total_micros", g.total, "credit_micros", g.cfg.CreditMicros)
			} else {
				g.cfg.Logger.InfoContext(ctx, "budget available again: the language model resumes")
			}
		}
		changed := g.changed
		g.mu.Unlock()
		if ok {
			var once sync.Once
			return func(actual int64) { once.Do(func() { g.settle(estimate, actual) }) }, nil
		}
		wait := min(g.cfg.Refresh*6, untilMidnight(g.cfg.Now()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (g *Guard) fits(estimate int64) bool {
	if g.cfg.DailyMicros > 0 && g.today+g.reserved+estimate > g.cfg.DailyMicros {
		return false
	}
	if g.cfg.CreditMicros > 0 && g.total+g.reserved+estimate > g.cfg.CreditMicros {
		return false
	}
	return true
}

func (g *Guard) settle(estimate, actual int64) {
	now := g.cfg.Now()
	day := Day(now)
	if actual > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := g.store.AddSpend(ctx, day, actual); err != nil {
			g.cfg.Logger.Warn("budget: recording spend failed", "error", err.Error(), "micros", actual)
		}
		cancel()
	}
	g.mu.Lock()
	g.reserved -= estimate
	if g.day == day {
		g.today += actual
	}
	g.total += actual
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// refresh reads the shared spend when the last read is older than Refresh
// or the day has changed.
func (g *Guard) refresh(ctx context.Context) error {
	now := g.cfg.Now()
	day := Day(now)
	g.mu.Lock()
	fresh := g.day == day && now.Sub(g.readAt) < g.cfg.Refresh
	g.mu.Unlock()
	if fresh {
		return nil
	}
	today, total, err := g.store.Spend(ctx, day)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.day, g.today, g.total, g.readAt = day, today, total, now
	g.mu.Unlock()
	return nil
}

// Status is the guard's state.
type Status struct {
	DailyMicros, SpentTodayMicros int64
	// CreditRemainingMicros is -1 when no credit is configured.
	CreditRemainingMicros int64
	Exhausted             bool
}

// Status reports the guard's state.
func (g *Guard) Status(ctx context.Context) Status {
	_ = g.refresh(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Status{DailyMicros: g.cfg.DailyMicros, SpentTodayMicros: g.today, CreditRemainingMicros: -1, Exhausted: g.exhausted}
	if g.cfg.CreditMicros > 0 {
		s.CreditRemainingMicros = max(0, g.cfg.CreditMicros-g.total)
	}
	return s
}

func untilMidnight(now time.Time) time.Duration {
	u := now.UTC()
	next := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	return next.Sub(u) + time.Second
}
