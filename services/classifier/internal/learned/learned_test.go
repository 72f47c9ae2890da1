package learned_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/learned"
	"mailroom.dev/services/classifier/internal/sqlrepo"
)

// model is a language model stand-in: it answers category for every mail
// (with confidence), and counts the calls and remembers the examples it was
// shown.
type model struct {
	mu         sync.Mutex
	category   string
	confidence float64
	calls      int
	examples   []classify.Example
}

func (m *model) Classify(_ context.Context, req classify.Request) (classify.Verdict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.examples = req.Examples
	return classify.Verdict{Category: m.category, Confidence: m.confidence, Confident: true, Source: classify.SourceLLM, Model: "gpt-4o-mini"}, nil
}

func (m *model) set(category string) {
	m.mu.Lock()
	m.category = category
	m.mu.Unlock()
}

func (m *model) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

func repos(t *testing.T) map[string]*sqlrepo.Repo {
	out := map[string]*sqlrepo.Repo{}
	for name, url := range testenv.DatabaseURLs() {
		db, err := sqlrepo.Open(context.Background(), url(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		out[name] = sqlrepo.New(db.SQL)
	}
	return out
}

func mail(id, from, subject string, headers ...classify.Header) classify.Request {
	return classify.Request{User: "ada", ID: "users/ada/messages/" + id, Taxonomy: classify.DefaultTaxonomy(),
		Message: classify.Message{From: from, Subject: subject, Headers: headers}}
}

// ids returns n mail ids that the sample at rate leaves alone, and
// one it takes.
func ids(_ *testing.T, rate float64, n int) (plain []string, sampled string) {
	for i := 0; len(plain) < n || sampled == ""; i++ {
		id := fmt.Sprintf("m%d", i)
		if learned.Sampled("users/ada/messages/"+id, rate) {
			if sampled == "" {
				sampled = id
			}
		} else if len(plain) < n {
			plain = append(plain, id)
		}
	}
	return plain, sampled
}

func TestSenderIsLearnedAfterThresholdAndSampleResetsIt(t *testing.T) {
	for name, repo := range repos(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			m := &model{category: "finance", confidence: 0.9}
			tier := learned.New(repo, m, learned.Config{Threshold: 3, SampleRate: 0.05})
			plain, sampled := ids(t, 0.05, 10)
			from := "Shop Receipts <receipts@shop.example>"

			for i, id := range plain[:3] {
				v, err := tier.Classify(ctx, mail(id, from, "Your receipt"))
				if err != nil || v.Source != classify.SourceLLM {
					t.Fatalf("verdict %d = %+v, %v; want the model's (not learned yet)", i, v, err)
				}
			}
			v, err := tier.Classify(ctx, mail(plain[3], from, "Another receipt"))
			if err != nil || v.Source != classify.SourceLearned || v.Category != "finance" || v.Usage.Requests != 0 || v.Usage.CostMicros != 0 {
				t.Fatalf("after 3 agreeing verdicts = %+v, %v; want learned finance at no cost", v, err)
			}
			if m.count() != 3 {
				t.Errorf("model calls = %d, want 3", m.count())
			}
			// Another user's mail from the same sender is not learned: records
			// never cross tenants.
			other := mail(plain[4], from, "Your receipt")
			other.User = "bob"
			if v, _ := tier.Classify(ctx, other); v.Source != classify.SourceLLM {
				t.Errorf("bob's mail = %v; want the model's", v.Source)
			}

			// The sample goes to the model, which now disagrees: the record is
			// reset, and the next mail goes to the model again.
			m.set("shopping")
			if v, _ := tier.Classify(ctx, mail(sampled, from, "Receipt")); v.Source != classify.SourceLLM || v.Category != "shopping" {
				t.Fatalf("sampled mail = %+v; want the model's shopping", v)
			}
			if v, _ := tier.Classify(ctx, mail(plain[5], from, "Receipt")); v.Source != classify.SourceLLM {
				t.Fatalf("after a disagreement = %v; want the model again", v.Source)
			}
		})
	}
}

func TestLowConfidenceAndDisagreementDoNotLearn(t *testing.T) {
	repo := repos(t)["sqlite"]
	ctx := context.Background()
	m := &model{category: "work", confidence: 0.6}
	tier := learned.New(repo, m, learned.Config{Threshold: 3, SampleRate: -1})
	for i := range 5 {
		if v, _ := tier.Classify(ctx, mail(fmt.Sprint("low", i), "boss@corp.example", "status")); v.Source != classify.SourceLLM {
			t.Fatalf("low-confidence verdicts were learned (mail %d)", i)
		}
	}
	m.confidence = 0.95
	for i, c := range []string{"work", "work", "personal", "work", "work"} {
		m.set(c)
		if v, _ := tier.Classify(ctx, mail(fmt.Sprint("mixed", i), "boss@corp.example", "status")); v.Source != classify.SourceLLM {
			t.Fatalf("mail %d learned after a broken run: %+v", i, v)
		}
	}
	// work, work, personal, work, work: two in a row so far; the third
	// makes the record.
	if v, _ := tier.Classify(ctx, mail("mixed-5", "boss@corp.example", "status")); v.Source != classify.SourceLLM {
		t.Errorf("third in a row = %v, want the model's", v.Source)
	}
	if v, _ := tier.Classify(ctx, mail("mixed-6", "boss@corp.example", "status")); v.Source != classify.SourceLearned {
		t.Errorf("after 3 agreeing in a row = %v, want learned", v.Source)
	}
}

