// Package llm is the classifier's language-model tier: one OpenAI Chat
// Completions call per message, with Structured Outputs (a strict JSON
// schema whose category enum is the user's taxonomy), sent only when the
// limiter admits it and the budget allows it.
//
// The prompt is a stable system message (instructions, then the taxonomy)
// and a user message holding the mail, fenced as data and truncated by
// tokens. Prompt tokens are counted exactly (o200k_base, offline) and
// max_completion_tokens is small, so the admission cost is known before
// sending.
//
// The SDK's own retries are off: the limiter sees every attempt. A 429
// freezes the key (the limiter does that) and the request waits and goes
// again; it never counts as a failure. A 5xx, a timeout, a reset connection
// or an answer that breaks the schema is a failure: the request backs off
// exponentially with full jitter and tries again, up to MaxAttempts, then
// the tier gives up (classify.GiveUpError) and the message is dead-lettered.
//
// A circuit breaker (Config.Breaker) tells an outage from a bad mail:
// failures of the API itself (5xx, timeouts, no connection, a revoked key
// or an exhausted quota) that come in a row open it, and then every
// request waits (the message held, its delivery not spent) while one at a
// time probes the API; such failures while it is open count against no
// mail. A mail that fails while others succeed uses up its attempts.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"mailroom.dev/platform/breaker"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/pricing"
)

// Key is one API key (one organization).
type Key struct {
	// ID names the key in the limiter and in reports.
	ID string
	// Secret is the key itself.
	Secret string
}

// Price is a model's price in US dollars per million tokens.
type Price = pricing.Price

// Prices are the list prices of models mailroom knows (pricing.Defaults).
var Prices = pricing.Defaults()

// Budget keeps spending within limits. Reserve blocks until a request of
// the estimated cost may be sent (or ctx ends) and returns a function that
// settles the reservation with the actual cost (the tier may call it after
// Classify returned, from another goroutine).
type Budget interface {
	Reserve(ctx context.Context, estimateMicros int64) (settle func(actualMicros int64), err error)
}

// Config configures a Tier.
type Config struct {
	// BaseURL is the API's base URL, for example https://api.openai.com/v1.
	BaseURL string
	// Model is the chat model.
	Model string
	// EscalateModel, when set, is asked again about mail that Model puts in
	// one of EscalateCategories (say gpt-4o for what gpt-4o-mini calls
	// important); its verdict wins.
	EscalateModel      string
	EscalateCategories []string
	Keys               []Key
	// Limiter admits requests; its keys are Keys' IDs.
	Limiter *limiter.Limiter
	// Budget, when set, guards spending.
	Budget Budget
	// Prices prices the models (default pricing.Defaults()). A model it
	// does not price costs 0 here: the service refuses to run with a budget
	// and an unpriced model (pricing.Table.Missing).
	Prices pricing.Table
	// MaxCompletionTokens is the answer's token cap (default 120: the JSON
	// answer takes ~40).
	MaxCompletionTokens int
	// MaxBodyTokens bounds the mail text sent (default 1500).
	MaxBodyTokens int
	// RequestTimeout bounds one request (default 30 s).
	RequestTimeout time.Duration
	// MaxAttempts bounds the failed attempts before giving up (default 4).
	MaxAttempts int
	// Breaker, when set, holds every request while the API is down.
	Breaker *breaker.Breaker
	// BackoffBase and BackoffCap shape the backoff after a failure
	// (defaults 500 ms and 30 s): attempt n waits a random time up to
	// min(cap, base·2ⁿ).
	BackoffBase, BackoffCap time.Duration
	// HTTPClient sends the requests (default: one keeping up to 2,000 idle
	// connections to the API).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// MeterProvider makes the tier's instruments (mailroom_llm_*); nil
	// means the global one.
	MeterProvider metric.MeterProvider
	// TracerProvider makes the span of each model call; nil means the
	// global one.
	TracerProvider trace.TracerProvider
}

// Tier classifies with the language model.
type Tier struct {
	cfg      Config
	clients  map[string]openai.Client
	tok      *tokens
	prices   pricing.Table
	escalate map[string]bool
	logger   *slog.Logger
	metrics  *metrics
	tracer   trace.Tracer
}

