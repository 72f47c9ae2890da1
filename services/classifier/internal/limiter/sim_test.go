package limiter_test

import (
	"context"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/limiter"
)

// simServer is a provider on the fake clock, as strict as OpenAI may be: a
// per-minute request limit enforced over a short window (a bucket holding
// window's worth, refilled at limit/60 a second), the remaining count
// reported per window or per minute, and optionally another client of the
// same organization taking a share of the limit.
type simServer struct {
	rpm       float64
	window    time.Duration
	perMinute bool
	// otherShare is the fraction of the limit another client asks for.
	otherShare float64

	level, minute float64
	last          time.Time
	otherDue      float64

	admitted, limited             int
	otherAdmitted, otherRefused   int
	perSecond                     map[int64]int
	firstAdmitted, lastAdmittedAt time.Time
}

func newSimServer(rpm float64, window time.Duration, now time.Time) *simServer {
	s := &simServer{rpm: rpm, window: window, last: now, perSecond: map[int64]int{}}
	s.level, s.minute = s.capacity(), rpm
	return s
}

func (s *simServer) capacity() float64 { return s.rpm * s.window.Seconds() / 60 }

// setLimit changes the limit (a change of tier).
func (s *simServer) setLimit(rpm float64) {
	s.rpm = rpm
	s.level = min(s.level, s.capacity())
	s.minute = min(s.minute, rpm)
}

func (s *simServer) advance(now time.Time) {
	dt := now.Sub(s.last).Seconds()
	if dt <= 0 {
		return
	}
	s.last = now
	s.level = min(s.capacity(), s.level+dt*s.rpm/60)
	s.minute = min(s.rpm, s.minute+dt*s.rpm/60)
	// The other client asks at its share of the rate, continuously.
	s.otherDue += dt * s.otherShare * s.rpm / 60
	for s.otherDue >= 1 {
		s.otherDue--
		if s.level >= 1 {
			s.level--
			s.minute--
			s.otherAdmitted++
		} else {
			s.otherRefused++
		}
	}
}

func (s *simServer) remaining() float64 {
	if s.perMinute {
		return math.Max(0, math.Floor(s.minute))
	}
	return math.Max(0, math.Floor(s.level))
}

// handle admits or refuses one of our requests arriving now.
func (s *simServer) handle(now time.Time) limiter.Outcome {
	s.advance(now)
	h := http.Header{}
	h.Set("x-ratelimit-limit-requests", strconv.Itoa(int(s.rpm)))
	if s.level < 1 {
		s.limited++
		wait := time.Duration((1 - s.level) / (s.rpm / 60) * float64(time.Second))
		h.Set("x-ratelimit-remaining-requests", strconv.Itoa(int(s.remaining())))
		h.Set("retry-after-ms", strconv.Itoa(int(wait/time.Millisecond)+1))
		return limiter.Outcome{Status: 429, Header: h}
	}
	s.level--
	s.minute--
	s.admitted++
	s.perSecond[now.Unix()]++
	if s.firstAdmitted.IsZero() {
		s.firstAdmitted = now
	}
	s.lastAdmittedAt = now
	h.Set("x-ratelimit-remaining-requests", strconv.Itoa(int(s.remaining())))
	return limiter.Outcome{Status: 200, Header: h}
}

// simRun drives a saturated limiter (an endless backlog, many workers)
// against srv for d of fake time in steps of 10 ms, answering each request
// latency(now) after it reached the server (429s after 50 ms).
type simRun struct {
	t       *testing.T
	clock   *fakeClock
	l       *limiter.Limiter
	srv     *simServer
	latency func(elapsed time.Duration) time.Duration
	// every, when set, is called at each step with the elapsed time.
	every func(elapsed time.Duration)

	mu      sync.Mutex
	fresh   []*limiter.Permit
	started int
	done    int
	// maxInFlight is the most requests out at once.
	maxInFlight int
}

type pending struct {
	at time.Time
	p  *limiter.Permit
	o  limiter.Outcome
}

