package fakeopenai_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// clock is a fake clock for the rate limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sleeps is a Config.Sleep that records each latency and returns at once.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) Sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ds = append(s.ds, d)
	return nil
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ds)
}

// serve starts cfg's fake over real HTTP.
func serve(t *testing.T, cfg fakeopenai.Config) (*fakeopenai.Server, string) {
	t.Helper()
	fake := fakeopenai.New(cfg)
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	return fake, ts.URL
}

// reply is one raw HTTP answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r reply) errorField(name string) any {
	e, _ := r.body["error"].(map[string]any)
	return e[name]
}

func (r reply) content() string {
	choices, _ := r.body["choices"].([]any)
	if len(choices) == 0 {
		return ""
	}
	msg := choices[0].(map[string]any)["message"].(map[string]any)
	s, _ := msg["content"].(string)
	return s
}

func (r reply) usage(name string) int {
	u, _ := r.body["usage"].(map[string]any)
	f, _ := u[name].(float64)
	return int(f)
}

func post(t *testing.T, url, key string, body any) reply {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, raw)
	}
	return r
}

// chat is a minimal request body.
func chat(user string, maxTokens int) map[string]any {
	b := map[string]any{
		"model": "gpt-4o-mini",
		"messages": []map[string]any{
			{"role": "system", "content": "You sort mail."},
			{"role": "user", "content": user},
		},
	}
	if maxTokens > 0 {
		b["max_completion_tokens"] = maxTokens
	}
	return b
}

// promptOf is the prompt tokens of chat(user, …).
func promptOf(user string) int {
	return fakeopenai.CountPromptTokens([]fakeopenai.Message{
		{Role: "system", Content: "You sort mail."},
		{Role: "user", Content: user},
	})
}

var taxonomy = []any{"important", "personal", "work", "finance", "shopping", "travel", "newsletters", "promotions", "social", "notifications", "security", "other"}

// classificationSchema is the schema mailroom's classifier asks for.
func classificationSchema() map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"category":    map[string]any{"type": "string", "enum": taxonomy},
			"confidence":  map[string]any{"type": "number", "minimum": 0, "maximum": 1},
			"priority":    map[string]any{"type": "string", "enum": []any{"low", "normal", "high"}},
			"needs_reply": map[string]any{"type": "boolean"},
			"reason":      map[string]any{"type": "string"},
		},
		"required":             []any{"category", "confidence", "priority", "needs_reply", "reason"},
		"additionalProperties": false,
	}
}

func withSchema(body map[string]any, schema map[string]any) map[string]any {
	body["response_format"] = map[string]any{
		"type":        "json_schema",
		"json_schema": map[string]any{"name": "classification", "strict": true, "schema": schema},
	}
	return body
}

// validate is a small JSON Schema check covering what Structured Outputs
// accepts: type (and type lists), enum, const, anyOf, $ref, properties,
// required, additionalProperties false, items, min/maxItems, minimum,
// maximum, min/maxLength.
func validate(root, s map[string]any, v any, path string) error {
	if ref, ok := s["$ref"].(string); ok {
		var cur any = root
		for _, p := range splitRef(ref) {
			cur = cur.(map[string]any)[p]
		}
		return validate(root, cur.(map[string]any), v, path)
	}
	if c, ok := s["const"]; ok && !equalJSON(c, v) {
		return fmt.Errorf("%s: %v is not the const %v", path, v, c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return equalJSON(x, v) }) {
		return fmt.Errorf("%s: %v is not in the enum %v", path, v, e)
	}
	if branches, ok := s["anyOf"].([]any); ok {
		for _, b := range branches {
			if validate(root, b.(map[string]any), v, path) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: %v matches no branch of anyOf", path, v)
	}
	var types []string
	switch t := s["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, x.(string))
		}
	}
	if len(types) > 0 && !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		return fmt.Errorf("%s: %v is a %s, want %v", path, v, jsonType(v), types)
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		if ap, ok := s["additionalProperties"].(bool); ok && !ap {
			for k := range x {
				if _, ok := props[k]; !ok {
					return fmt.Errorf("%s: additional property %q", path, k)
				}
			}
		}
		if req, ok := s["required"].([]any); ok {
			for _, k := range req {
				if _, ok := x[k.(string)]; !ok {
					return fmt.Errorf("%s: missing required %q", path, k)
				}
			}
		}
		for k, pv := range x {
			if ps, ok := props[k].(map[string]any); ok {
				if err := validate(root, ps, pv, path+"/"+k); err != nil {
					return err
				}
			}
		}
	case []any:
		if n, ok := s["minItems"].(float64); ok && float64(len(x)) < n {
			return fmt.Errorf("%s: %d items, want at least %v", path, len(x), n)
		}
		if n, ok := s["maxItems"].(float64); ok && float64(len(x)) > n {
			return fmt.Errorf("%s: %d items, want at most %v", path, len(x), n)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, it := range x {
				if err := validate(root, items, it, fmt.Sprintf("%s/%d", path, i)); err != nil {
					return err
				}
			}
		}
	case float64:
		if m, ok := s["minimum"].(float64); ok && x < m {
			return fmt.Errorf("%s: %v below minimum %v", path, x, m)
		}
		if m, ok := s["maximum"].(float64); ok && x > m {
			return fmt.Errorf("%s: %v above maximum %v", path, x, m)
		}
	case string:
		if m, ok := s["minLength"].(float64); ok && float64(len([]rune(x))) < m {
			return fmt.Errorf("%s: %q shorter than %v", path, x, m)
		}
		if m, ok := s["maxLength"].(float64); ok && float64(len([]rune(x))) > m {
			return fmt.Errorf("%s: %q longer than %v", path, x, m)
		}
	}
	return nil
}

func splitRef(ref string) []string {
	var parts []string
	cur := ""
	for _, c := range ref[2:] {
		if c == '/' {
			parts = append(parts, cur)
			cur = ""
			continue
		}
		cur += string(c)
	}
	return append(parts, cur)
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// normalize round-trips a Go value through JSON, so schemas built with Go
// ints compare and validate like decoded ones.
func normalize(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
