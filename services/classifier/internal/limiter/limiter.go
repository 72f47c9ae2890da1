// Package limiter admits requests to a rate-limited API (OpenAI) as fast as
// the account's limits allow and no faster, and decides who goes next.
//
// OpenAI's limits are per organization (API key) and per model, so the
// limiter keeps a pool per key and model: two token buckets, requests and
// tokens, refilled continuously at limit/60 per second. A request costs one
// request and its admission tokens (prompt tokens plus max completion
// tokens, which is how OpenAI counts it at admission). A request that does
// not fit waits; nothing is sent to be rejected. What is in flight is
// bounded by the buckets alone: at 3 s of latency, 10,000 requests a minute
// keeps ~500 in flight.
//
// The world is less exact than a configuration, and the limiter is built
// for it:
//
//   - The limit in force is the lower of the configured one and the one the
//     provider advertises in x-ratelimit-limit-*; with neither, the pool
//     sends one request and learns the limits from its answer. A change of
//     tier takes effect at the next answer.
//   - The provider may enforce a per-minute limit over windows as short as
//     one second, so a bucket holds only a fraction of a second's worth
//     (Burst, 500 ms by default) and starts empty: a fresh start never sends
//     more at once than a one-second window allows. A 429 halves that burst.
//   - After every answer the buckets are lowered to what the provider says
//     remains when it has less than the limiter thought (another client on
//     the same organization); each difference is taken off once, not once
//     per answer in flight.
//   - A 429 is information, not a debt: the buckets are set to what the
//     provider says remains (never below minus one request's cost), the pool
//     waits for the reset the provider named, and its rate ceiling is cut by
//     a tenth (at most once per round trip). The ceiling then grows back
//     linearly, so when another client takes part of the organization's
//     limit the pool converges to the share that is left instead of
//     oscillating into 429 storms.
//   - A request larger than a whole minute's token limit can never be
//     admitted: Acquire refuses it (ErrTooLarge) instead of waiting forever.
//
// Waiting requests are served strictly by lane (interactive, then live,
// then backfill) and round-robin between users inside a lane, so one user's
// backfill never delays another user's new mail by more than about one
// admission. With several keys (organizations), each request goes to the
// key with the most headroom for its model. With several replicas, each
// takes its share of every key's limits (SetShare).
package limiter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
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

// Limits are per-minute rate limits; zero means not configured (learned
// from the provider's headers).
type Limits struct {
	RPM, TPM float64
}

// KeyConfig is one API key's configured limits.
type KeyConfig struct {
	// ID names the key in status reports without revealing it.
	ID string
	// RPM and TPM are the key's configured requests and tokens per minute
	// for every model not in Models; zero means learn them from the
	// provider's x-ratelimit-limit-* headers.
	RPM, TPM float64
	// Models are configured limits of particular models.
	Models map[string]Limits
}

// Config configures a Limiter.
type Config struct {
	Keys []KeyConfig
	// Burst is how many seconds of refill a bucket holds (default 500 ms):
	// less than the shortest window a provider enforces its limits over.
	Burst time.Duration
	// Models are the models whose pools exist from the start (others are
	// made on first use), so that Status shows them before any request.
	Models []string
	// Clock defaults to the real clock.
	Clock Clock
}

// Request is one request waiting for admission.
type Request struct {
	// User is whose request it is, for round-robin inside a lane.
	User string
	Lane Lane
	// Model is the model the request is for; limits are per model.
	Model string
	// Tokens is the admission cost in tokens: prompt tokens plus the
	// request's max completion tokens.
	Tokens int
	// Retry puts the request at the head of its user's queue: it waited
	// once already (a 429, or a server error).
	Retry bool
}

// ErrNoKeys is returned by Acquire when the limiter has no keys.
var ErrNoKeys = errors.New("limiter: no API keys")

// ErrTooLarge is returned by Acquire for a request whose admission cost
// exceeds the per-minute token limit of every key: it can never be sent.
var ErrTooLarge = errors.New("limiter: request larger than the token limit")

// The rate ceiling's control: a 429 cuts it to the rate observed over
// observeWindow, by cutFactor at least, at most once per round trip, never
// below minCeiling; it grows back by growPerSecond of the limit each second
// since the cut, plus growAccel × seconds², so that probing is gentle just
// after a cut and a long storm is soon forgotten.
const (
	cutFactor     = 0.9
	growPerSecond = 0.005
	growAccel     = 0.0002
	minCeiling    = 0.05
	observeWindow = 5 * time.Second
)

// Limiter admits requests. Its methods are safe for concurrent use.
type Limiter struct {
	clock Clock
	burst time.Duration

	mu    sync.Mutex
	share float64
	keys  []*key
	// queues holds the waiting requests per model: models have their own
	// limits, so a request waiting for one never holds back another's.
	queues  map[string]*lanes
	timer   Timer
	timerAt time.Time
}

