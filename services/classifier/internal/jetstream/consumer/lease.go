package consumer

import (
	"sync"
	"time"
)

// A lease is this process's hold on one delivery. The server hands the
// event to another consumer (redelivers it) once AckWait passes without an
// ack or an InProgress from here; a process that was stopped (SIGSTOP) or
// starved of CPU past that has lost the event, even though nothing in it
// noticed. The lease tells by the monotonic clock: it is held while the
// last keep-alive that left this process is less than AckWait old (less a
// guard for the time a message takes to reach the server and for the work
// that follows the check). Once lapsed it stays lapsed: a keep-alive sent
// later would only stretch the new owner's delivery.
type lease struct {
	ackWait time.Duration
	guard   time.Duration
	now     func() time.Time

	mu      sync.Mutex
	renewed time.Time // the latest time the server's AckWait can have started
	lost    bool
}

// newLease returns a lease on a delivery whose AckWait started at start at
// the earliest this process can tell.
func newLease(start time.Time, ackWait time.Duration, now func() time.Time) *lease {
	return &lease{ackWait: ackWait, guard: ackWait / 10, now: now, renewed: start}
}

// held reports whether the delivery is still this process's.
func (l *lease) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked(l.now())
}

func (l *lease) heldLocked(now time.Time) bool {
	if !l.lost && now.Sub(l.renewed) >= l.ackWait-l.guard {
		l.lost = true
	}
	return !l.lost
}

// renew sends a keep-alive with send while the lease is held, and reports
// whether it is still held. A keep-alive that could not be sent (send
// failed: NATS is unreachable) renews nothing.
func (l *lease) renew(send func() error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.heldLocked(now) {
		return false
	}
	if send() == nil {
		l.renewed = now
	}
	return true
}

// pauses watches this process's own clock for pauses: spans of time in
// which it did not run at all (stopped, or starved of CPU) that are long
// enough for the deliveries it holds without keep-alives (those buffered
// in a message iterator, or arriving from the socket after the pause) to
// have gone to another consumer. A goroutine beats every little while
// (run); a pause is a gap of at least gap between two observations.
type pauses struct {
	gap  time.Duration
	now  func() time.Time
	mu   sync.Mutex
	last time.Time // the last observation
	// from and to bound the latest pause seen (zero when none).
	from, to time.Time
}

func newPauses(gap time.Duration, now func() time.Time) *pauses {
	return &pauses{gap: gap, now: now, last: now()}
}

// observe notes that the process runs now, and records a pause when the
// previous observation is at least gap old.
func (p *pauses) observe() {
	now := p.now()
	p.mu.Lock()
	p.observeLocked(now)
	p.mu.Unlock()
}

func (p *pauses) observeLocked(now time.Time) {
	if now.Sub(p.last) >= p.gap {
		p.from, p.to = p.last, now
	}
	if now.After(p.last) {
		p.last = now
	}
}

// opened observes and returns now: the time an iterator is opened at.
func (p *pauses) opened() time.Time {
	now := p.now()
	p.mu.Lock()
	p.observeLocked(now)
	p.mu.Unlock()
	return now
}

// start returns when the AckWait of a delivery taken now from an iterator
// opened at opened started, at the earliest this process can tell, and
// whether the process paused since the iterator was opened (its buffered
// deliveries may have been redelivered elsewhere meanwhile).
func (p *pauses) start(opened time.Time) (time.Time, bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	// A pause that just ended is noticed here, whether or not the beat
	// has run since.
	p.observeLocked(now)
	if !p.to.IsZero() && p.to.After(opened) {
		return p.from, true
	}
	return now, false
}

// run observes every interval until done is closed.
func (p *pauses) run(every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.observe()
		case <-done:
			return
		}
	}
}
