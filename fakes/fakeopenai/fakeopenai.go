// Package fakeopenai is mailroom's own fake of OpenAI's Chat Completions API,
// for tests, `mailroom fakeopenai` demos and the classifier benchmark.
//
// It is close enough to the real API that the openai-go client works against
// it unchanged (base URL <server>/v1):
//
//   - POST /v1/chat/completions with Authorization: Bearer <key>; an unknown
//     key gets 401 invalid_api_key. Bodies, errors and the chat.completion
//     object are OpenAI's; so are x-request-id and openai-processing-ms.
//   - Prompt tokens are counted as OpenAI counts them (see CountPromptTokens).
//   - Rate limits per key, and per model where Config.ModelLimits says so,
//     enforced the way OpenAI enforces them: a request bucket and a token
//     bucket, refilled continuously at limit/60 per second and holding
//     Window's worth (6 s by default, down to 1 s: 60,000 RPM as 1,000
//     requests a second), so a minute's budget cannot be spent in a
//     second. A request costs 1 request and prompt tokens +
//     max_completion_tokens (or max_tokens, or Config.DefaultMaxTokens) × n
//     tokens at admission. It is admitted only if both buckets hold its cost;
//     admission deducts it, a rejection deducts nothing and answers 429
//     rate_limit_exceeded "… Please try again in 1.2s …" with retry-after and
//     retry-after-ms. Every 200, 429, 500 and 503 carries x-ratelimit-limit-*
//     (the limits in force for the model asked), x-ratelimit-remaining-*
//     (whole units left in the enforcing buckets, or with
//     Config.RemainingPerMinute what is left of the per-minute limit, as
//     OpenAI documents it) and x-ratelimit-reset-* (time until that bucket
//     is full, "1.5s", "6m0s").
//   - The real world around the limits, on Config.Now's clock: limits that
//     change at given times (Config.Changes, a change of usage tier),
//     another client consuming a set share of the same organization's
//     limits (Config.Other, counted apart in Stats.Other) and base latency
//     that steps at given times (Config.LatencySteps).
//   - Structured Outputs: a json_schema response_format is answered with an
//     object valid against the schema, its enum values chosen from keywords
//     of the last user message (a hash of it otherwise); strict schemas are
//     checked the way OpenAI checks them.
//   - Latency and fault injection (Config.Faults probabilities, or a queue
//     filled by Inject for deterministic tests).
//   - GET /fake/stats (Stats as JSON: per key, per model with limits of its
//     own, per second, and the other client's) and POST /fake/reset (Reset).
package fakeopenai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultKey is the API key a Config without Keys accepts.
const DefaultKey = "sk-fake"

// DefaultLimits are the limits of a Config without Keys: an account such as
// the one mailroom is sized for.
var DefaultLimits = Limits{RPM: 10_000, TPM: 200_000}

// Limits are one key's (one organization's) per-minute rate limits. Zero
// means unlimited: that bucket is not enforced and its headers are left out.
type Limits struct {
	RPM int
	TPM int
}

// Config configures a Server. The zero value is usable: key "sk-fake" with
// DefaultLimits, a 6 s window, no latency, no faults.
type Config struct {
	// Keys maps each accepted API key to its limits.
	Keys map[string]Limits
	// ModelLimits gives a key limits per model, as OpenAI's limits are:
	// ModelLimits[key][model] has buckets and headers of its own, and
	// KeyStats.Models counts its requests. A model not listed shares the
	// key's limits (Keys).
	ModelLimits map[string]map[string]Limits
	// Window is how many seconds' worth of its per-minute limit a bucket
	// holds (default 6s): the longest burst the server admits. A 1 s
	// window enforces 60,000 RPM as 1,000 requests a second.
	Window time.Duration
	// RemainingPerMinute reports in x-ratelimit-remaining-* what is left
	// of the per-minute limit, as OpenAI documents it: buckets of a whole
	// minute's capacity refilled at the same rate, which take every
	// admission but enforce nothing, with x-ratelimit-reset-* the time
	// until they are full. By default the headers report the enforcing
	// buckets (Window's worth).
	RemainingPerMinute bool
	// Changes change limits at given times (see LimitChange).
	Changes []LimitChange
	// Other is another client on one key's organization (see OtherClient);
	// the zero value is none.
	Other OtherClient
	// DefaultMaxTokens is the completion budget counted at admission for a
	// request that sets neither max_completion_tokens nor max_tokens
	// (default 4096).
	DefaultMaxTokens int
	// Latency is the base response time of an admitted request, and Jitter
	// the most added to it (uniform, from the seeded source). The wait ends
	// early when the client gives up (the request's context).
	Latency time.Duration
	Jitter  time.Duration
	// LatencySteps change the base latency at given times.
	LatencySteps []LatencyStep
	// Sleep waits out a response's latency, or returns early with ctx's
	// error when the client gives up (default: a real timer). Tests
	// replace it to see the latency chosen without waiting for it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Seed seeds the random source of jitter and fault draws, so a run with
	// the same requests in the same order is the same run.
	Seed uint64
	// Faults are the probabilities of random faults.
	Faults FaultRates
	// Organization names the organization in 429 messages (default "org-fake").
	Organization string
	// Batch configures the Files and Batch APIs (see BatchConfig).
	Batch BatchConfig
	// Now is the clock of the rate limiter, the statistics, the changes,
	// the latency steps and the other client (default time.Now). Latency
	// is waited out by Sleep.
	Now func() time.Time
}

