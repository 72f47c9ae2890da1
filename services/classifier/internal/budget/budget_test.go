package budget_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/budget"
)

type memStore struct {
	mu   sync.Mutex
	days map[string]int64
}

func (m *memStore) AddSpend(_ context.Context, day string, micros int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.days[day] += micros
	return nil
}

func (m *memStore) Spend(_ context.Context, day string) (int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var total int64
	for _, v := range m.days {
		total += v
	}
	return m.days[day], total, nil
}

func TestDailyCapHoldsThenResumes(t *testing.T) {
	store := &memStore{days: map[string]int64{}}
	now := time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g := budget.New(store, budget.Config{DailyMicros: 1000, Refresh: time.Millisecond, Now: clock})
	ctx := context.Background()

	settle, err := g.Reserve(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	// A second request of 600 would cross 1000 while the first is out.
	blocked := make(chan struct{})
	go func() {
		s, err := g.Reserve(ctx, 600)
		if err == nil {
			s(500)
		}
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("a request past the daily cap was let through")
	case <-time.After(50 * time.Millisecond):
	}
	// The first cost less than reserved: 300 spent, 600 more fits.
	settle(300)
	select {
	case <-blocked:
	case <-time.After(2 * time.Second):
		t.Fatal("the reservation's release did not let the waiting request go")
	}
	if s := g.Status(ctx); s.SpentTodayMicros != 800 || s.Exhausted {
		t.Errorf("status = %+v, want 800 spent and not exhausted", s)
	}
	// 800 spent: 300 does not fit today…
	ctx2, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := g.Reserve(ctx2, 300); err == nil {
		t.Fatal("300 more fit under a cap of 1000 after 800")
	}
	if !g.Status(ctx).Exhausted {
		t.Error("status does not say exhausted")
	}
	// …but does after midnight UTC.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	s, err := g.Reserve(ctx, 300)
	if err != nil {
		t.Fatalf("after midnight: %v", err)
	}
	s(300)
}

func TestCreditIsAllThereIs(t *testing.T) {
	store := &memStore{days: map[string]int64{"2026-11-01": 900}}
	g := budget.New(store, budget.Config{CreditMicros: 1000, Refresh: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := g.Reserve(ctx, 200); err == nil {
		t.Fatal("spent past the credit")
	}
	st := g.Status(context.Background())
	if st.CreditRemainingMicros != 100 || !st.Exhausted {
		t.Errorf("status = %+v, want 100 left, exhausted", st)
	}
}
