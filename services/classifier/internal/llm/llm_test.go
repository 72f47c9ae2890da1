package llm_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
)

type fixture struct {
	fake *fakeopenai.Server
	tier *llm.Tier
	lim  *limiter.Limiter
	logs *bytes.Buffer
}

func setup(t *testing.T, fakeCfg fakeopenai.Config, tune func(*llm.Config)) *fixture {
	t.Helper()
	if fakeCfg.Keys == nil {
		fakeCfg.Keys = map[string]fakeopenai.Limits{"sk-test-key-0001": {RPM: 6000, TPM: 1_000_000}}
	}
	fake, url, stop, err := fakeopenai.Start(fakeCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	lim := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "key-1", RPM: 6000, TPM: 1_000_000}}})
	logs := &bytes.Buffer{}
	cfg := llm.Config{
		BaseURL:        url + "/v1",
		Model:          "gpt-4o-mini",
		Keys:           []llm.Key{{ID: "key-1", Secret: "sk-test-key-0001"}},
		Limiter:        lim,
		RequestTimeout: 2 * time.Second,
		MaxAttempts:    3,
		BackoffBase:    time.Millisecond,
		BackoffCap:     5 * time.Millisecond,
		Logger:         slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, nil)),
	}
	if tune != nil {
		tune(&cfg)
	}
	tier, err := llm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{fake: fake, tier: tier, lim: lim, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func request(subject, body string) classify.Request {
	return classify.Request{
		User:     "ada",
		Lane:     classify.LaneBackfill,
		Taxonomy: classify.DefaultTaxonomy(),
		Message: classify.Message{
			Subject: subject,
			From:    "Someone <someone@example.com>",
			Body:    body,
		},
	}
}

func TestClassifyThroughTheRealClient(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, nil)
	v, err := f.tier.Classify(context.Background(), request("Your invoice for November", "Please find the invoice attached; payment is due in 14 days."))
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != classify.SourceLLM || !classify.DefaultTaxonomy().Has(v.Category) || !v.Confident {
		t.Fatalf("verdict %+v: want a confident LLM verdict inside the taxonomy", v)
	}
	if v.Category != "finance" {
		t.Errorf("category = %q, want finance (the fake reads 'invoice')", v.Category)
	}
	if v.Model == "" || v.Usage.Requests != 1 || v.Usage.PromptTokens == 0 || v.Usage.CompletionTokens == 0 || v.Usage.CostMicros <= 0 {
		t.Errorf("usage %+v / model %q: want one request with tokens and a cost", v.Usage, v.Model)
	}
	// Admission cost known before sending: the tier's own count of the
	// prompt is exactly what the server counted.
	st := f.fake.Stats().Keys["sk-test-key-0001"]
	if st.AdmittedTokens != v.Usage.PromptTokens+120 {
		t.Errorf("server admitted %d tokens; the tier counted %d prompt + 120 completion", st.AdmittedTokens, v.Usage.PromptTokens)
	}
	if st.PromptTokens != v.Usage.PromptTokens {
		t.Errorf("server counted %d prompt tokens, the answer's usage says %d", st.PromptTokens, v.Usage.PromptTokens)
	}
}

func TestRateLimitStormIsNeverAFailure(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, func(c *llm.Config) { c.MaxAttempts = 1 })
	f.fake.Inject(fakeopenai.RateLimitStorm(20*time.Millisecond), 5)
	v, err := f.tier.Classify(context.Background(), request("Weekly digest", "Unsubscribe at any time."))
	if err != nil {
		t.Fatalf("a 429 storm made the message fail: %v", err)
	}
	if v.Usage.Requests != 6 {
		t.Errorf("requests = %d, want 6 (5 rate-limited, then the answer)", v.Usage.Requests)
	}
	s := f.lim.Status().Keys[0]
	if s.RateLimitedLastMinute != 5 || s.RetriesLastMinute != 5 {
		t.Errorf("limiter saw %d 429s and %d retries, want 5 and 5", s.RateLimitedLastMinute, s.RetriesLastMinute)
	}
}

func TestFailuresRetryThenGiveUp(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault fakeopenai.Fault
	}{
		{"500", fakeopenai.ServerError},
		{"503", fakeopenai.Fault{Kind: fakeopenai.FaultOverloaded}},
		{"invalid JSON", fakeopenai.Fault{Kind: fakeopenai.FaultInvalidJSON}},
		{"outside the enum", fakeopenai.Fault{Kind: fakeopenai.FaultOutsideEnum}},
		{"connection reset", fakeopenai.Fault{Kind: fakeopenai.FaultConnReset}},
		{"timeout", fakeopenai.Slow(5 * time.Second)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, fakeopenai.Config{}, func(c *llm.Config) { c.RequestTimeout = 300 * time.Millisecond })
			// Two failures, then an answer: classified on the third attempt.
			f.fake.Inject(tt.fault, 2)
			v, err := f.tier.Classify(context.Background(), request("Hello", "Lunch tomorrow?"))
			if err != nil {
				t.Fatalf("two failures then success: %v", err)
			}
			if v.Usage.Requests != 3 {
				t.Errorf("requests = %d, want 3", v.Usage.Requests)
			}
			// Three failures: MaxAttempts is 3, the tier gives up.
			f.fake.Inject(tt.fault, 3)
			_, err = f.tier.Classify(context.Background(), request("Hello", "Lunch tomorrow?"))
			var giveUp *classify.GiveUpError
			if !errors.As(err, &giveUp) || giveUp.Attempts != 3 {
				t.Fatalf("three failures: err = %v, want a GiveUpError after 3 attempts", err)
			}
			if strings.Contains(giveUp.Reason, "Lunch") {
				t.Errorf("the reason quotes the mail: %q", giveUp.Reason)
			}
		})
	}
}

