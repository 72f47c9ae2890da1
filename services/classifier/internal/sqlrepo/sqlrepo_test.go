package sqlrepo_test

import (
	"context"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/sqlrepo"
)

func TestRepo(t *testing.T) {
	for name, url := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqlrepo.Open(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			r := sqlrepo.New(db.SQL)
			now := time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC)

			if tax, _, err := r.Taxonomy(ctx, "ada"); err != nil || tax != nil {
				t.Fatalf("unset taxonomy = %v, %v; want nil (the default)", tax, err)
			}
			mine := classify.Taxonomy{{Name: "clients", Description: "Clients."}, {Name: "other", Description: "The rest."}}
			if err := r.SetTaxonomy(ctx, "ada", mine, now); err != nil {
				t.Fatal(err)
			}
			got, at, err := r.Taxonomy(ctx, "ada")
			if err != nil || len(got) != 2 || got[0] != mine[0] || !at.Equal(now) {
				t.Fatalf("taxonomy = %v at %v, %v", got, at, err)
			}
			if err := r.SetTaxonomy(ctx, "ada", mine[1:], now.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := r.Taxonomy(ctx, "ada"); len(got) != 1 {
				t.Fatalf("replaced taxonomy = %v", got)
			}

			k := classify.CacheKey{User: "ada", TaxonomyKey: "tx1", ContentHash: "h1"}
			v := classify.Verdict{Category: "work", Confidence: 0.8, Priority: classify.PriorityHigh, NeedsReply: true, Reason: "a meeting", Model: "gpt-4o-mini"}
			if err := r.Cache(ctx, k, v, now); err != nil {
				t.Fatal(err)
			}
			if err := r.Cache(ctx, k, classify.Verdict{Category: "other", Model: "m"}, now); err != nil {
				t.Fatal(err) // the first verdict stays
			}
			c, ok, err := r.Cached(ctx, k)
			if err != nil || !ok || c.Category != "work" || c.Priority != classify.PriorityHigh || !c.NeedsReply || c.Confidence != 0.8 {
				t.Fatalf("cached = %+v, %v, %v", c, ok, err)
			}
			// Another user with the same content gets nothing of ada's.
			if _, ok, _ := r.Cached(ctx, classify.CacheKey{User: "bob", TaxonomyKey: "tx1", ContentHash: "h1"}); ok {
				t.Error("bob reads ada's cached verdict")
			}

			for _, add := range []struct {
				day string
				n   int64
			}{{"2026-11-28", 500}, {"2026-11-29", 100}, {"2026-11-29", 50}} {
				if err := r.AddSpend(ctx, add.day, add.n); err != nil {
					t.Fatal(err)
				}
			}
			today, total, err := r.Spend(ctx, "2026-11-29")
			if err != nil || today != 150 || total != 650 {
				t.Errorf("spend = %d today, %d total, %v; want 150, 650", today, total, err)
			}

			taxes, cached, err := r.PurgeUser(ctx, "ada")
			if err != nil || taxes != 1 || cached != 1 {
				t.Errorf("purge = %d, %d, %v; want 1, 1", taxes, cached, err)
			}
			if tax, _, _ := r.Taxonomy(ctx, "ada"); tax != nil {
				t.Error("taxonomy survived the purge")
			}
			if _, ok, _ := r.Cached(ctx, k); ok {
				t.Error("cache survived the purge")
			}
		})
	}
}
