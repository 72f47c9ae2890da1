package consumer

import (
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

// A lease renewed every AckWait/3 holds for ever; one whose keep-alives
// stop (the process stopped or starved) lapses before AckWait runs out,
// stays lapsed, and sends no keep-alive after that.
func TestLeaseLapsesWithoutKeepAlives(t *testing.T) {
	clk := newFakeClock()
	const ackWait = 30 * time.Second
	l := newLease(clk.now(), ackWait, clk.now)
	sent := 0
	send := func() error { sent++; return nil }
	for range 10 {
		clk.advance(ackWait / 3)
		if !l.renew(send) {
			t.Fatalf("renewal %d refused: the lease lapsed with keep-alives every AckWait/3", sent+1)
		}
	}
	if sent != 10 || !l.held() {
		t.Fatalf("sent %d keep-alives, held %v; want 10, true", sent, l.held())
	}

	// Stopped for 40 s (SIGSTOP): the first tick after SIGCONT finds the
	// lease lapsed and sends nothing.
	clk.advance(40 * time.Second)
	if l.held() {
		t.Error("the lease holds 40 s after the last keep-alive, with AckWait 30 s")
	}
	if l.renew(send) {
		t.Error("renew after the lapse reports the lease held")
	}
	if sent != 10 {
		t.Errorf("a keep-alive was sent after the lapse (%d, want 10): it would stretch the new owner's delivery", sent)
	}
	// Lapsed for good, even if asked at once again.
	if l.held() {
		t.Error("the lease holds again after it lapsed")
	}
}

// The guard: a check that comes just before AckWait runs out already
// says no, so that the model call that would follow cannot race the
// server's redelivery.
func TestLeaseGuard(t *testing.T) {
	clk := newFakeClock()
	l := newLease(clk.now(), 30*time.Second, clk.now)
	clk.advance(26 * time.Second)
	if !l.held() {
		t.Fatal("the lease lapsed 26 s into an AckWait of 30 s (guard 3 s)")
	}
	clk.advance(2 * time.Second) // 28 s: inside the guard
	if l.held() {
		t.Error("the lease holds 28 s into an AckWait of 30 s, within its 3 s guard")
	}
}

// A keep-alive that could not be sent (NATS unreachable) renews nothing:
// the server did not hear it.
func TestLeaseFailedKeepAliveRenewsNothing(t *testing.T) {
	clk := newFakeClock()
	l := newLease(clk.now(), 30*time.Second, clk.now)
	fail := func() error { return errNotConnected }
	for range 2 {
		clk.advance(10 * time.Second)
		if !l.renew(fail) {
			t.Fatal("the lease lapsed within AckWait")
		}
	}
	clk.advance(10 * time.Second) // 30 s since the start, no keep-alive heard
	if l.renew(func() error { return nil }) {
		t.Error("the lease holds after AckWait in which no keep-alive was sent")
	}
}

// A lease that starts in the past (a delivery buffered before a pause)
// may be lapsed from the start.
func TestLeaseStartingBeforeAPause(t *testing.T) {
	clk := newFakeClock()
	start := clk.now()
	clk.advance(40 * time.Second)
	if newLease(start, 30*time.Second, clk.now).held() {
		t.Error("a lease that started 40 s ago without keep-alives holds, with AckWait 30 s")
	}
}

// pauses tells a pause from a running process, whether or not its beat
// has seen the pause yet, and only to iterators opened before it.
func TestPauses(t *testing.T) {
	clk := newFakeClock()
	p := newPauses(10*time.Second, clk.now)
	opened := p.opened()

	// Running, beating every second: no pause.
	for range 30 {
		clk.advance(time.Second)
		p.observe()
	}
	if start, paused := p.start(opened); paused || !start.Equal(clk.now()) {
		t.Fatalf("start = %v, %v; want now, no pause", start, paused)
	}

	// A gap under the threshold (a busy machine) is no pause.
	clk.advance(9 * time.Second)
	p.observe()
	if _, paused := p.start(opened); paused {
		t.Fatal("a gap of 9 s counts as a pause with a threshold of 10 s")
	}

	// Stopped 40 s; the first to run after SIGCONT is the iterator, before
	// the beat: the delivery's AckWait started at the last sign of life.
	before := clk.now()
	clk.advance(40 * time.Second)
	start, paused := p.start(opened)
	if !paused || !start.Equal(before) {
		t.Fatalf("after a 40 s stop: start = %v, %v; want %v, paused", start, paused, before)
	}
	// The beat came first: the same answer.
	p2 := newPauses(10*time.Second, clk.now)
	opened2 := p2.opened()
	before2 := clk.now()
	clk.advance(40 * time.Second)
	p2.observe()
	clk.advance(10 * time.Millisecond)
	if start, paused := p2.start(opened2); !paused || !start.Equal(before2) {
		t.Fatalf("after a 40 s stop seen by the beat: start = %v, %v; want %v, paused", start, paused, before2)
	}

	// An iterator opened after the pause owes it nothing.
	fresh := p.opened()
	clk.advance(time.Second)
	if start, paused := p.start(fresh); paused || !start.Equal(clk.now()) {
		t.Fatalf("a fresh iterator: start = %v, %v; want now, no pause", start, paused)
	}
}
