// Package breaker is a circuit breaker for a dependency that all of a
// service's work shares (the model API, the database, NATS), so that an
// outage holds the work instead of using up its attempts.
//
// Work asks Wait before each try and reports how the try ended on the
// ticket it got. Threshold failures in a row, with no success between,
// open the breaker: Wait then blocks everyone, and every failure reported
// while it is open is the dependency's, not the work's (Failure says so:
// the caller holds the work and tries again after Wait, without counting
// an attempt). After a cooldown one caller at a time goes through as a
// probe: a success closes the breaker, a failure opens it again for twice
// the cooldown (up to MaxCooldown). A failure with the breaker closed and
// below the threshold counts against the work as before, so a piece of
// work that fails while the rest succeeds (a poison mail) still runs out
// of attempts.
package breaker

import (
	"context"
	"sync"
	"time"
)

// Config configures a Breaker; zero fields take the defaults named.
type Config struct {
	// Threshold is how many failures in a row open the breaker (default 5).
	Threshold int
	// Cooldown is the wait before the first probe (default 1 s); it
	// doubles after each failed probe, up to MaxCooldown (default 30 s).
	Cooldown, MaxCooldown time.Duration
	// ProbeTimeout is how long a probe may run before another caller may
	// probe instead (default 2 minutes): a probe whose caller vanished
	// must not hold everyone.
	ProbeTimeout time.Duration
	// OnChange, when set, is called (outside the lock) when the breaker
	// opens (true) or closes (false).
	OnChange func(open bool)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Breaker is a circuit breaker. A nil *Breaker never opens.
type Breaker struct {
	cfg Config

	mu           sync.Mutex
	open         bool
	failures     int
	openedAt     time.Time
	cooldown     time.Duration
	probing      bool
	probeStarted time.Time
	changed      chan struct{}
	opened       int64
}

// New returns a closed breaker.
func New(cfg Config) *Breaker {
	if cfg.Threshold <= 0 {
		cfg.Threshold = 5
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = time.Second
	}
	if cfg.MaxCooldown <= 0 {
		cfg.MaxCooldown = 30 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{cfg: cfg, cooldown: cfg.Cooldown, changed: make(chan struct{})}
}

// Ticket is one try's permission; report its end with exactly one of
// Success, Failure or Release.
type Ticket struct {
	b     *Breaker
	probe bool
}

// Wait returns at once while the breaker is closed; while it is open it
// blocks until the caller may probe, the breaker closes, or ctx ends.
func (b *Breaker) Wait(ctx context.Context) (Ticket, error) {
	if b == nil {
		return Ticket{}, nil
	}
	for {
		b.mu.Lock()
		if !b.open {
			b.mu.Unlock()
			return Ticket{b: b}, nil
		}
		now := b.cfg.Now()
		if (!b.probing || now.Sub(b.probeStarted) >= b.cfg.ProbeTimeout) && !now.Before(b.openedAt.Add(b.cooldown)) {
			b.probing, b.probeStarted = true, now
			b.mu.Unlock()
			return Ticket{b: b, probe: true}, nil
		}
		wait := b.openedAt.Add(b.cooldown).Sub(now)
		if b.probing {
			wait = b.probeStarted.Add(b.cfg.ProbeTimeout).Sub(now)
		}
		changed := b.changed
		b.mu.Unlock()
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return Ticket{}, ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// Success reports that the try reached the dependency and it answered:
// the breaker closes.
func (t Ticket) Success() {
	b := t.b
	if b == nil {
		return
	}
	b.mu.Lock()
	b.failures = 0
	wasOpen := b.open
	if t.probe {
		b.probing = false
	}
	if b.open {
		b.open, b.probing, b.cooldown = false, false, b.cfg.Cooldown
		b.broadcastLocked()
	}
	b.mu.Unlock()
	if wasOpen && b.cfg.OnChange != nil {
		b.cfg.OnChange(false)
	}
}

// Failure reports that the try failed because of the dependency (an
// error answer, a timeout, no connection). It returns true when the
// breaker is open, or this failure opened it: the failure is the
// dependency's, and the caller holds the work and waits again instead of
// counting an attempt.
func (t Ticket) Failure() (held bool) {
	b := t.b
	if b == nil {
		return false
	}
	b.mu.Lock()
	now := b.cfg.Now()
	opened := false
	switch {
	case t.probe:
		b.probing = false
		b.openedAt = now
		b.cooldown = min(2*b.cooldown, b.cfg.MaxCooldown)
		held = true
	case b.open:
		held = true
	default:
		b.failures++
		if b.failures >= b.cfg.Threshold {
			b.open, b.openedAt, b.cooldown = true, now, b.cfg.Cooldown
			b.opened++
			opened, held = true, true
		}
	}
	if held {
		b.broadcastLocked()
	}
	b.mu.Unlock()
	if opened && b.cfg.OnChange != nil {
		b.cfg.OnChange(true)
	}
	return held
}

// Release reports that the try ended without saying anything about the
// dependency (it was cancelled, rate-limited, or refused for itself).
func (t Ticket) Release() {
	b := t.b
	if b == nil || !t.probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.broadcastLocked()
	b.mu.Unlock()
}

// Open reports whether the breaker is open.
func (b *Breaker) Open() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// Opened is how many times the breaker has opened.
func (b *Breaker) Opened() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opened
}

func (b *Breaker) broadcastLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}