func TestWaitsForTheBudget(t *testing.T) {
	b := &fakeBudget{allow: make(chan struct{}), settled: make(chan int64, 1)}
	f := setup(t, fakeopenai.Config{}, func(c *llm.Config) { c.Budget = b })
	done := make(chan error, 1)
	go func() {
		_, err := f.tier.Classify(context.Background(), request("Hi", "How are you?"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("classified while the budget was exhausted: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if n := f.fake.Stats().Keys["sk-test-key-0001"].Requests; n != 0 {
		t.Fatalf("%d requests sent while the budget was exhausted", n)
	}
	close(b.allow)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Settled off the verdict's way, soon after.
	select {
	case settled := <-b.settled:
		if settled <= 0 || settled > b.reserved {
			t.Errorf("settled %d of a reservation of %d, want the actual cost, no more than reserved", settled, b.reserved)
		}
	case <-time.After(10 * time.Second):
		t.Error("the reservation was never settled")
	}
}

type fakeBudget struct {
	allow    chan struct{}
	reserved int64
	settled  chan int64
}

func (b *fakeBudget) Reserve(ctx context.Context, estimate int64) (func(int64), error) {
	select {
	case <-b.allow:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.reserved = estimate
	return func(actual int64) { b.settled <- actual }, nil
}

func TestSecretsAndMailStayOutOfLogs(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, nil)
	f.fake.Inject(fakeopenai.ServerError, 1)
	if _, err := f.tier.Classify(context.Background(), request("Top secret merger", "The merger closes Friday.")); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	for _, s := range []string{"sk-test-key-0001", "merger", "Friday"} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, "attempt failed") {
		t.Errorf("the failed attempt was not logged:\n%s", logs)
	}
}

// TestEscalationAsksTheSecondModel: mail the first model calls important
// is asked again of the escalation model, whose verdict wins; other mail is
// asked once.
func TestEscalationAsksTheSecondModel(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, func(c *llm.Config) {
		c.EscalateModel = "gpt-4o"
		c.EscalateCategories = []string{"important"}
	})
	v, err := f.tier.Classify(context.Background(), request("Action required: sign the contract today", "This is urgent, please reply asap."))
	if err != nil {
		t.Fatal(err)
	}
	if v.Category != "important" || v.Model != "gpt-4o" || v.Usage.Requests != 2 {
		t.Fatalf("urgent mail: category %q by %q in %d requests; want important by gpt-4o in 2", v.Category, v.Model, v.Usage.Requests)
	}
	escalated := v.Usage.CostMicros
	v, err = f.tier.Classify(context.Background(), request("Your invoice for November", "Payment is due in 14 days."))
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt-4o-mini" || v.Usage.Requests != 1 {
		t.Fatalf("invoice: by %q in %d requests; want gpt-4o-mini once", v.Model, v.Usage.Requests)
	}
	// gpt-4o costs ~17× gpt-4o-mini: the escalated mail's cost counts it.
	if escalated < 5*v.Usage.CostMicros {
		t.Errorf("escalated mail cost %d µ$, a gpt-4o-mini call %d µ$: the gpt-4o call is not priced", escalated, v.Usage.CostMicros)
	}
	models := map[string]bool{}
	for _, k := range f.lim.Status().Keys {
		models[k.Model] = true
	}
	if !models["gpt-4o"] || !models["gpt-4o-mini"] {
		t.Errorf("limiter pools %v, want one per model", models)
	}
}

// TestTooLargeForTheLimitGivesUpWithoutSending: a mail whose request can
// never fit the model's token limit is given up at once (it goes to the
// dead letters), and nothing is sent.
func TestTooLargeForTheLimitGivesUpWithoutSending(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, func(c *llm.Config) {
		c.Limiter = limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "key-1", RPM: 6000, TPM: 200}}})
	})
	_, err := f.tier.Classify(context.Background(), request("Hello", "A mail like any other."))
	var gu *classify.GiveUpError
	if !errors.As(err, &gu) || !strings.Contains(gu.Reason, "larger than") {
		t.Fatalf("err = %v, want a GiveUpError saying the request is larger than the limit", err)
	}
	if n := f.fake.Stats().Keys["sk-test-key-0001"].Requests; n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
}