// New returns a tier.
func New(cfg Config) (*Tier, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("llm: no API keys")
	}
	if cfg.Limiter == nil {
		return nil, errors.New("llm: no limiter")
	}
	if cfg.MaxCompletionTokens <= 0 {
		cfg.MaxCompletionTokens = 120
	}
	if cfg.MaxBodyTokens <= 0 {
		cfg.MaxBodyTokens = 1500
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	if cfg.BackoffCap <= 0 {
		cfg.BackoffCap = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		// Hundreds of requests are in flight at full rate; the default
		// transport keeps two idle connections per host and would dial
		// anew for nearly every request.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 2000
		tr.MaxIdleConnsPerHost = 2000
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Prices == nil {
		cfg.Prices = pricing.Defaults()
	}
	tok, err := newTokens()
	if err != nil {
		return nil, err
	}
	t := &Tier{cfg: cfg, clients: map[string]openai.Client{}, tok: tok, logger: cfg.Logger,
		prices: cfg.Prices, escalate: map[string]bool{},
		metrics: newMetrics(cfg.MeterProvider), tracer: newTracer(cfg.TracerProvider)}
	if cfg.EscalateModel != "" {
		for _, c := range cfg.EscalateCategories {
			t.escalate[strings.ToLower(strings.TrimSpace(c))] = true
		}
	}
	for _, k := range cfg.Keys {
		opts := []option.RequestOption{
			option.WithAPIKey(k.Secret),
			option.WithHTTPClient(cfg.HTTPClient),
			option.WithMaxRetries(0), // the limiter sees every attempt
		}
		if cfg.BaseURL != "" {
			opts = append(opts, option.WithBaseURL(cfg.BaseURL))
		}
		t.clients[k.ID] = openai.NewClient(opts...)
	}
	return t, nil
}

// Model returns the model in use.
func (t *Tier) Model() string { return t.cfg.Model }

// answer is the JSON the schema asks for.
type answer struct {
	Category   string  `json:"category"`
	Confidence float64 `json:"confidence"`
	Priority   string  `json:"priority"`
	NeedsReply bool    `json:"needs_reply"`
	Reason     string  `json:"reason"`
}

func schema(t classify.Taxonomy) map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"category":    map[string]any{"type": "string", "enum": t.Names(), "description": "The category's name."},
			"confidence":  map[string]any{"type": "number", "description": "0 to 1."},
			"priority":    map[string]any{"type": "string", "enum": []string{"low", "normal", "high"}},
			"needs_reply": map[string]any{"type": "boolean"},
			"reason":      map[string]any{"type": "string", "description": "At most twelve words; no quotes from the email."},
		},
		"required":             []string{"category", "confidence", "priority", "needs_reply", "reason"},
		"additionalProperties": false,
	}
}

// Classify asks the model, and the escalation model when the first puts the
// mail in one of the escalation categories. It blocks while the limiter or
// the budget makes the request wait, and returns a *classify.GiveUpError
// when every attempt failed.
func (t *Tier) Classify(ctx context.Context, req classify.Request) (classify.Verdict, error) {
	tax := req.Taxonomy
	if len(tax) == 0 {
		tax = classify.DefaultTaxonomy()
	}
	v, err := t.ask(ctx, req, tax, t.cfg.Model, classify.Usage{})
	if err != nil || t.cfg.EscalateModel == "" || v.Source != classify.SourceLLM || !t.escalate[strings.ToLower(v.Category)] {
		return v, err
	}
	return t.ask(ctx, req, tax, t.cfg.EscalateModel, v.Usage)
}