// Server is the fake OpenAI API; it is an http.Handler. It is safe for
// concurrent use.
type Server struct {
	cfg   Config
	batch batches
	mux   *http.ServeMux

	mu          sync.Mutex
	keys        map[string]*keyState // fixed at New; the states are guarded by mu
	changes     []LimitChange        // sorted by At
	nextChange  int                  // the first change not applied yet
	other       *otherState
	start       time.Time
	rng         *rand.Rand
	queue       []Fault
	seq         uint64
	inFlight    int
	maxInFlight int
}

// New returns a server for cfg, with full buckets.
func New(cfg Config) *Server {
	if cfg.Keys == nil {
		cfg.Keys = map[string]Limits{DefaultKey: DefaultLimits}
	}
	if cfg.Window <= 0 {
		cfg.Window = 6 * time.Second
	}
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = 4096
	}
	if cfg.Organization == "" {
		cfg.Organization = "org-fake"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	cfg.LatencySteps = sortedSteps(cfg.LatencySteps)
	s := &Server{
		cfg:     cfg,
		mux:     http.NewServeMux(),
		keys:    map[string]*keyState{},
		changes: sortedChanges(cfg.Changes),
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6d61696c726f6f6d)),
	}
	for k, l := range cfg.Keys {
		s.keys[k] = &keyState{limits: l}
	}
	if cfg.Other.Share > 0 {
		key := cfg.Other.Key
		if key == "" {
			key = DefaultKey
			if len(cfg.Keys) == 1 {
				for k := range cfg.Keys {
					key = k
				}
			}
		}
		cfg.Other.Key = key
		s.cfg.Other = cfg.Other
		if s.keys[key] != nil {
			s.other = &otherState{cfg: cfg.Other}
		}
	}
	s.resetLocked()
	s.mux.HandleFunc("POST /v1/chat/completions", s.chatCompletions)
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.registerBatch()
	s.mux.HandleFunc("GET /fake/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	s.mux.HandleFunc("POST /fake/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    "invalid_request_error",
		})
	})
	return s
}

// Start serves a new Server for cfg on a free loopback port. It returns the
// server, its URL (the client's base URL is url + "/v1") and a function
// that stops it.
func Start(cfg Config) (srv *Server, url string, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("fakeopenai: listen: %w", err)
	}
	srv = New(cfg)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	return srv, "http://" + lis.Addr().String(), func() { _ = hs.Close() }, nil
}

// Serve serves the fake on lis until ctx is done, then stops: requests in
// flight get a second to finish.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Inject queues fault for the next n chat completion requests (after
// authentication and validation), ahead of any random fault. A queued fault
// that happens after admission stays queued while the request it would have
// hit is rejected by the rate limiter.
func (s *Server) Inject(fault Fault, n int) {
	fault = fault.withDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queue = append(s.queue, fault)
	}
}

// Stats returns a snapshot of the statistics.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.advanceLocked(now)
	st := Stats{
		Start:       s.start,
		Now:         now,
		Keys:        make(map[string]KeyStats, len(s.keys)),
		InFlight:    s.inFlight,
		MaxInFlight: s.maxInFlight,
	}
	for k, ks := range s.keys {
		st.Keys[k] = ks.snapshot()
	}
	if s.other != nil {
		st.Other = s.other.stats
		st.Other.Series = append([]Second(nil), st.Other.Series...)
	}
	return st
}

