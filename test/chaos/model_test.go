package chaos_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// Outages of the model that a scenario switches on and off; a poison mail
// fails on its own merits whatever the outage.
const (
	outageNone = iota
	outage503
	outage429
	outage401
)

// markerRE finds the mail a chat completion request is about: every mail
// of the backfill carries a unique marker in its subject and body.
var markerRE = regexp.MustCompile(`chaosmail-[0-9a-z]+-[0-9]+-[0-9]+`)

// poisonMarker is in the one mail whose model answers are never valid.
const poisonMarker = "chaospoison"

// model is the fake OpenAI behind a layer that counts, per mail, the
// requests the model answered (the ones that cost money), and that plays
// outages: 503s (overloaded), a 429 storm, a revoked key (401), each as
// OpenAI answers it; and a poison mail, answered with content that is not
// the schema's JSON every time.
type model struct {
	fake   *fakeopenai.Server
	outage atomic.Int32

	mu       sync.Mutex
	answered map[string]int // marker → requests answered 200
	faulted  int
}

// newModel serves the fake OpenAI with limits of each minute (key
// sk-chaos) and a latency with jitter that keeps requests in flight when a
// fault strikes.
func newModel(limits fakeopenai.Limits, latency time.Duration) *model {
	return &model{
		fake: fakeopenai.New(fakeopenai.Config{
			Keys:    map[string]fakeopenai.Limits{"sk-chaos": limits},
			Latency: latency,
			Jitter:  latency * 2 / 3,
		}),
		answered: map[string]int{},
	}
}

func (m *model) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		m.fake.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	marker := markerRE.FindString(string(body))
	poison := bytes.Contains(body, []byte(poisonMarker))
	switch m.outage.Load() {
	case outage503:
		m.fault()
		openAIError(w, http.StatusServiceUnavailable, "server_error", "", "The engine is currently overloaded, please try again later.")
		return
	case outage429:
		m.fault()
		w.Header().Set("retry-after", "2")
		w.Header().Set("retry-after-ms", "2000")
		w.Header().Set("x-ratelimit-remaining-requests", "0")
		w.Header().Set("x-ratelimit-reset-requests", "2s")
		openAIError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
			"Rate limit reached for gpt-4o-mini in organization org-chaos on requests per min (RPM): Limit 3000, Used 3000, Requested 1. Please try again in 2s.")
		return
	case outage401:
		m.fault()
		openAIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"Incorrect API key provided: sk-****aos. You can find your API key at https://platform.openai.com/account/api-keys.")
		return
	}
	if poison {
		m.fault()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-poison", "object": "chat.completion", "created": time.Now().Unix(), "model": "gpt-4o-mini",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": `{"category": "this is not json`}}},
			"usage": map[string]any{"prompt_tokens": 100, "completion_tokens": 8, "total_tokens": 108},
		})
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	m.fake.ServeHTTP(rec, r)
	if rec.status == http.StatusOK && marker != "" {
		m.mu.Lock()
		m.answered[marker]++
		m.mu.Unlock()
	}
}

func (m *model) fault() {
	m.mu.Lock()
	m.faulted++
	m.mu.Unlock()
}

// extraCalls counts, over the mails whose marker starts with prefix, the
// answered requests beyond the first for each mail.
func (m *model) extraCalls(prefix string) (extra, mails int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, n := range m.answered {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			mails++
			extra += n - 1
		}
	}
	return extra, mails
}

func openAIError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var c any
	if code != "" {
		c = code
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// marker is the marker of mail i of user u in scenario s.
func marker(s string, u, i int) string {
	return "chaosmail-" + s + "-" + strconv.Itoa(u) + "-" + strconv.Itoa(i)
}