// ask asks one model, adding its usage to usage.
func (t *Tier) ask(ctx context.Context, req classify.Request, tax classify.Taxonomy, model string, usage classify.Usage) (classify.Verdict, error) {
	params, promptTokens := t.params(req, tax, model)
	admission := promptTokens + t.cfg.MaxCompletionTokens

	var (
		failures []string
		retry    bool
	)
	for {
		// While the API is down the request waits here, before it takes
		// budget or rate-limit capacity.
		ticket, err := t.cfg.Breaker.Wait(ctx)
		if err != nil {
			return classify.Verdict{}, err
		}
		settle := func(int64) {}
		if t.cfg.Budget != nil {
			s, err := t.cfg.Budget.Reserve(ctx, t.cost(model, int64(promptTokens), 0, int64(t.cfg.MaxCompletionTokens)))
			if err != nil {
				ticket.Release()
				return classify.Verdict{}, err
			}
			settle = s
		}
		permit, err := t.cfg.Limiter.Acquire(ctx, limiter.Request{User: req.User, Lane: LimiterLane(req.Lane), Model: model, Tokens: admission, Retry: retry})
		if errors.Is(err, limiter.ErrTooLarge) {
			settle(0)
			ticket.Release()
			failures = append(failures, fmt.Sprintf("the request (%d tokens) is larger than %s's token limit", admission, model))
			return classify.Verdict{}, &classify.GiveUpError{Attempts: len(failures), Reason: summarize(failures), Usage: usage}
		}
		if err != nil {
			settle(0)
			ticket.Release()
			return classify.Verdict{}, err
		}
		if req.Recheck != nil {
			// The wait may have been long (a backlog, or this process
			// paused): another replica may have answered for this mail.
			if v, ok := req.Recheck(ctx); ok {
				permit.Cancel()
				settle(0)
				ticket.Release()
				v.Usage = usage
				return v, nil
			}
		}
		if req.StillOwned != nil && !req.StillOwned() {
			// The delivery outlived AckWait while the request waited
			// (this process was stopped or starved): another replica has
			// the mail now. Give the capacity back and pay nothing. Asked
			// last, nothing slow between it and the request.
			permit.Cancel()
			settle(0)
			ticket.Release()
			t.logger.DebugContext(ctx, "the mail's delivery outlived AckWait while it waited; abandoned before the model call")
			return classify.Verdict{}, classify.ErrNotOwned
		}
		if usage.Requests == 0 {
			t.metrics.sent(ctx, req)
		}
		retry = true
		sent := time.Now()
		cctx, span := t.startSpan(ctx, model, permit.Key)
		res := t.call(cctx, permit.Key, params)
		took := time.Since(sent)
		permit.Done(res.outcome)
		cost := t.cost(model, res.prompt, res.cached, res.completion)
		// The spend goes to the database off the verdict's way: a verdict
		// the process holds and has not recorded yet (in the verdict
		// cache) when it is stopped is paid for again by the replica the
		// mail is redelivered to.
		go settle(cost)
		usage.Add(model, false, res.prompt, res.cached, res.completion, cost)
		var (
			v       classify.Verdict
			problem string
		)
		if res.err == nil && !res.rateLimited {
			v, problem = verdict(res.content, res.refusal, tax)
		}
		outcome := outcomeOf(res, problem)
		t.metrics.call(ctx, model, permit.Key, outcome, took, res, cost)
		endSpan(span, outcome, res)

		if res.rateLimited {
			// Not a failure: the key is frozen until the named reset, and
			// the request waits in the limiter for it.
			ticket.Release()
			continue
		}
		if ctx.Err() != nil {
			ticket.Release()
			return classify.Verdict{}, ctx.Err()
		}
		if res.dependency {
			if ticket.Failure() {
				// The API is down, not this mail: hold it, count nothing.
				t.logger.WarnContext(ctx, "language model unavailable; holding the message", "key", permit.Key, "status", res.outcome.Status, "error", res.err.Error())
				continue
			}
		} else {
			// The API answered (perhaps badly for this mail): it is up.
			ticket.Success()
		}
		if res.err == nil {
			if problem == "" {
				v.Model = res.model
				v.Usage = usage
				return v, nil
			}
			res.err, res.permanent = errors.New(problem), false
		}
		failures = append(failures, res.err.Error())
		t.logger.WarnContext(ctx, "language model attempt failed", "attempt", len(failures), "key", permit.Key, "status", res.outcome.Status, "error", res.err.Error())
		if res.permanent && !res.dependency || len(failures) >= t.cfg.MaxAttempts {
			return classify.Verdict{}, &classify.GiveUpError{Attempts: len(failures), Reason: summarize(failures), Usage: usage}
		}
		if err := sleep(ctx, backoff(len(failures), t.cfg.BackoffBase, t.cfg.BackoffCap)); err != nil {
			return classify.Verdict{}, err
		}
	}
}

// params builds the request of req for model and counts its prompt tokens.
func (t *Tier) params(req classify.Request, tax classify.Taxonomy, model string) (openai.ChatCompletionNewParams, int) {
	taxKey := classify.TaxonomyKey(tax)
	system := systemPrompt(tax)
	user := userPrompt(req.Message, t.tok, t.cfg.MaxBodyTokens)
	messages := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(system)}
	promptTokens := t.tok.prompt(taxKey, system, user)
	if ex := examplesPrompt(req.Examples, t.tok); ex != "" {
		messages = append(messages, openai.SystemMessage(ex))
		promptTokens += tokensPerMessage + t.tok.count("system") + t.tok.count(ex)
	}
	messages = append(messages, openai.UserMessage(user))
	return openai.ChatCompletionNewParams{
		Model:               shared.ChatModel(model),
		Messages:            messages,
		MaxCompletionTokens: openai.Int(int64(t.cfg.MaxCompletionTokens)),
		Temperature:         openai.Float(0),
		PromptCacheKey:      openai.String("mailroom-" + taxKey),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
					Name:   "classification",
					Strict: openai.Bool(true),
					Schema: schema(tax),
				},
			},
		},
	}, promptTokens
}

