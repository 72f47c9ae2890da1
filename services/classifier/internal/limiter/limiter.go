// Package limiter admits requests to a rate-limited API (OpenAI) as fast as
// the account's limits allow and no faster, and decides who goes next.
//
// Each API key has two token buckets, requests and tokens, refilled
// continuously at limit/60 per second and holding a few seconds' worth (the
// burst), because the provider enforces its per-minute limits over short
// windows. A request costs one request and its admission tokens (prompt
// tokens plus max completion tokens, which is how OpenAI counts it at
// admission). A request that does not fit waits; nothing is sent to be
// rejected. What is in flight is bounded by the buckets alone: at 3 s of
// latency, 10,000 requests a minute keeps ~500 in flight.
//
// Waiting requests are served strictly by lane (interactive, then live,
// then backfill) and round-robin between users inside a lane, so one
// user's backfill never delays another user's new mail by more than about
// one admission.
//
// After every response the caller reports the outcome: the limiter lowers
// its buckets to what the provider's x-ratelimit-remaining headers say when
// the provider has less than it thought (another client on the same key),
// and a 429 freezes that key until the reset the provider named. With
// several keys (organizations), each request goes to the key with the most
// headroom. With several replicas, each takes its share of every key's
// limits (SetShare).
package limiter

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"
)

// Lane is a scheduling lane. Interactive is served first, then live, then
// backfill; the zero value is backfill, the lane that can wait.
type Lane int

// The lanes.
const (
	Backfill Lane = iota
	Live
	Interactive
	numLanes
)

// String returns the lane's name.
func (l Lane) String() string {
	switch l {
	case Interactive:
		return "interactive"
	case Live:
		return "live"
	case Backfill:
		return "backfill"
	}
	return "unknown"
}

// Clock is the limiter's view of time; tests use a fake one.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// KeyConfig is one API key's limits.
type KeyConfig struct {
	// ID names the key in status reports without revealing it.
	ID string
	// RPM and TPM are the key's requests and tokens per minute.
	RPM, TPM float64
}

// Config configures a Limiter.
type Config struct {
	Keys []KeyConfig
	// Burst is how many seconds of refill a bucket holds (default 3 s).
	Burst time.Duration
	// Clock defaults to the real clock.
	Clock Clock
}

// Request is one request waiting for admission.
type Request struct {
	// User is whose request it is, for round-robin inside a lane.
	User string
	Lane Lane
	// Tokens is the admission cost in tokens: prompt tokens plus the
	// request's max completion tokens.
	Tokens int
	// Retry puts the request at the head of its user's queue: it waited
	// once already (a 429, or a server error).
	Retry bool
}

// ErrNoKeys is returned by Acquire when the limiter has no keys.
var ErrNoKeys = errors.New("limiter: no API keys")

// Limiter admits requests. Its methods are safe for concurrent use.
type Limiter struct {
	clock Clock
	burst time.Duration

	mu      sync.Mutex
	share   float64
	keys    []*key
	lanes   [numLanes]lane
	timer   Timer
	timerAt time.Time
}

// New returns a limiter over cfg.Keys.
func New(cfg Config) *Limiter {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 3 * time.Second
	}
	l := &Limiter{clock: cfg.Clock, burst: cfg.Burst, share: 1}
	now := l.clock.Now()
	for _, kc := range cfg.Keys {
		k := &key{cfg: kc}
		k.req.last, k.tok.last = now, now
		l.keys = append(l.keys, k)
	}
	l.resize(now)
	for _, k := range l.keys {
		k.req.level, k.tok.level = k.req.cap, k.tok.cap // start full
	}
	for i := range l.lanes {
		l.lanes[i].users = map[string]*userQueue{}
	}
	return l
}

// resize sets every bucket's rate and capacity from the keys' limits, the
// share and the burst; a bucket keeps its level, up to the new capacity.
func (l *Limiter) resize(now time.Time) {
	for _, k := range l.keys {
		k.req.refill(now)
		k.tok.refill(now)
		k.req.setRate(k.cfg.RPM*l.share/60, l.burst)
		k.tok.setRate(k.cfg.TPM*l.share/60, l.burst)
	}
}

// SetShare sets the fraction of every key's limits this limiter may use:
// 1/n when n replicas share the keys.
func (l *Limiter) SetShare(share float64) {
	if share <= 0 || share > 1 || math.IsNaN(share) {
		share = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if share == l.share {
		return
	}
	now := l.clock.Now()
	l.share = share
	l.resize(now)
	l.dispatch(now)
}

// Share returns the fraction set by SetShare.
func (l *Limiter) Share() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.share
}

// Acquire waits until req can be admitted and returns its permit, naming the
// key to send it with. The caller must call the permit's Done or Cancel.
// It returns ctx's error if ctx ends first.
func (l *Limiter) Acquire(ctx context.Context, req Request) (*Permit, error) {
	if len(l.keys) == 0 {
		return nil, ErrNoKeys
	}
	if req.Lane < 0 || req.Lane >= numLanes {
		req.Lane = Backfill
	}
	w := &waiter{req: req, ready: make(chan *Permit, 1)}
	l.mu.Lock()
	l.lanes[req.Lane].push(w)
	l.dispatch(l.clock.Now())
	l.mu.Unlock()

	select {
	case p := <-w.ready:
		return p, nil
	case <-ctx.Done():
		l.mu.Lock()
		removed := l.lanes[req.Lane].remove(w)
		if !removed {
			// Admitted at the moment ctx ended: give the capacity back.
			l.mu.Unlock()
			(<-w.ready).Cancel()
			return nil, ctx.Err()
		}
		// Whoever was behind w may fit now.
		l.dispatch(l.clock.Now())
		l.mu.Unlock()
		return nil, ctx.Err()
	}
}

