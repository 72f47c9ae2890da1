package classify_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/classify"
)

func TestDefaultTaxonomy(t *testing.T) {
	tax := classify.DefaultTaxonomy()
	want := []string{"important", "personal", "work", "finance", "shopping", "travel",
		"newsletters", "promotions", "social", "notifications", "security", "other"}
	if got := tax.Names(); !slices.Equal(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}
	for _, c := range tax {
		if c.Description == "" {
			t.Errorf("%s has no description", c.Name)
		}
	}
	if err := tax.Validate(); err != nil {
		t.Errorf("default taxonomy invalid: %v", err)
	}
	tax[0].Name = "changed"
	if classify.DefaultTaxonomy()[0].Name != "important" {
		t.Error("changing a returned taxonomy changed the default")
	}
}

func TestTaxonomyValidate(t *testing.T) {
	ok := classify.Category{Name: "other", Description: "the rest"}
	tests := []struct {
		name string
		tax  classify.Taxonomy
	}{
		{"empty", nil},
		{"no other", classify.Taxonomy{{Name: "work", Description: "w"}}},
		{"upper case", classify.Taxonomy{ok, {Name: "Work", Description: "w"}}},
		{"space", classify.Taxonomy{ok, {Name: "my work", Description: "w"}}},
		{"duplicate", classify.Taxonomy{ok, {Name: "work", Description: "w"}, {Name: "work", Description: "w"}}},
		{"no description", classify.Taxonomy{ok, {Name: "work"}}},
	}
	for _, tt := range tests {
		if err := tt.tax.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", tt.name)
		}
	}
}

func tier(v classify.Verdict, err error, calls *[]string, name string) classify.Tier {
	return classify.TierFunc(func(context.Context, classify.Request) (classify.Verdict, error) {
		*calls = append(*calls, name)
		return v, err
	})
}

func TestPipeline(t *testing.T) {
	rulesUnsure := classify.Verdict{Category: "work", Confidence: 0.6, Source: classify.SourceRules, Rule: "calendar"}
	rulesSure := classify.Verdict{Category: "newsletters", Confidence: 0.9, Confident: true, Source: classify.SourceRules, Rule: "list-id"}
	llm := classify.Verdict{Category: "travel", Confidence: 0.7, Source: classify.SourceLLM, Model: "m"}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		first     classify.Verdict
		second    classify.Verdict
		secondErr error
		taxonomy  classify.Taxonomy
		wantCat   string
		wantCalls []string
		wantErr   error
	}{
		{"confident first tier skips the next", rulesSure, llm, nil, nil, "newsletters", []string{"rules"}, nil},
		{"unconfident first tier defers to the next", rulesUnsure, llm, nil, nil, "travel", []string{"rules", "llm"}, nil},
		{"abstaining next tier keeps the first verdict", rulesUnsure, classify.Verdict{}, nil, nil, "work", []string{"rules", "llm"}, nil},
		{"a category outside the taxonomy is ignored", rulesUnsure, llm, nil,
			classify.Taxonomy{{Name: "work", Description: "w"}, {Name: "other", Description: "o"}}, "work", []string{"rules", "llm"}, nil},
		{"a confident verdict outside the taxonomy does not stop", rulesSure, llm, nil,
			classify.Taxonomy{{Name: "travel", Description: "t"}, {Name: "other", Description: "o"}}, "travel", []string{"rules", "llm"}, nil},
		{"everyone abstains", classify.Verdict{}, classify.Verdict{}, nil, nil, "other", []string{"rules", "llm"}, nil},
		{"an error stops the pipeline", rulesUnsure, classify.Verdict{}, boom, nil, "", []string{"rules", "llm"}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			p := classify.NewPipeline(tier(tt.first, nil, &calls, "rules"), tier(tt.second, tt.secondErr, &calls, "llm"))
			got, err := p.Classify(context.Background(), classify.Request{User: "ada", Taxonomy: tt.taxonomy})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.Category != tt.wantCat {
				t.Errorf("category = %q, want %q", got.Category, tt.wantCat)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("tiers called = %v, want %v", calls, tt.wantCalls)
			}
			if err == nil && got.Time.IsZero() {
				t.Error("verdict has no time")
			}
		})
	}
}

func TestSender(t *testing.T) {
	tests := []struct {
		m    classify.Message
		want string
	}{
		{classify.Message{FromAddress: " Ada@Example.COM "}, "ada@example.com"},
		{classify.Message{From: "Ada <Ada@Example.com>"}, "ada@example.com"},
		{classify.Message{From: "=?utf-8?q?Ad=C3=A4?= <ada@example.com>"}, "ada@example.com"},
		{classify.Message{From: "not an address"}, ""},
		{classify.Message{}, ""},
	}
	for _, tt := range tests {
		if got := tt.m.Sender(); got != tt.want {
			t.Errorf("Sender(%+v) = %q, want %q", tt.m, got, tt.want)
		}
	}
}

// TestTaxonomyDescriptionsAreBounded: a description is sent in every
// prompt; one of more than MaxDescription characters is refused.
func TestTaxonomyDescriptionsAreBounded(t *testing.T) {
	tax := classify.DefaultTaxonomy()
	tax[0].Description = strings.Repeat("d", classify.MaxDescription)
	if err := tax.Validate(); err != nil {
		t.Fatalf("a description of %d characters: %v", classify.MaxDescription, err)
	}
	tax[0].Description += "d"
	if err := tax.Validate(); err == nil || !strings.Contains(err.Error(), "at most 300 characters") {
		t.Fatalf("a description of %d characters: %v, want refused", classify.MaxDescription+1, err)
	}
}

type mapCache map[classify.CacheKey]classify.Verdict

func (m mapCache) Cached(_ context.Context, k classify.CacheKey) (classify.Verdict, bool, error) {
	v, ok := m[k]
	return v, ok, nil
}

func (m mapCache) Cache(_ context.Context, k classify.CacheKey, v classify.Verdict, _ time.Time) error {
	m[k] = v
	return nil
}

// TestCachedTierRecheckFindsAnotherReplicasVerdict: the paid tier behind
// the cache gets a Recheck that finds a verdict cached while it waited (by
// another replica), as a cache hit that costs nothing.
func TestCachedTierRecheckFindsAnotherReplicasVerdict(t *testing.T) {
	cache := mapCache{}
	req := classify.Request{User: "ada", Message: classify.Message{Subject: "Invoice", Body: "Due in 14 days."}}
	var got classify.Verdict
	var found bool
	next := classify.TierFunc(func(ctx context.Context, r classify.Request) (classify.Verdict, error) {
		if r.Recheck == nil {
			t.Fatal("the paid tier got no Recheck")
		}
		if _, ok := r.Recheck(ctx); ok {
			t.Fatal("Recheck found a verdict before anyone made one")
		}
		// Another replica classifies the same mail meanwhile.
		k := classify.CacheKey{User: "ada", TaxonomyKey: classify.TaxonomyKey(r.Taxonomy), ContentHash: classify.ContentHash(r.Message)}
		cache[k] = classify.Verdict{Category: "finance", Source: classify.SourceLLM, Usage: classify.Usage{Requests: 1}}
		got, found = r.Recheck(ctx)
		return got, nil
	})
	v, err := classify.CachedTier{Cache: cache, Next: next}.Classify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !found || got.Category != "finance" || got.Source != classify.SourceCache || got.Usage.Requests != 0 || v.Source != classify.SourceCache {
		t.Fatalf("recheck gave %+v (found %v), tier answered %+v: want the other replica's verdict as a free cache hit", got, found, v)
	}
}