// BatchRequest is the request body of one mail for the Batch API (a line's
// body), for the tier's model, with its prompt tokens and the most its
// answer may cost in completion tokens.
func (t *Tier) BatchRequest(req classify.Request) (body openai.ChatCompletionNewParams, promptTokens, maxCompletion int) {
	tax := req.Taxonomy
	if len(tax) == 0 {
		tax = classify.DefaultTaxonomy()
	}
	p, n := t.params(req, tax, t.cfg.Model)
	return p, n, t.cfg.MaxCompletionTokens
}

// BatchVerdict turns a batch line's chat completion into a verdict, with
// the usage at the model's batch price; problem says what is wrong with an
// answer that cannot be used (the mail then goes to the realtime path).
func (t *Tier) BatchVerdict(req classify.Request, c *openai.ChatCompletion) (v classify.Verdict, problem string) {
	tax := req.Taxonomy
	if len(tax) == 0 {
		tax = classify.DefaultTaxonomy()
	}
	if len(c.Choices) == 0 {
		return classify.Verdict{}, "the answer has no choices"
	}
	v, problem = verdict(c.Choices[0].Message.Content, c.Choices[0].Message.Refusal, tax)
	p, _ := t.prices.Lookup(t.cfg.Model)
	u := c.Usage
	cost := p.Batch().CostMicros(u.PromptTokens, u.PromptTokensDetails.CachedTokens, u.CompletionTokens)
	v.Usage.Add(t.cfg.Model, true, u.PromptTokens, u.PromptTokensDetails.CachedTokens, u.CompletionTokens, cost)
	v.Model = c.Model
	return v, problem
}

// BatchCostMicros is the most a batch line of promptTokens may cost.
func (t *Tier) BatchCostMicros(promptTokens int) int64 {
	p, _ := t.prices.Lookup(t.cfg.Model)
	return p.Batch().CostMicros(int64(promptTokens), 0, int64(t.cfg.MaxCompletionTokens))
}

// result is one attempt's outcome.
type result struct {
	outcome     limiter.Outcome
	rateLimited bool
	// err is a failure; permanent when trying again cannot help (a 400).
	err       error
	permanent bool
	// dependency marks a failure of the API rather than of the request:
	// a 5xx, a timeout, no answer, a key refused (401, 403), a model not
	// found (404) or an exhausted quota. The breaker counts those.
	dependency bool
	content    string
	refusal    string
	model      string
	prompt     int64
	cached     int64
	completion int64
}

func (t *Tier) call(ctx context.Context, keyID string, params openai.ChatCompletionNewParams) result {
	ctx, cancel := requestContext(ctx, t.cfg.RequestTimeout)
	defer cancel()
	var httpResp *http.Response
	client := t.clients[keyID]
	resp, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&httpResp))
	var r result
	if httpResp != nil {
		r.outcome.Status = httpResp.StatusCode
		r.outcome.Header = httpResp.Header
	}
	if err != nil {
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			r.outcome.Status = apiErr.StatusCode
			if apiErr.Response != nil {
				r.outcome.Header = apiErr.Response.Header
			}
			r.outcome.Body = apiErr.Message
			switch {
			case apiErr.StatusCode == http.StatusTooManyRequests && limiter.IsTooLarge(apiErr.Message):
				// The request alone exceeds the limit: waiting cannot help.
				r.err = fmt.Errorf("model API answered %d (request too large)", apiErr.StatusCode)
				r.permanent = true
			case apiErr.StatusCode == http.StatusTooManyRequests && apiErr.Code != "insufficient_quota":
				r.rateLimited = true
			case apiErr.StatusCode >= 500 || apiErr.StatusCode == http.StatusRequestTimeout || apiErr.StatusCode == http.StatusConflict:
				r.err = fmt.Errorf("model API answered %d", apiErr.StatusCode)
				r.dependency = true
			case apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden ||
				apiErr.StatusCode == http.StatusNotFound || apiErr.StatusCode == http.StatusTooManyRequests:
				// The key, the model or the account, not this mail:
				// the same for every mail until someone fixes it.
				r.err = fmt.Errorf("model API answered %d (%s)", apiErr.StatusCode, safeCode(apiErr.Code))
				r.permanent, r.dependency = true, true
			default:
				// 400, 401, 403, 404, and 429 insufficient_quota: asking
				// again will not help.
				r.err = fmt.Errorf("model API answered %d (%s)", apiErr.StatusCode, safeCode(apiErr.Code))
				r.permanent = true
			}
			return r
		}
		// No answer: a timeout, a reset connection, a refused dial.
		r.outcome.Status = 0
		r.err = fmt.Errorf("no answer from the model API: %s", transportReason(ctx, err))
		r.dependency = true
		return r
	}
	r.model = resp.Model
	r.prompt = resp.Usage.PromptTokens
	r.cached = resp.Usage.PromptTokensDetails.CachedTokens
	r.completion = resp.Usage.CompletionTokens
	if len(resp.Choices) == 0 {
		r.err = errors.New("the answer has no choices")
		return r
	}
	r.content = resp.Choices[0].Message.Content
	r.refusal = resp.Choices[0].Message.Refusal
	return r
}

