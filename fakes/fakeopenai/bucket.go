package fakeopenai

import (
	"math"
	"time"
)

// epsilon absorbs float rounding, so that a client that waits exactly the
// "try again in" it was told (rounded up to the millisecond) is admitted.
const epsilon = 1e-6

// bucket is one continuously refilled token bucket: it gains limit/60 per
// second up to its capacity, limit × window / 1 min.
type bucket struct {
	limit    float64 // per minute; 0 means unlimited
	capacity float64
	rate     float64 // per second
	level    float64
	last     time.Time
}

func newBucket(limit int, window time.Duration, now time.Time) *bucket {
	l := float64(limit)
	capacity := l * window.Seconds() / 60
	return &bucket{limit: l, capacity: capacity, rate: l / 60, level: capacity, last: now}
}

func (b *bucket) unlimited() bool { return b == nil || b.limit <= 0 }

// refill brings the level up to now. A clock that goes back changes nothing.
func (b *bucket) refill(now time.Time) {
	if b.unlimited() {
		return
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.level = math.Min(b.capacity, b.level+dt.Seconds()*b.rate)
		b.last = now
	}
}

// need is the level the bucket must hold to admit cost. A cost above the
// capacity (but within the per-minute limit) is admitted from a full bucket,
// which then goes into debt: OpenAI admits any request up to its per-minute
// limit, and the window must not make such a request impossible.
func (b *bucket) need(cost float64) float64 { return math.Min(cost, b.capacity) }

// wait is how long until the bucket holds need(cost); 0 when it does now.
func (b *bucket) wait(cost float64) time.Duration {
	if b.unlimited() {
		return 0
	}
	missing := b.need(cost) - b.level
	if missing <= epsilon {
		return 0
	}
	return secondsToDuration(missing / b.rate)
}

// untilFull is how long until the bucket is full again.
func (b *bucket) untilFull() time.Duration {
	if b.unlimited() || b.level >= b.capacity {
		return 0
	}
	return secondsToDuration((b.capacity - b.level) / b.rate)
}

// remaining is the whole units the bucket holds, never below zero.
func (b *bucket) remaining() int64 {
	if b.level <= 0 {
		return 0
	}
	return int64(math.Floor(b.level + epsilon))
}

// secondsToDuration rounds up, ignoring float noise far below a nanosecond
// (0.163 s must not become 163000001 ns, and then 164 ms).
func secondsToDuration(s float64) time.Duration {
	return time.Duration(math.Ceil(s*float64(time.Second) - 1e-3))
}

// FormatDuration formats d as OpenAI does in "Please try again in …" and in
// the x-ratelimit-reset-* headers: a Go duration string of d rounded up to
// the millisecond ("6ms", "1.2s", "1m3s", "6m0s"; "0s" for zero). Rounding
// up makes a client that waits exactly that long find the capacity there.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return (ms * time.Millisecond).String()
}