// dispatch admits waiting requests in order while they fit, and sets a
// timer for when the next one will. l.mu must be held.
func (l *Limiter) dispatch(now time.Time) {
	for {
		w := l.next()
		if w == nil {
			l.stopTimer()
			return
		}
		k, wait := l.choose(w.req.Tokens, now)
		if k == nil {
			l.wakeAt(now.Add(wait))
			return
		}
		l.lanes[w.req.Lane].pop(w)
		w.ready <- k.admit(l, w.req, now)
	}
}

// next returns the request to serve next: the highest lane that has
// waiters, the next user in round-robin order, that user's oldest request.
func (l *Limiter) next() *waiter {
	for i := len(l.lanes) - 1; i >= 0; i-- {
		if w := l.lanes[i].peek(); w != nil {
			return w
		}
	}
	return nil
}

// choose returns the key that can admit a request of tokens now with the
// most headroom left, or nil and how long until one of the keys can.
func (l *Limiter) choose(tokens int, now time.Time) (*key, time.Duration) {
	var best *key
	bestRoom := math.Inf(-1)
	soonest := time.Duration(math.MaxInt64)
	for _, k := range l.keys {
		k.req.refill(now)
		k.tok.refill(now)
		wait := k.wait(float64(tokens), now)
		if wait > 0 {
			soonest = min(soonest, wait)
			continue
		}
		if room := k.headroom(float64(tokens)); room > bestRoom {
			best, bestRoom = k, room
		}
	}
	if best != nil {
		return best, 0
	}
	// Timers are not exact; never spin on a wait of zero.
	return nil, max(soonest, time.Millisecond)
}

func (l *Limiter) wakeAt(at time.Time) {
	if l.timer != nil {
		if !l.timerAt.After(at) {
			return // an earlier wake-up is set already
		}
		l.timer.Stop()
	}
	l.timerAt = at
	l.timer = l.clock.AfterFunc(at.Sub(l.clock.Now()), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.timer = nil
		l.dispatch(l.clock.Now())
	})
}

func (l *Limiter) stopTimer() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// key is one API key: its buckets and what it has seen.
type key struct {
	cfg      KeyConfig
	req, tok bucket
	inFlight int
	frozen   time.Time
	limited  window // 429s
	retries  window
}

// wait is how long until k can admit a request of tokens (0: now).
func (k *key) wait(tokens float64, now time.Time) time.Duration {
	var d time.Duration
	if now.Before(k.frozen) {
		d = k.frozen.Sub(now)
	}
	return max(d, k.req.wait(1, now), k.tok.wait(tokens, now))
}

// headroom is the fraction of the fuller-used bucket left after admitting
// a request of tokens.
func (k *key) headroom(tokens float64) float64 {
	return min((k.req.level-1)/k.req.cap, (k.tok.level-tokens)/k.tok.cap)
}

func (k *key) admit(l *Limiter, req Request, now time.Time) *Permit {
	k.req.level--
	k.tok.level -= float64(req.Tokens)
	k.inFlight++
	if req.Retry {
		k.retries.add(now, 1)
	}
	return &Permit{
		Key:      k.cfg.ID,
		l:        l,
		k:        k,
		tokens:   float64(req.Tokens),
		sentReq:  k.req.level,
		sentTok:  k.tok.level,
		admitted: now,
	}
}

// bucket is a token bucket refilled continuously. Its level may go below
// zero when a request larger than the capacity is admitted from a full
// bucket; the debt is repaid by refill before anything else fits.
type bucket struct {
	level, rate, cap float64
	last             time.Time
}

func (b *bucket) setRate(perSecond float64, burst time.Duration) {
	b.rate = perSecond
	b.cap = perSecond * burst.Seconds()
	b.level = min(b.level, b.cap)
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.level = min(b.cap, b.level+dt*b.rate)
	}
	b.last = now
}

// wait is how long until the bucket can admit cost. A cost above the
// capacity is admitted from a full bucket.
func (b *bucket) wait(cost float64, now time.Time) time.Duration {
	need := min(cost, b.cap)
	if b.level >= need {
		return 0
	}
	if b.rate <= 0 {
		return time.Hour
	}
	return time.Duration((need - b.level) / b.rate * float64(time.Second))
}

// window counts events over the last minute, in one-second slots.
type window struct {
	slots [60]int64
	secs  [60]int64
}

func (w *window) add(now time.Time, n int64) {
	s := now.Unix()
	i := s % 60
	if w.secs[i] != s {
		w.secs[i], w.slots[i] = s, 0
	}
	w.slots[i] += n
}

func (w *window) sum(now time.Time) int64 {
	s := now.Unix()
	var total int64
	for i := range w.slots {
		if s-w.secs[i] < 60 {
			total += w.slots[i]
		}
	}
	return total
}