// verdict turns the model's answer into a verdict, or says what is wrong
// with it (in words that never quote the answer: it may echo the mail).
func verdict(content, refusal string, tax classify.Taxonomy) (classify.Verdict, string) {
	if refusal != "" {
		// A refusal is an answer: the mail stays visible as other.
		return classify.Verdict{Category: classify.Other, Confidence: 0, Confident: true, Priority: classify.PriorityNormal,
			Reason: "the model declined to classify this mail", Source: classify.SourceLLM}, ""
	}
	var a answer
	dec := json.NewDecoder(strings.NewReader(content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return classify.Verdict{}, "the answer is not the JSON the schema asks for"
	}
	if !tax.Has(a.Category) {
		return classify.Verdict{}, "the answer names a category outside the taxonomy"
	}
	p, ok := map[string]classify.Priority{"low": classify.PriorityLow, "normal": classify.PriorityNormal, "high": classify.PriorityHigh}[a.Priority]
	if !ok {
		return classify.Verdict{}, "the answer names an unknown priority"
	}
	return classify.Verdict{
		Category:   a.Category,
		Confidence: min(max(a.Confidence, 0), 1),
		Confident:  true,
		Priority:   p,
		NeedsReply: a.NeedsReply,
		Reason:     truncateRunes(oneLine(a.Reason), 160),
		Source:     classify.SourceLLM,
	}, ""
}

// cost is the price of a call to model in millionths of a US dollar.
func (t *Tier) cost(model string, prompt, cached, completion int64) int64 {
	p, _ := t.prices.Lookup(model)
	return p.CostMicros(prompt, cached, completion)
}

// LimiterLane is the limiter's lane of a classification lane.
func LimiterLane(l classify.Lane) limiter.Lane {
	switch l {
	case classify.LaneInteractive:
		return limiter.Interactive
	case classify.LaneLive:
		return limiter.Live
	}
	return limiter.Backfill
}

// backoff is full jitter: a random wait up to min(cap, base·2^(attempt-1)).
func backoff(attempt int, base, cap time.Duration) time.Duration {
	ceiling := cap
	if attempt < 30 {
		ceiling = min(cap, base<<(attempt-1))
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func summarize(failures []string) string {
	last := failures[len(failures)-1]
	if len(failures) == 1 {
		return last
	}
	return fmt.Sprintf("%s (attempt %d of %d; earlier: %s)", last, len(failures), len(failures), failures[0])
}

// safeCode keeps an API error code only when it looks like one.
func safeCode(code string) string {
	for _, r := range code {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "error"
		}
	}
	if code == "" {
		return "error"
	}
	return code
}

// lateTimer and lateGrace: a request timer that fires more than lateTimer
// after its time (the process was stopped or starved meanwhile) waits
// lateGrace more before it cuts the request.
const (
	lateTimer = time.Second
	lateGrace = time.Second
)

// requestContext bounds one request by timeout, like context.WithTimeout,
// except after a pause: a process stopped (SIGSTOP) past the deadline of a
// request in flight wakes to the expired timer and to the answer, which
// arrived meanwhile and is paid for, at the same time; the answer gets a
// moment to be read rather than being thrown away (and paid for again by
// the replica the mail is redelivered to).
func requestContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		if time.Since(deadline) > lateTimer {
			time.AfterFunc(lateGrace, func() { cancel(context.DeadlineExceeded) })
			return
		}
		cancel(context.DeadlineExceeded)
	})
	return ctx, func() {
		timer.Stop()
		cancel(context.Canceled)
	}
}

func transportReason(ctx context.Context, err error) string {
	switch {
	case errors.Is(context.Cause(ctx), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "EOF"):
		return "connection reset"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	}
	return "transport error"
}