// New returns a limiter over cfg.Keys.
func New(cfg Config) *Limiter {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 500 * time.Millisecond
	}
	l := &Limiter{clock: cfg.Clock, burst: cfg.Burst, share: 1}
	for _, kc := range cfg.Keys {
		l.keys = append(l.keys, &key{cfg: kc, pools: map[string]*pool{}})
	}
	l.queues = map[string]*lanes{}
	for _, k := range l.keys {
		for _, m := range cfg.Models {
			k.pool(l, m)
		}
	}
	return l
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
	for _, k := range l.keys {
		for _, p := range k.pools {
			p.resize(now)
		}
	}
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
// It returns ctx's error if ctx ends first, and ErrTooLarge for a request
// no key can ever admit.
func (l *Limiter) Acquire(ctx context.Context, req Request) (*Permit, error) {
	if len(l.keys) == 0 {
		return nil, ErrNoKeys
	}
	if req.Lane < 0 || req.Lane >= numLanes {
		req.Lane = Backfill
	}
	w := &waiter{req: req, ready: make(chan *Permit, 1)}
	l.mu.Lock()
	w.since = l.clock.Now()
	if l.tooLarge(req) {
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: %d tokens", ErrTooLarge, req.Tokens)
	}
	l.queue(req.Model)[req.Lane].push(w)
	l.dispatch(l.clock.Now())
	l.mu.Unlock()

	select {
	case p := <-w.ready:
		if p == nil {
			return nil, fmt.Errorf("%w: %d tokens", ErrTooLarge, req.Tokens)
		}
		return p, nil
	case <-ctx.Done():
		l.mu.Lock()
		removed := l.queue(req.Model)[req.Lane].remove(w)
		if !removed {
			// Admitted at the moment ctx ended: give the capacity back.
			l.mu.Unlock()
			if p := <-w.ready; p != nil {
				p.Cancel()
			}
			return nil, ctx.Err()
		}
		// Whoever was behind w may fit now.
		l.dispatch(l.clock.Now())
		l.mu.Unlock()
		return nil, ctx.Err()
	}
}

// tooLarge reports whether no key can ever admit req: every key knows a
// token limit for the model, and the request exceeds it. l.mu must be held.
func (l *Limiter) tooLarge(req Request) bool {
	for _, k := range l.keys {
		tpm := k.pool(l, req.Model).limits().TPM
		if tpm <= 0 || float64(req.Tokens) <= tpm {
			return false
		}
	}
	return true
}

// queue returns model's lanes, made on first use. l.mu must be held.
func (l *Limiter) queue(model string) *lanes {
	q := l.queues[model]
	if q == nil {
		q = &lanes{}
		for i := range q {
			q[i].users = map[string]*userQueue{}
		}
		l.queues[model] = q
	}
	return q
}

// dispatch admits waiting requests in order while they fit, model by
// model, and sets a timer for when the next one will. l.mu must be held.
func (l *Limiter) dispatch(now time.Time) {
	wake := time.Duration(-1)
	for _, q := range l.queues {
		if d := l.dispatchModel(q, now); d >= 0 && (wake < 0 || d < wake) {
			wake = d
		}
	}
	if wake < 0 {
		l.stopTimer()
		return
	}
	l.wakeAt(now.Add(wake))
}

// dispatchModel admits one model's waiting requests while they fit and
// returns how long until the next one will (-1: none waits).
func (l *Limiter) dispatchModel(q *lanes, now time.Time) time.Duration {
	for {
		w := q.next()
		if w == nil {
			return -1
		}
		if l.tooLarge(w.req) {
			// The limits were learned while it waited.
			q[w.req.Lane].pop(w)
			w.ready <- nil
			continue
		}
		p, wait := l.choose(w.req, now)
		if p == nil {
			return wait
		}
		q[w.req.Lane].pop(w)
		w.ready <- p.admit(l, w.req, now)
	}
}

// lanes are one model's lanes, indexed by Lane.
type lanes [numLanes]lane

// next returns the request to serve next: the highest lane that has
// waiters, the next user in round-robin order, that user's oldest request.
func (q *lanes) next() *waiter {
	for i := len(q) - 1; i >= 0; i-- {
		if w := q[i].peek(); w != nil {
			return w
		}
	}
	return nil
}