func (r *simRun) run(d time.Duration, workers int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				p, err := r.l.Acquire(ctx, limiter.Request{User: "u", Tokens: 1})
				if err != nil {
					return
				}
				r.mu.Lock()
				r.fresh = append(r.fresh, p)
				r.started++
				r.mu.Unlock()
			}
		}()
	}
	// Every worker waits in the limiter before time starts.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Microsecond) {
		st := r.l.Status()
		n := st.Waiting[limiter.Backfill]
		for _, k := range st.Keys {
			n += k.InFlight
		}
		if n >= workers {
			break
		}
	}
	start := r.clock.Now()
	var out []pending
	const step = 10 * time.Millisecond
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		now := r.clock.Now()
		if r.every != nil {
			r.every(elapsed)
		}
		if testing.Verbose() && (elapsed%(5*time.Second) == 0 || (os.Getenv("SIMDEBUG") != "" && elapsed < 2*time.Second)) {
			k := r.l.Status().Keys[0]
			r.t.Logf("t=%3.0fs ours=%d 429=%d rate=%.0f ceil=%.3f burst=%v req=%.1f frozen=%v inflight=%d srvlevel=%.1f", elapsed.Seconds(), r.srv.admitted, r.srv.limited, k.RequestsPerMinute, k.Ceiling, k.Burst, k.RequestsAvailable, k.Frozen, k.InFlight, r.srv.level)
		}
		r.settle()
		r.mu.Lock()
		fresh := r.fresh
		r.fresh = nil
		r.mu.Unlock()
		for _, p := range fresh {
			o := r.srv.handle(now)
			at := now.Add(50 * time.Millisecond)
			if o.Status == 200 {
				at = now.Add(r.latency(now.Sub(start)))
			}
			out = append(out, pending{at: at, p: p, o: o})
		}
		r.srv.advance(now)
		r.maxInFlight = max(r.maxInFlight, len(out))
		keep := out[:0]
		for _, q := range out {
			if !q.at.After(now) {
				q.p.Done(q.o)
				r.mu.Lock()
				r.done++
				r.mu.Unlock()
			} else {
				keep = append(keep, q)
			}
		}
		out = keep
		r.clock.Advance(step)
	}
	cancel()
	for _, q := range out {
		q.p.Done(q.o)
	}
	r.clock.Advance(time.Hour)
	wg.Wait()
	r.mu.Lock()
	for _, p := range r.fresh {
		p.Done(limiter.Outcome{Status: 200})
	}
	r.mu.Unlock()
}

// settle waits until every admission the limiter made has been recorded by
// its worker.
func (r *simRun) settle() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		in := 0
		for _, k := range r.l.Status().Keys {
			in += k.InFlight
		}
		r.mu.Lock()
		recorded := r.started - r.done
		r.mu.Unlock()
		if recorded == in {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
	r.t.Fatal("admissions not recorded")
}

func newSimRun(t *testing.T, kc limiter.KeyConfig, srv *simServer, clock *fakeClock) *simRun {
	return &simRun{
		t: t, clock: clock, srv: srv,
		l:       limiter.New(limiter.Config{Keys: []limiter.KeyConfig{kc}, Models: []string{""}, Clock: clock}),
		latency: func(time.Duration) time.Duration { return time.Second },
	}
}

func (r *simRun) limitedShare() float64 {
	return float64(r.srv.limited) / float64(max(1, r.srv.admitted+r.srv.limited))
}

// TestSimOneSecondWindows: the right limit, enforced over one-second
// windows, with the remaining count reported per window or per minute: the
// limiter runs at the limit from a cold start and is never refused.
func TestSimOneSecondWindows(t *testing.T) {
	for _, perMinute := range []bool{false, true} {
		t.Run("perMinute="+strconv.FormatBool(perMinute), func(t *testing.T) {
			c := newClock()
			srv := newSimServer(1200, time.Second, c.Now())
			srv.perMinute = perMinute
			r := newSimRun(t, key("k", 1200, 0), srv, c)
			r.run(60*time.Second, 200)
			if srv.limited != 0 {
				t.Errorf("%d requests answered 429, want none", srv.limited)
			}
			if want := 1200.0 * 59 / 60; float64(srv.admitted) < want {
				t.Errorf("admitted %d in a minute at 1,200 RPM, want at least %.0f", srv.admitted, want)
			}
		})
	}
}

// TestSimConfiguredFourTimesTooHigh: OPENAI_RPM is 4× the real limit,
// which the provider advertises: the limiter runs at the real limit after
// the first answer, with almost no 429s.
func TestSimConfiguredFourTimesTooHigh(t *testing.T) {
	for _, perMinute := range []bool{false, true} {
		t.Run("perMinute="+strconv.FormatBool(perMinute), func(t *testing.T) {
			c := newClock()
			srv := newSimServer(300, time.Second, c.Now())
			srv.perMinute = perMinute
			r := newSimRun(t, key("k", 1200, 0), srv, c)
			r.run(120*time.Second, 100)
			if share := r.limitedShare(); share > 0.02 {
				t.Errorf("%.1f%% of requests answered 429 (%d), want ≤ 2%%", 100*share, srv.limited)
			}
			if want := 300.0 * 2 * 0.95; float64(srv.admitted) < want {
				t.Errorf("admitted %d in two minutes at a real 300 RPM, want at least %.0f", srv.admitted, want)
			}
		})
	}
}

