package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while the command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFakeOpenAICommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"fakeopenai", "-addr", "127.0.0.1:0", "-key", "sk-a,sk-b", "-key", "sk-c", "-rpm", "60", "-tpm", "0"}, &stdout, &stderr)
	}()

	baseRE := regexp.MustCompile(`export OPENAI_BASE_URL=(http://\S+)/v1`)
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := baseRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no base URL printed; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "export OPENAI_API_KEYS=sk-a,sk-b,sk-c") || strings.Contains(out, "OPENAI_RPM") {
		t.Errorf("banner:\n%s", out)
	}

	for _, key := range []string{"sk-a", "sk-c"} {
		body := `{"model":"gpt-4o-mini","max_completion_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Object string }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || out.Object != "chat.completion" {
			t.Errorf("%s: %d %+v %v", key, resp.StatusCode, out, err)
		}
		if got := resp.Header.Get("x-ratelimit-limit-requests"); got != "60" {
			t.Errorf("%s: limit-requests %q, want 60", key, got)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not stop")
	}
	if out := stdout.String(); !strings.Contains(out, "sk-a: 1 requests, 1 admitted") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestFakeOpenAICommandRejectsBadRates(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"fakeopenai", "-addr", "127.0.0.1:0", "-fault-rate-500", "0.7", "-fault-rate-503", "0.5"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "add up") {
		t.Errorf("err = %v, want the rates refused", err)
	}
}

// The real-world knobs reach the server: per-model limits, per-minute
// remaining counts, changes, latency steps and the other client.
func TestFakeOpenAICommandRealWorld(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"fakeopenai", "-addr", "127.0.0.1:0", "-rpm", "1200", "-tpm", "0", "-window", "1s",
			"-model-limit", "gpt-4o=60:30000", "-remaining-per-minute", "-change", "1h=600:0", "-change", "1h:gpt-4o=30:0",
			"-latency-step", "1h=3s", "-other-share", "0.5"}, &stdout, &stderr)
	}()
	baseRE := regexp.MustCompile(`export OPENAI_BASE_URL=(http://\S+)/v1`)
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := baseRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no base URL printed; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	for model, want := range map[string][2]string{"gpt-4o": {"60", "59"}, "gpt-4o-mini": {"1200", ""}} {
		body := `{"model":"` + model + `","max_completion_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-fake")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("x-ratelimit-limit-requests"); resp.StatusCode != 200 || got != want[0] {
			t.Errorf("%s: %d, limit-requests %q, want 200, %s", model, resp.StatusCode, got, want[0])
		}
		// Per minute: 60 − 1 for gpt-4o.
		if want[1] != "" && resp.Header.Get("x-ratelimit-remaining-requests") != want[1] {
			t.Errorf("%s: remaining-requests %q, want %s", model, resp.Header.Get("x-ratelimit-remaining-requests"), want[1])
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	out := stdout.String()
	for _, want := range []string{"Model gpt-4o: 60 RPM and 30000 TPM", "At 1h0m0s: 600 RPM and unlimited TPM.", "for gpt-4o", "Another client takes 50%", "gpt-4o: 1 requests, 1 admitted", "the other client:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFakeOpenAICommandRejectsBadSpecs(t *testing.T) {
	for _, args := range [][]string{{"-change", "soon=1:2"}, {"-model-limit", "gpt-4o=60"}, {"-latency-step", "1s"}, {"-other-share", "2"}} {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"fakeopenai", "-addr", "127.0.0.1:0"}, args...), &out, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