// Reset starts a new run: it restores the configured limits and refills
// every bucket, zeroes the statistics (their Start becomes now, and the
// times of Changes, LatencySteps and the other client count from it),
// forgets cached prompts and drops queued faults.
// MaxInFlight restarts from the requests in flight.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	now := s.cfg.Now()
	s.start = now
	s.queue = nil
	s.maxInFlight = s.inFlight
	s.nextChange = 0
	for k, ks := range s.keys {
		ks.stats = KeyStats{Faults: map[FaultKind]int64{}}
		ks.base = newLimitState(ks.limits, s.cfg.Window, now, &ks.stats)
		ks.models, ks.modelStats = map[string]*limitState{}, map[string]*KeyStats{}
		for m, l := range s.cfg.ModelLimits[k] {
			ms := &KeyStats{}
			ks.modelStats[m] = ms
			ks.models[m] = newLimitState(l, s.cfg.Window, now, ms)
		}
		ks.cache = promptCache{}
	}
	if o := s.other; o != nil {
		o.ls = s.keys[o.cfg.Key].limitsFor(o.cfg.Model)
		o.next = now
		o.stats = OtherStats{}
	}
}

// sleep waits d on a real timer, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apiError is OpenAI's error object.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func ptr(s string) *string { return &s }

func writeError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, map[string]apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func invalidRequest(w http.ResponseWriter, param, format string, args ...any) {
	e := apiError{Message: fmt.Sprintf(format, args...), Type: "invalid_request_error"}
	if param != "" {
		e.Param = ptr(param)
	}
	writeError(w, http.StatusBadRequest, e)
}

func (s *Server) nextID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// authenticate finds the key of the request, or answers 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *keyState {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		writeError(w, http.StatusUnauthorized, apiError{
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
			Type:    "invalid_request_error",
			Code:    ptr("invalid_api_key"),
		})
		return nil
	}
	ks := s.keys[key]
	if ks == nil {
		writeError(w, http.StatusUnauthorized, apiError{
			Message: "Incorrect API key provided: " + maskKey(key) + ". You can find your API key at https://platform.openai.com/account/api-keys.",
			Type:    "invalid_request_error",
			Code:    ptr("invalid_api_key"),
		})
	}
	return ks
}

