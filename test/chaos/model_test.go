package chaos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
	// answeredAt is when each answer was given, by marker.
	answeredAt map[string][]time.Time
	faulted    int
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
		answered:   map[string]int{},
		answeredAt: map[string][]time.Time{},
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
		m.answeredAt[marker] = append(m.answeredAt[marker], time.Now())
		m.mu.Unlock()
	}
}

func (m *model) fault() {
	m.mu.Lock()
	m.faulted++
	m.mu.Unlock()
}

// repeats describes when the mails whose marker starts with prefix were
// answered more than once, relative to the fault's start: "first→second"
// in seconds, sorted by the first answer, so that a scenario's repeats can
// be told apart (in flight at the fault, or asked again after it).
func (m *model) repeats(prefix string, start time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rows [][]time.Time
	for k, at := range m.answeredAt {
		if strings.HasPrefix(k, prefix) && len(at) > 1 {
			rows = append(rows, at)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0].Before(rows[j][0]) })
	var b strings.Builder
	for _, at := range rows {
		for i, t := range at {
			if i > 0 {
				b.WriteString("→")
			}
			fmt.Fprintf(&b, "%.1f", t.Sub(start).Seconds())
		}
		b.WriteString(" ")
	}
	return b.String()
}

// inFlightWindow is how near the fault's start a mail's first answer
// must be for its repeats to count as in flight at the fault: the fake's
// latency is 300 ms ± 200 ms, and an answer read just before a kill may
// not be recorded yet.
const inFlightWindow = time.Second

// inFlightAt counts, over the mails whose marker starts with prefix, the
// repeated answers of mails first answered within window of start: the
// requests in flight (or answered and not yet recorded) when the fault
// struck, whose answers a killed or stopped process could not keep.
func (m *model) inFlightAt(prefix string, start time.Time, window time.Duration) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, at := range m.answeredAt {
		if !strings.HasPrefix(k, prefix) || len(at) < 2 {
			continue
		}
		if d := at[0].Sub(start); d >= -window && d <= window {
			n += len(at) - 1
		}
	}
	return n
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