func TestListIDIsTheSenderOfAList(t *testing.T) {
	repo := repos(t)["sqlite"]
	ctx := context.Background()
	m := &model{category: "newsletters", confidence: 0.9}
	tier := learned.New(repo, m, learned.Config{Threshold: 3, SampleRate: -1})
	list := classify.Header{Name: "List-Id", Value: "Gopher Weekly <weekly.gopherweekly.example>"}
	// Three authors, one list.
	for i, from := range []string{"alice@gopherweekly.example", "bob@gopherweekly.example", "carol@gopherweekly.example"} {
		if _, err := tier.Classify(ctx, mail(fmt.Sprint("l", i), from, "issue", list)); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := tier.Classify(ctx, mail("l3", "dave@gopherweekly.example", "issue", list)); v.Source != classify.SourceLearned {
		t.Errorf("a fourth author on the list = %v, want learned", v.Source)
	}
	if got := learned.Key(classify.Message{Headers: []classify.Header{list}, From: "x@y.example"}); got != "list:weekly.gopherweekly.example" {
		t.Errorf("Key = %q", got)
	}
}

func TestCorrectionIsLearnedAtOnceAndBecomesAnExample(t *testing.T) {
	for name, repo := range repos(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			m := &model{category: "promotions", confidence: 0.9}
			tier := learned.New(repo, m, learned.Config{Threshold: 3, SampleRate: 0.99})
			err := tier.Correct(ctx, learned.Correction{User: "ada", Message: "users/ada/messages/x1", Sender: "Deals@Airline.example",
				From: "Airline <deals@airline.example>", Subject: "Your flight is ready", Category: "travel"}, classify.DefaultTaxonomy())
			if err != nil {
				t.Fatal(err)
			}
			// Even a mail in the sample is not sent: the user said so.
			v, err := tier.Classify(ctx, mail("y1", "Airline <deals@airline.example>", "Check in now"))
			if err != nil || v.Source != classify.SourceLearned || v.Category != "travel" || !strings.Contains(v.Reason, "corrected") {
				t.Fatalf("after a correction = %+v, %v; want learned travel", v, err)
			}
			if m.count() != 0 {
				t.Errorf("model calls = %d, want 0", m.count())
			}
			// Another sender's mail goes to the model, with the correction as
			// an example.
			if _, err := tier.Classify(ctx, mail("z1", "news@other.example", "Hello")); err != nil {
				t.Fatal(err)
			}
			want := []classify.Example{{From: "Airline <deals@airline.example>", Subject: "Your flight is ready", Category: "travel"}}
			if fmt.Sprint(m.examples) != fmt.Sprint(want) {
				t.Errorf("examples shown = %v, want %v", m.examples, want)
			}

			err = tier.Correct(ctx, learned.Correction{User: "ada", Message: "users/ada/messages/x2", Sender: "a@b.example", Category: "vacation"}, classify.DefaultTaxonomy())
			if err == nil || !strings.Contains(err.Error(), `category "vacation" is not in the user's taxonomy`) {
				t.Errorf("a category outside the taxonomy = %v", err)
			}
		})
	}
}

func TestSampleIsDeterministicAndNearItsRate(t *testing.T) {
	n := 0
	for i := range 20000 {
		id := fmt.Sprintf("users/u/messages/%d", i)
		if learned.Sampled(id, 0.05) != learned.Sampled(id, 0.05) {
			t.Fatal("not deterministic")
		}
		if learned.Sampled(id, 0.05) {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("sampled %d of 20000 at 5%%, want about 1000", n)
	}
}

// TestBackfillOfOneSenderAsksTheModelThresholdTimes: a backfill's many
// mails of one sender arrive at once; Threshold go to the model, and the
// rest wait for the record their verdicts make.
func TestBackfillOfOneSenderAsksTheModelThresholdTimes(t *testing.T) {
	repo := repos(t)["sqlite"]
	m := &model{category: "finance", confidence: 0.9}
	tier := learned.New(repo, m, learned.Config{Threshold: 3, SampleRate: -1})
	var wg sync.WaitGroup
	sources := make(chan classify.Source, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := mail(fmt.Sprint("b", i), "Shop <receipts@shop.example>", "receipt")
			req.Lane = classify.LaneBackfill
			v, err := tier.Classify(context.Background(), req)
			if err != nil {
				t.Error(err)
			}
			sources <- v.Source
		}()
	}
	wg.Wait()
	close(sources)
	learnedN := 0
	for s := range sources {
		if s == classify.SourceLearned {
			learnedN++
		}
	}
	if m.count() != 3 || learnedN != 37 {
		t.Errorf("model calls %d, learned %d; want 3 and 37", m.count(), learnedN)
	}
}