// TestEveryFieldIsCappedByTokens: a 240 KB subject, a huge From, headers
// and attachment names of any length, and a 5 MB body make a prompt no
// larger than an ordinary mail's plus the caps (issue 11: one user's huge
// mail must not hold the buckets for everyone else).
func TestEveryFieldIsCappedByTokens(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, nil)
	ordinary, err := f.tier.Classify(context.Background(), request("Lunch?", "Are you free on Thursday?"))
	if err != nil {
		t.Fatal(err)
	}
	huge := request(strings.Repeat("subject ", 30_000), strings.Repeat("body text ", 500_000))
	huge.Message.From = strings.Repeat("Someone Important ", 10_000) + "<a@example.com>"
	huge.Message.Headers = []classify.Header{{Name: "List-Id", Value: strings.Repeat("x", 100_000)}, {Name: "Reply-To", Value: strings.Repeat("reply ", 20_000)}}
	for range 50 {
		huge.Message.Attachments = append(huge.Message.Attachments, classify.Attachment{Filename: strings.Repeat("name", 10_000)})
	}
	v, err := f.tier.Classify(context.Background(), huge)
	if err != nil {
		t.Fatal(err)
	}
	// 1,500 body tokens + 120 subject + 60 from + 2 × 60 headers + 10 × 20 names.
	if extra := v.Usage.PromptTokens - ordinary.Usage.PromptTokens; extra > 1500+120+60+120+200+100 {
		t.Errorf("the huge mail's prompt is %d tokens over an ordinary one's, want at most the caps (~2,100)", extra)
	}
}

// TestRecheckAfterTheWaitSendsNothing: when the verdict another replica
// made for the mail is found after the wait for capacity (Request.Recheck,
// the verdict cache's), the tier answers with it, gives the capacity back
// and sends nothing (chaos: a replica paused past AckWait, whose mail
// another replica classified meanwhile, paid for it again).
func TestRecheckAfterTheWaitSendsNothing(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, nil)
	req := request("Your invoice for November", "Payment is due in 14 days.")
	rechecked := 0
	req.Recheck = func(context.Context) (classify.Verdict, bool) {
		rechecked++
		return classify.Verdict{Category: "finance", Source: classify.SourceCache, Confident: true}, true
	}
	v, err := f.tier.Classify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if rechecked != 1 || v.Source != classify.SourceCache || v.Category != "finance" || v.Usage.Requests != 0 {
		t.Fatalf("verdict %+v after %d rechecks: want the cached verdict, one recheck, no request", v, rechecked)
	}
	if n := f.fake.Stats().Keys["sk-test-key-0001"].Requests; n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
	if s := f.lim.Status().Keys[0]; s.InFlight != 0 {
		t.Errorf("%d permits in flight after the recheck, want 0 (capacity given back)", s.InFlight)
	}
	// Nothing found: the model is asked as usual.
	req.Recheck = func(context.Context) (classify.Verdict, bool) { return classify.Verdict{}, false }
	if v, err := f.tier.Classify(context.Background(), req); err != nil || v.Source != classify.SourceLLM || v.Usage.Requests != 1 {
		t.Fatalf("verdict %+v, %v: want the model's, one request", v, err)
	}
}

// TestNotOwnedAfterTheWaitSendsNothing: when the request's delivery is no
// longer this process's after the wait for capacity (Request.StillOwned:
// it outlived AckWait and went to another replica), the tier gives the
// capacity back, sends nothing and says so (classify.ErrNotOwned).
func TestNotOwnedAfterTheWaitSendsNothing(t *testing.T) {
	f := setup(t, fakeopenai.Config{}, nil)
	req := request("Lunch on Thursday?", "Shall we meet at noon?")
	asked, rechecked := 0, 0
	req.StillOwned = func() bool { asked++; return false }
	req.Recheck = func(context.Context) (classify.Verdict, bool) { rechecked++; return classify.Verdict{}, false }
	_, err := f.tier.Classify(context.Background(), req)
	if !errors.Is(err, classify.ErrNotOwned) {
		t.Fatalf("err = %v, want classify.ErrNotOwned", err)
	}
	if asked != 1 || rechecked != 1 {
		t.Errorf("asked %d times, rechecked %d; want 1, 1 (the ownership last, right before the request)", asked, rechecked)
	}
	if n := f.fake.Stats().Keys["sk-test-key-0001"].Requests; n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
	if s := f.lim.Status().Keys[0]; s.InFlight != 0 {
		t.Errorf("%d permits in flight, want 0 (capacity given back)", s.InFlight)
	}
	// Still ours: the model is asked as usual.
	req.StillOwned = func() bool { return true }
	if v, err := f.tier.Classify(context.Background(), req); err != nil || v.Source != classify.SourceLLM || v.Usage.Requests != 1 {
		t.Fatalf("verdict %+v, %v: want the model's, one request", v, err)
	}
}
