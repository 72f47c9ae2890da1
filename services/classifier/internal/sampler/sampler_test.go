package sampler_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/sampler"
)

// clock is the sampler's clock, moved by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// send admits one request of tokens through the real limiter and reports
// status as its answer.
func send(t *testing.T, l *limiter.Limiter, tokens, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	p, err := l.Acquire(ctx, limiter.Request{User: "ada", Lane: limiter.Backfill, Model: "m", Tokens: tokens})
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	h := http.Header{}
	if status == http.StatusTooManyRequests {
		h.Set("retry-after-ms", "1")
	}
	p.Done(limiter.Outcome{Status: status, Header: h})
}

func TestSnapshotsRatesOfTheInterval(t *testing.T) {
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "key-1 (…abcd)", RPM: 60_000, TPM: 1e9}}, Models: []string{"m"}})
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	backlog := int64(7)
	s := sampler.New(sampler.Config{Limiter: l, Now: c.Now, Size: 3,
		Backlog: func(context.Context) (int64, error) { return backlog, nil }})

	// Sent before the first tick (which comes late on a loaded machine):
	// the first snapshot counts it, from the sampler's making.
	send(t, l, 50, http.StatusOK)
	c.now = c.now.Add(5 * time.Second)
	first := s.Sample(t.Context())
	if k := first.Keys[0]; k.Requests != 1 || k.RequestsUsedPerMinute != 12 || k.TokensUsedPerMinute != 600 {
		t.Errorf("first snapshot: %d answers, %v req/min, %v tok/min; want 1, 12, 600 (one request of 50 tokens in 5 s)", k.Requests, k.RequestsUsedPerMinute, k.TokensUsedPerMinute)
	}
	if len(first.Keys) != 1 || first.Keys[0].Key != "key-1 (…abcd)" || first.Keys[0].Model != "m" {
		t.Fatalf("first snapshot's keys = %+v, want the one pool", first.Keys)
	}
	if first.Keys[0].RequestsPerMinute != 60_000 || first.Backlog != 7 {
		t.Errorf("first snapshot: %v RPM, backlog %d; want 60000, 7", first.Keys[0].RequestsPerMinute, first.Backlog)
	}

	send(t, l, 100, http.StatusOK)
	send(t, l, 200, http.StatusOK)
	send(t, l, 300, http.StatusTooManyRequests)
	c.now = c.now.Add(10 * time.Second)
	backlog = 5
	second := s.Sample(t.Context())
	k := second.Keys[0]
	// 3 requests and 600 tokens in 10 s: 18 and 3,600 a minute.
	if k.RequestsUsedPerMinute != 18 || k.TokensUsedPerMinute != 3600 || k.Requests != 3 || k.RateLimited != 1 {
		t.Errorf("second snapshot: %v req/min, %v tok/min, %d answers, %d 429s; want 18, 3600, 3, 1",
			k.RequestsUsedPerMinute, k.TokensUsedPerMinute, k.Requests, k.RateLimited)
	}
	if second.Backlog != 5 {
		t.Errorf("backlog = %d, want 5", second.Backlog)
	}

	// Nothing sent in the next interval: the rates fall to zero.
	c.now = c.now.Add(10 * time.Second)
	third := s.Sample(t.Context())
	if k := third.Keys[0]; k.RequestsUsedPerMinute != 0 || k.Requests != 0 || k.RateLimited != 0 {
		t.Errorf("third snapshot = %+v, want nothing used", k)
	}

	// The ring keeps Size snapshots, oldest first; Since returns those after t.
	c.now = c.now.Add(10 * time.Second)
	fourth := s.Sample(t.Context())
	all := s.Since(time.Time{})
	if len(all) != 3 || !all[0].Time.Equal(second.Time) || !all[2].Time.Equal(fourth.Time) {
		t.Fatalf("ring = %d snapshots from %v, want 3 from %v", len(all), all[0].Time, second.Time)
	}
	if got := s.Since(third.Time); len(got) != 1 || !got[0].Time.Equal(fourth.Time) {
		t.Errorf("Since(third) = %d snapshots, want the fourth alone", len(got))
	}
	if got := s.Since(fourth.Time); len(got) != 0 {
		t.Errorf("Since(latest) = %d snapshots, want none", len(got))
	}
}

func TestSnapshotsWithoutALimiter(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	s := sampler.New(sampler.Config{Now: c.Now,
		Backlog: func(context.Context) (int64, error) { return 0, errors.New("nats away") }})
	snap := s.Sample(t.Context())
	if len(snap.Keys) != 0 || snap.Backlog != 0 || len(snap.Lanes) != 3 || snap.Lanes[2].Waiting != 0 {
		t.Errorf("rules-only snapshot = %+v, want empty", snap)
	}
}

// TestLanesWaitingAndOldestWait: a request that waits for capacity shows in
// its lane with how long it has waited.
func TestLanesWaitingAndOldestWait(t *testing.T) {
	l := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "k", RPM: 1, TPM: 1e9}}, Models: []string{"m"}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _, _ = l.Acquire(ctx, limiter.Request{User: "ada", Lane: limiter.Live, Model: "m", Tokens: 1}) }()
	s := sampler.New(sampler.Config{Limiter: l})
	deadline := time.Now().Add(5 * time.Second)
	for {
		snap := s.Sample(t.Context())
		if lane := snap.Lanes[1]; lane.Lane == classify.LaneLive && lane.Waiting == 1 && lane.OldestWait > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live lane = %+v, want 1 waiting for a while", snap.Lanes[1])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