// choose returns the pool that can admit req now with the most headroom
// left, or nil and how long until one of the pools can.
func (l *Limiter) choose(req Request, now time.Time) (*pool, time.Duration) {
	var best *pool
	bestRoom := math.Inf(-1)
	soonest := time.Duration(math.MaxInt64)
	tokens := float64(req.Tokens)
	for _, k := range l.keys {
		p := k.pool(l, req.Model)
		p.refill(now)
		if tpm := p.limits().TPM; tpm > 0 && tokens > tpm {
			continue // this key can never take it; another can
		}
		wait := p.wait(tokens, now)
		if wait > 0 {
			soonest = min(soonest, wait)
			continue
		}
		if room := p.headroom(tokens); room > bestRoom {
			best, bestRoom = p, room
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

// key is one API key: a pool per model.
type key struct {
	cfg   KeyConfig
	pools map[string]*pool
}

// pool returns the key's pool for model, made on first use. l.mu must be held.
func (k *key) pool(l *Limiter, model string) *pool {
	if p := k.pools[model]; p != nil {
		return p
	}
	conf := Limits{RPM: k.cfg.RPM, TPM: k.cfg.TPM}
	if m, ok := k.cfg.Models[model]; ok {
		conf = m
	}
	now := l.clock.Now()
	p := &pool{
		l: l, key: k.cfg.ID, model: model, configured: conf,
		ceiling: 1, burst: l.burst,
	}
	p.req.last, p.tok.last = now, now
	p.resize(now)
	// Start empty: the first requests go at the rate, not in a burst that a
	// one-second window would refuse.
	p.req.level, p.tok.level = 0, 0
	k.pools[model] = p
	return p
}

// pool is one key's buckets for one model, and what they have seen.
type pool struct {
	l          *Limiter
	key, model string

	configured, advertised Limits
	// answered is set by the first answer with rate-limit headers (or any
	// answer); until then a pool without configured limits sends one
	// request at a time.
	answered bool

	req, tok bucket
	// ceiling is the fraction of the limit the pool may use (≤ 1): cut
	// after a 429, grown back linearly from cutTo since cutAt.
	ceiling float64
	cutTo   float64
	cutAt   time.Time
	// oks counts the answers that were not 429s; firstOK and lastOK are
	// the first and the last.
	oks             window
	firstOK, lastOK time.Time
	// loweredAt is when an answer last lowered the limit in force.
	loweredAt time.Time
	// burst is how many seconds' worth the buckets hold; halved by a 429.
	burst time.Duration

	// corrReq and corrTok add up what reconciliation took off the buckets,
	// so that each permit's view is corrected only by what came after it.
	corrReq, corrTok float64
	// rtt is a moving average of the time from admission to answer.
	rtt time.Duration

	inFlight int
	frozen   time.Time
	limited  window // 429s
	retries  window
	// totals count since the pool was made, for the history (Totals).
	totals Totals
}

// Fallback are the limits of a pool that has neither configured limits nor
// an answer that advertised any: OpenAI's lowest paid tier for its small
// models, so that a server without rate-limit headers is not flooded.
var Fallback = Limits{RPM: 500, TPM: 200_000}

// limits returns the limits in force: the lower of the configured and the
// advertised, per dimension; zero where neither is known (Fallback once an
// answer came without any).
func (p *pool) limits() Limits {
	lim := Limits{RPM: lower(p.configured.RPM, p.advertised.RPM), TPM: lower(p.configured.TPM, p.advertised.TPM)}
	if p.answered && lim.RPM <= 0 && lim.TPM <= 0 {
		return Fallback
	}
	return lim
}

// lower is the lower of two limits, zero meaning unknown.
func lower(a, b float64) float64 {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// learning reports whether the pool knows no request limit yet: it sends
// one request at a time until an answer tells it.
func (p *pool) learning() bool { return p.limits().RPM <= 0 && !p.answered }

// currentCeiling is the ceiling now, grown back since the last cut.
func (p *pool) currentCeiling(now time.Time) float64 {
	if p.cutTo == 0 {
		return 1
	}
	t := now.Sub(p.cutAt).Seconds()
	return min(1, p.cutTo+growPerSecond*t+growAccel*t*t)
}

// resize sets the buckets' rates and capacities from the limits in force,
// the share, the ceiling and the burst; a bucket keeps its level, up to the
// new capacity. An unknown dimension is not limited by the pool.
func (p *pool) resize(now time.Time) {
	p.req.refill(now)
	p.tok.refill(now)
	p.ceiling = p.currentCeiling(now)
	lim := p.limits()
	f := p.l.share * p.ceiling
	p.req.setRate(lim.RPM*f/60, p.burst)
	p.tok.setRate(lim.TPM*f/60, p.burst)
}

// refill brings the buckets up to now, at the ceiling grown since the last
// cut.
func (p *pool) refill(now time.Time) {
	if c := p.currentCeiling(now); c != p.ceiling {
		p.resize(now)
		return
	}
	p.req.refill(now)
	p.tok.refill(now)
}

// wait is how long until p can admit a request of tokens (0: now).
func (p *pool) wait(tokens float64, now time.Time) time.Duration {
	var d time.Duration
	if now.Before(p.frozen) {
		d = p.frozen.Sub(now)
	}
	if p.learning() && p.inFlight > 0 {
		// Wait for the answer that tells the limits; Done dispatches.
		d = max(d, time.Minute)
	}
	return max(d, p.req.wait(1, now), p.tok.wait(tokens, now))
}

// headroom is the fraction of the fuller-used bucket left after admitting
// a request of tokens.
func (p *pool) headroom(tokens float64) float64 {
	return min(p.req.headroom(1), p.tok.headroom(tokens))
}

func (p *pool) admit(l *Limiter, req Request, now time.Time) *Permit {
	p.req.take(1)
	p.tok.take(float64(req.Tokens))
	p.inFlight++
	p.totals.Sent++
	p.totals.SentTokens += float64(req.Tokens)
	if req.Retry {
		p.retries.add(now, 1)
	}
	return &Permit{
		Key:      p.key,
		l:        l,
		p:        p,
		tokens:   float64(req.Tokens),
		sentReq:  p.req.level,
		sentTok:  p.tok.level,
		corrReq:  p.corrReq,
		corrTok:  p.corrTok,
		admitted: now,
	}
}

// cut lowers the ceiling after a 429 of a request admitted after the last
// cut and after the limit was last lowered: the 429s of requests sent at
// the old rate say nothing of the new one. Nor does a storm: without an
// answer that went through since the last cut, the ceiling stays, and the
// freeze waits the storm out. Otherwise the new ceiling is a tenth under
// the rate the provider accepted over the last few seconds (the share
// another client leaves), cutting by at least a tenth and at most a half.
func (p *pool) cut(permit *Permit, now time.Time) {
	if !permit.admitted.After(p.cutAt) || !permit.admitted.After(p.loweredAt) {
		return
	}
	if !p.cutAt.IsZero() && !p.lastOK.After(p.cutAt) {
		return
	}
	c := p.currentCeiling(now)
	next := c * cutFactor
	// The accepted rate is known once answers have come for a whole
	// window; before that a few early answers would pass for a rate.
	if full := p.limits().RPM * p.l.share / 60; full > 0 && !p.firstOK.IsZero() && now.Sub(p.firstOK) >= observeWindow {
		observed := float64(p.oks.sumLast(now, observeWindow)) / observeWindow.Seconds() / full
		next = min(next, max(observed*cutFactor, c/2))
	}
	p.cutTo = max(minCeiling, next)
	p.cutAt = now
	// The provider's window may be shorter than the burst: halve it, down
	// to a tenth of the default.
	p.burst = max(p.burst/2, p.l.burst/10)
	p.resize(now)
}

// bucket is a token bucket refilled continuously. A zero rate means the
// dimension is not limited. Its level may go below zero when a request
// larger than the capacity is admitted from a full bucket; the debt is
// repaid by refill before anything else fits.
type bucket struct {
	level, rate, cap float64
	last             time.Time
}

func (b *bucket) limited() bool { return b.rate > 0 }

func (b *bucket) setRate(perSecond float64, burst time.Duration) {
	b.rate = perSecond
	b.cap = perSecond * burst.Seconds()
	b.level = min(b.level, b.cap)
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 && b.limited() {
		b.level = min(b.cap, b.level+dt*b.rate)
	}
	b.last = now
}

func (b *bucket) take(cost float64) {
	if b.limited() {
		b.level -= cost
	}
}

func (b *bucket) give(cost float64) {
	if b.limited() {
		b.level = min(b.cap, b.level+cost)
	}
}

// wait is how long until the bucket can admit cost. A cost above the
// capacity is admitted from a (nearly) full bucket: the capacity grows with
// the ceiling, and a level chasing it must not wait for ever.
func (b *bucket) wait(cost float64, now time.Time) time.Duration {
	if !b.limited() {
		return 0
	}
	need := cost
	if cost > b.cap*0.99 {
		need = b.cap * 0.99
	}
	if b.level >= need {
		return 0
	}
	return time.Duration((need - b.level) / b.rate * float64(time.Second))
}

func (b *bucket) headroom(cost float64) float64 {
	if !b.limited() || b.cap <= 0 {
		return 1
	}
	return (b.level - cost) / b.cap
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

// sumLast counts the events of the last d (whole seconds, the current
// one included).
func (w *window) sumLast(now time.Time, d time.Duration) int64 {
	s := now.Unix()
	n := int64(d / time.Second)
	var total int64
	for i := range w.slots {
		if s-w.secs[i] < n {
			total += w.slots[i]
		}
	}
	return total
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

// sortedPools returns k's pools ordered by model.
func (k *key) sortedPools() []*pool {
	ps := make([]*pool, 0, len(k.pools))
	for _, p := range k.pools {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].model < ps[j].model })
	return ps
}