// TestSimNoLimitsConfigured: nothing configured; the limits are learned.
func TestSimNoLimitsConfigured(t *testing.T) {
	c := newClock()
	srv := newSimServer(600, time.Second, c.Now())
	r := newSimRun(t, limiter.KeyConfig{ID: "k"}, srv, c)
	r.run(60*time.Second, 100)
	if share := r.limitedShare(); share > 0.02 || float64(srv.admitted) < 600*0.95 {
		t.Errorf("admitted %d with %.1f%% 429s in a minute of a learned 600 RPM; want ≥ 570 and ≤ 2%%", srv.admitted, 100*share)
	}
}

// TestSimLimitHalvesThenDoubles: the tier changes mid-run; the limiter
// follows at the next answer.
func TestSimLimitHalvesThenDoubles(t *testing.T) {
	c := newClock()
	srv := newSimServer(1200, time.Second, c.Now())
	r := newSimRun(t, limiter.KeyConfig{ID: "k"}, srv, c)
	r.every = func(e time.Duration) {
		switch e {
		case 40 * time.Second:
			srv.setLimit(600)
		case 80 * time.Second:
			srv.setLimit(1200)
		}
	}
	r.run(120*time.Second, 200)
	want := (1200.0*40 + 600*40 + 1200*40) / 60
	if share := r.limitedShare(); share > 0.02 || float64(srv.admitted) < want/1.15 {
		t.Errorf("admitted %d (floor %.0f) with %.1f%% 429s; want ≥ floor ÷ 1.15 and ≤ 2%%", srv.admitted, want, 100*share)
	}
}

// TestSimAnotherClientTakesHalf: another application takes half of the
// organization's requests; the limiter converges to the half that is left,
// with few 429s, whether the remaining count is reported per window or per
// minute.
func TestSimAnotherClientTakesHalf(t *testing.T) {
	for _, perMinute := range []bool{false, true} {
		t.Run("perMinute="+strconv.FormatBool(perMinute), func(t *testing.T) {
			c := newClock()
			srv := newSimServer(6000, time.Second, c.Now())
			srv.perMinute = perMinute
			srv.otherShare = 0.5
			r := newSimRun(t, key("k", 6000, 0), srv, c)
			r.run(120*time.Second, 300)
			rest := 6000.0*2 - float64(srv.otherAdmitted)
			got := float64(srv.admitted) / rest
			t.Logf("ours %d of the %0.f left (%.1f%%), 429s %.2f%%; other admitted %d refused %d",
				srv.admitted, rest, 100*got, 100*r.limitedShare(), srv.otherAdmitted, srv.otherRefused)
			if got < 0.90 {
				t.Errorf("mailroom got %.1f%% of what the other client left, want ≥ 90%%", 100*got)
			}
			if share := r.limitedShare(); share > 0.02 {
				t.Errorf("%.1f%% of requests answered 429, want ≤ 2%%", 100*share)
			}
		})
	}
}

// TestSimLatencySpike: latency goes 300 ms → 3 s → 300 ms; in flight grows
// with it, within what the buckets allow, and nothing bursts past the limit
// when it recovers.
func TestSimLatencySpike(t *testing.T) {
	c := newClock()
	srv := newSimServer(1200, time.Second, c.Now())
	r := newSimRun(t, key("k", 1200, 0), srv, c)
	r.latency = func(e time.Duration) time.Duration {
		if e >= 20*time.Second && e < 40*time.Second {
			return 3 * time.Second
		}
		return 300 * time.Millisecond
	}
	r.run(60*time.Second, 200)
	if srv.limited != 0 {
		t.Errorf("%d requests answered 429, want none", srv.limited)
	}
	for sec, n := range srv.perSecond {
		if n > 20+1 {
			t.Errorf("second %d: %d requests reached the server, over the 20 a second", sec, n)
		}
	}
	// 20/s × 3 s = 60 in flight at the spike, plus what the burst holds.
	if r.maxInFlight > 60+10+5 || r.maxInFlight < 55 {
		t.Errorf("at most %d in flight, want about 60 at 3 s of latency (bounded by the buckets)", r.maxInFlight)
	}
}
