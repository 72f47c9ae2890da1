package breaker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"mailroom.dev/platform/breaker"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestBreakerHoldsDuringAnOutageAndCountsLoneFailures(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	var changes []bool
	b := breaker.New(breaker.Config{Threshold: 3, Cooldown: time.Second, MaxCooldown: 4 * time.Second, Now: clk.Now,
		OnChange: func(open bool) { changes = append(changes, open) }})
	ctx := context.Background()
	try := func() breaker.Ticket {
		t.Helper()
		tk, err := b.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	// A failure between successes is the work's own.
	if try().Failure() {
		t.Error("a lone failure was held")
	}
	try().Success()
	if try().Failure() || try().Failure() {
		t.Error("failures below the threshold were held")
	}
	if !try().Failure() {
		t.Error("the failure that reached the threshold was not held")
	}
	if !b.Open() {
		t.Fatal("the breaker is not open after 3 failures in a row")
	}
	// Open: nobody passes before the cooldown.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := b.Wait(short); err == nil {
		t.Error("Wait passed an open breaker before the cooldown")
	}
	cancel()
	clk.add(time.Second)
	probe := try()
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := b.Wait(short); err == nil {
		t.Error("a second caller passed while a probe runs")
	}
	cancel()
	if !probe.Failure() {
		t.Error("a failed probe was not held")
	}
	// The next probe waits twice as long.
	clk.add(time.Second)
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := b.Wait(short); err == nil {
		t.Error("a probe passed before the doubled cooldown")
	}
	cancel()
	clk.add(time.Second)
	try().Success()
	if b.Open() {
		t.Error("a successful probe did not close the breaker")
	}
	if try().Failure() {
		t.Error("after closing, a lone failure was held")
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Errorf("changes = %v, want open then closed", changes)
	}
}

// A probe released without a verdict lets the next caller probe.
func TestReleasedProbeLetsAnotherProbe(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	b := breaker.New(breaker.Config{Threshold: 1, Now: clk.Now})
	tk, _ := b.Wait(context.Background())
	tk.Failure()
	clk.add(time.Second)
	probe, _ := b.Wait(context.Background())
	probe.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Wait(ctx); err != nil {
		t.Errorf("after a released probe: %v, want another probe", err)
	}
}

func TestNilBreakerNeverOpens(t *testing.T) {
	var b *breaker.Breaker
	tk, err := b.Wait(context.Background())
	if err != nil || tk.Failure() || b.Open() {
		t.Error("a nil breaker held something")
	}
}
