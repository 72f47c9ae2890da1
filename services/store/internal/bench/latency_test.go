package bench_test

import (
	"context"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/bench"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

// TestLatencySmoke loads a small fixture on both backends and runs the
// latency mix in process, so that the loader and the measurement of
// `make bench-store` keep working; it also checks that what the loader
// wrote reads back as the fixture's messages.
func TestLatencySmoke(t *testing.T) {
	for name, newURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db, err := sqlrepo.Open(ctx, newURL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			f := bench.Fixture{Users: 3, PerUser: 150, End: time.Now().UTC().Truncate(time.Second)}
			if err := bench.Load(ctx, db, f); err != nil {
				t.Fatalf("Load: %v", err)
			}
			svc := mailstore.NewService(db.Repo, mailstore.Options{})

			want := bench.Message(bench.UserID(1), 0, f.End)
			got, err := svc.Get(ctx, want.User, want.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.Subject != want.Subject || !got.ReceivedTime.Equal(want.ReceivedTime) || got.Classification == nil ||
				got.Classification.Category != bench.Categories[0] || got.FromAddress != want.FromAddress {
				t.Errorf("loaded message = %+v, want the fixture's %+v", got, want)
			}
			if s, err := svc.Stats(ctx, want.User); err != nil || s.Total != 150 || s.Pending != 15 {
				t.Errorf("stats of a fixture user = %+v, %v; want 150 messages, 15 pending", s, err)
			}

			qs := bench.Mix(f, 60, 1)
			for path, list := range map[string]bench.Lister{
				"repository": bench.RepoLister(svc),
				"grpc":       bench.GRPCLister(svc),
			} {
				s, err := bench.Measure(ctx, list, qs)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if all := s.All(); len(all) != len(qs) || bench.Percentile(all, 99) <= 0 {
					t.Errorf("%s: %d latencies, p99 %v", path, len(all), bench.Percentile(all, 99))
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := bench.Percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
}