// maskKey shows a key as OpenAI does: its first 3 and last 4 characters.
func maskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-request-id", requestID(s.nextID()))
	if s.authenticate(w, r) == nil {
		return
	}
	var data []map[string]any
	for _, m := range []string{"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5-mini", "gpt-5-nano"} {
		data = append(data, map[string]any{"id": m, "object": "model", "created": 1715367049, "owned_by": "system"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func requestID(n uint64) string {
	return fmt.Sprintf("req_%032x", hash64("req", strconv.FormatUint(n, 10)))
}

// enter and leave count the requests in flight.
func (s *Server) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// nextFaultLocked pops a queued fault or draws a random one.
func (s *Server) nextFaultLocked() (f Fault, ok, queued bool) {
	if len(s.queue) > 0 {
		f, s.queue = s.queue[0], s.queue[1:]
		return f, true, true
	}
	if s.cfg.Faults.any() {
		if f, ok := s.cfg.Faults.draw(s.rng.Float64()); ok {
			return f.withDefaults(), true, false
		}
	}
	return Fault{}, false, false
}

func (s *Server) latencyLocked(now time.Time) time.Duration {
	d := s.latencyAt(now)
	if s.cfg.Jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
	}
	return d
}

// setRateHeaders writes the x-ratelimit-* headers of ls's buckets: the
// enforcing ones, or the per-minute ones with Config.RemainingPerMinute.
func (s *Server) setRateHeaders(h http.Header, ls *limitState) {
	requests, tokens := ls.requests, ls.tokens
	if s.cfg.RemainingPerMinute {
		requests, tokens = ls.minuteRequests, ls.minuteTokens
	}
	if !requests.unlimited() {
		h.Set("x-ratelimit-limit-requests", strconv.Itoa(ls.limits.RPM))
		h.Set("x-ratelimit-remaining-requests", strconv.FormatInt(requests.remaining(), 10))
		h.Set("x-ratelimit-reset-requests", FormatDuration(requests.untilFull()))
	}
	if !tokens.unlimited() {
		h.Set("x-ratelimit-limit-tokens", strconv.Itoa(ls.limits.TPM))
		h.Set("x-ratelimit-remaining-tokens", strconv.FormatInt(tokens.remaining(), 10))
		h.Set("x-ratelimit-reset-tokens", FormatDuration(tokens.untilFull()))
	}
}

func setRetryAfter(h http.Header, d time.Duration) {
	h.Set("retry-after", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	h.Set("retry-after-ms", strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10))
}

// rateLimitMessage is OpenAI's 429 message for one bucket.
func (s *Server) rateLimitMessage(model, dimension string, limit, used, requested int64, wait time.Duration) string {
	what := "tokens per min (TPM)"
	if dimension == "requests" {
		what = "requests per min (RPM)"
	}
	return fmt.Sprintf("Rate limit reached for %s in organization %s on %s: Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
		model, s.cfg.Organization, what, limit, used, requested, FormatDuration(wait))
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	id := s.nextID()
	w.Header().Set("x-request-id", requestID(id))
	w.Header().Set("openai-organization", s.cfg.Organization)
	w.Header().Set("openai-version", "2020-10-01")
	ks := s.authenticate(w, r)
	if ks == nil {
		return
	}
	s.enter()
	defer s.leave()
	processing := func() {
		w.Header().Set("openai-processing-ms", strconv.FormatInt(time.Since(began).Milliseconds(), 10))
	}

	req, errParam, errMsg := parseRequest(r.Body)
	if errMsg == "" {
		errParam, errMsg = req.validate()
	}
	if errMsg != "" {
		s.mu.Lock()
		ks.count(req.modelName(), func(st *KeyStats) { st.Requests++; st.BadRequests++ })
		s.mu.Unlock()
		processing()
		invalidRequest(w, errParam, "%s", errMsg)
		return
	}
	seq := req.render()
	prompt := len(seq) + TokensReplyPriming
	hashes := prefixHashes(seq)
	maxTokens := req.maxTokens(s.cfg.DefaultMaxTokens)
	n := req.choices()
	cost := int64(prompt) + int64(maxTokens)*int64(n)

	s.mu.Lock()
	model := req.Model
	ks.count(model, func(st *KeyStats) { st.Requests++ })
	fault, faulty, queued := s.nextFaultLocked()
	now := s.cfg.Now()
	s.advanceLocked(now)
	ls := ks.limitsFor(model)

	if faulty && fault.preAdmission() {
		ks.stats.Faults[fault.Kind]++
		s.setRateHeaders(w.Header(), ls)
		s.mu.Unlock()
		processing()
		if fault.Kind == FaultOverloaded {
			writeError(w, http.StatusServiceUnavailable, apiError{
				Message: "The engine is currently overloaded, please try again later.",
				Type:    "server_error",
			})
			return
		}
		// As if the organization's requests had run out elsewhere.
		if !ls.requests.unlimited() {
			w.Header().Set("x-ratelimit-remaining-requests", "0")
			w.Header().Set("x-ratelimit-reset-requests", FormatDuration(fault.RetryAfter))
		}
		setRetryAfter(w.Header(), fault.RetryAfter)
		writeError(w, http.StatusTooManyRequests, apiError{
			Message: s.rateLimitMessage(req.Model, "requests", int64(ls.limits.RPM), int64(ls.limits.RPM), 1, fault.RetryAfter),
			Type:    "requests",
			Code:    ptr("rate_limit_exceeded"),
		})
		return
	}
	requeue := func() {
		if faulty && queued {
			s.queue = append([]Fault{fault}, s.queue...)
		}
	}

	limited := func() {
		requeue()
		ks.count(model, func(st *KeyStats) { st.RateLimited++; st.second(s.start, now).RateLimited++ })
		s.setRateHeaders(w.Header(), ls)
	}
	if !ls.tokens.unlimited() && cost > int64(ls.limits.TPM) {
		limited()
		s.mu.Unlock()
		processing()
		writeError(w, http.StatusTooManyRequests, apiError{
			Message: fmt.Sprintf("Request too large for %s in organization %s on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
				req.Model, s.cfg.Organization, ls.limits.TPM, cost),
			Type: "tokens",
			Code: ptr("rate_limit_exceeded"),
		})
		return
	}

	waitR, waitT := ls.wait(cost)
	if waitR > 0 || waitT > 0 {
		limited()
		var msg, typ string
		wait := max(waitR, waitT)
		if waitR >= waitT {
			typ = "requests"
			msg = s.rateLimitMessage(req.Model, typ, int64(ls.limits.RPM), int64(ls.limits.RPM)-ls.requests.remaining(), 1, wait)
		} else {
			typ = "tokens"
			msg = s.rateLimitMessage(req.Model, typ, int64(ls.limits.TPM), int64(ls.limits.TPM)-ls.tokens.remaining(), cost, wait)
		}
		setRetryAfter(w.Header(), wait)
		s.mu.Unlock()
		processing()
		writeError(w, http.StatusTooManyRequests, apiError{Message: msg, Type: typ, Code: ptr("rate_limit_exceeded")})
		return
	}

	// Admitted.
	ls.admit(cost)
	ks.count(model, func(st *KeyStats) {
		st.Admitted++
		st.AdmittedTokens += cost
		sec := st.second(s.start, now)
		sec.Admitted++
		sec.AdmittedTokens += cost
	})
	cached := ks.cache.use(hashes, now)
	s.setRateHeaders(w.Header(), ls)
	latency := s.latencyLocked(now)
	if faulty {
		ks.stats.Faults[fault.Kind]++
		if fault.Kind == FaultSlow {
			latency = fault.Latency
		}
	}
	s.mu.Unlock()

	if latency > 0 {
		if s.cfg.Sleep(r.Context(), latency) != nil {
			return // the client gave up; the capacity stays used, as at OpenAI
		}
	}

	switch fault.Kind {
	case FaultServerError:
		processing()
		writeError(w, http.StatusInternalServerError, apiError{
			Message: "The server had an error while processing your request. Sorry about that!",
			Type:    "server_error",
		})
		return
	case FaultConnReset:
		resetConnection(w)
		return
	}

	content, finish, completion := s.answer(req, fault.Kind, maxTokens)
	s.mu.Lock()
	ks.count(model, func(st *KeyStats) {
		st.PromptTokens += int64(prompt)
		st.CompletionTokens += int64(completion * n)
		st.CachedTokens += int64(cached)
	})
	s.mu.Unlock()

	choices := make([]choice, n)
	for i := range choices {
		choices[i] = choice{Index: i, Message: message{Role: "assistant", Content: content, Annotations: []any{}}, FinishReason: finish}
	}
	processing()
	writeJSON(w, http.StatusOK, completionObject{
		ID:      fmt.Sprintf("chatcmpl-fake%015d", id),
		Object:  "chat.completion",
		Created: now.Unix(),
		Model:   req.Model,
		Choices: choices,
		Usage: usage{
			PromptTokens:            prompt,
			CompletionTokens:        completion * n,
			TotalTokens:             prompt + completion*n,
			PromptTokensDetails:     promptDetails{CachedTokens: cached},
			CompletionTokensDetails: completionDetails{},
		},
		ServiceTier:       "default",
		SystemFingerprint: "fp_fakeopenai",
	})
}

// resetConnection closes the client's connection without an answer, with a
// TCP reset where the connection allows it.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// answer builds the message content, its finish reason and its tokens.
func (s *Server) answer(req *chatRequest, fault FaultKind, maxTokens int) (content, finish string, tokens int) {
	text := strings.ToLower(req.lastUserText())
	switch {
	case req.ResponseFormat != nil && req.ResponseFormat.Type == "json_schema":
		g := &generator{root: req.schema, text: text, now: s.cfg.Now(), outside: fault == FaultOutsideEnum}
		b, _ := json.Marshal(g.value(req.schema, "", 0))
		content = string(b)
	case req.ResponseFormat != nil && req.ResponseFormat.Type == "json_object":
		content = `{"answer":"This is a reply from mailroom's fake OpenAI server."}`
	default:
		content = "This is a reply from mailroom's fake OpenAI server."
	}
	if fault == FaultInvalidJSON {
		// A prefix of a JSON object is never valid JSON.
		content = content[:max(1, len(content)/2)]
	}
	ids, _, _ := o200k().Encode(content)
	if len(ids) > maxTokens {
		cut, err := o200k().Decode(ids[:maxTokens])
		if err == nil {
			return cut, "length", maxTokens
		}
	}
	return content, "stop", len(ids)
}

type completionObject struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []choice `json:"choices"`
	Usage             usage    `json:"usage"`
	ServiceTier       string   `json:"service_tier"`
	SystemFingerprint string   `json:"system_fingerprint"`
}

type choice struct {
	Index        int       `json:"index"`
	Message      message   `json:"message"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason string    `json:"finish_reason"`
}

type message struct {
	Role        string  `json:"role"`
	Content     string  `json:"content"`
	Refusal     *string `json:"refusal"`
	Annotations []any   `json:"annotations"`
}

type usage struct {
	PromptTokens            int               `json:"prompt_tokens"`
	CompletionTokens        int               `json:"completion_tokens"`
	TotalTokens             int               `json:"total_tokens"`
	PromptTokensDetails     promptDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails completionDetails `json:"completion_tokens_details"`
}

type promptDetails struct {
	CachedTokens int `json:"cached_tokens"`
	AudioTokens  int `json:"audio_tokens"`
}

type completionDetails struct {
	ReasoningTokens          int `json:"reasoning_tokens"`
	AudioTokens              int `json:"audio_tokens"`
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
}

// maxBody bounds a request body.
const maxBody = 32 << 20

func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err == nil && len(b) > maxBody {
		err = errors.New("request body too large")
	}
	return b, err
}
