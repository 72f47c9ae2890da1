package fakeopenai_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"mailroom.dev/fakes/fakeopenai"
)

func client(url, key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(url + "/v1"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	}, opts...)...)
}

func classifyParams(system, mail string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(system),
			openai.UserMessage(mail),
		},
		MaxCompletionTokens: openai.Int(120),
		Temperature:         openai.Float(0),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
					Name:   "classification",
					Strict: openai.Bool(true),
					Schema: classificationSchema(),
				},
			},
		},
	}
}

// The main path with the real client: Structured Outputs, usage counted as
// CountPromptTokens counts, OpenAI's headers.
func TestOpenAIClientStructuredOutput(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 600, TPM: 60_000}},
		Now:  clk.Now,
	})
	c := client(url, "sk-a")
	system := "You sort a user's mail into one category of their taxonomy."
	mail := "<mail>\nSubject: Your invoice #1234\n\nPlease find attached the invoice for March. Can you confirm the payment?\n</mail>"

	var httpResp *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), classifyParams(system, mail), option.WithResponseInto(&httpResp))
	if err != nil {
		t.Fatal(err)
	}

	if got, want := resp.Object, "chat.completion"; string(got) != want {
		t.Errorf("object = %q, want %q", got, want)
	}
	if got, want := resp.Model, "gpt-4o-mini"; got != want {
		t.Errorf("model = %q, want %q", got, want)
	}
	if len(resp.Choices) != 1 {
		t.Fatalf("%d choices, want 1", len(resp.Choices))
	}
	ch := resp.Choices[0]
	if ch.FinishReason != "stop" || ch.Message.Role != "assistant" || ch.Message.Refusal != "" {
		t.Errorf("choice = %+v", ch)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(ch.Message.Content), &out); err != nil {
		t.Fatalf("content %q is not JSON: %v", ch.Message.Content, err)
	}
	schema := normalize(t, classificationSchema())
	if err := validate(schema, schema, out, ""); err != nil {
		t.Errorf("content %s: %v", ch.Message.Content, err)
	}
	if got, want := out["category"], "finance"; got != want {
		t.Errorf("category = %v, want %v", got, want)
	}
	if got, want := out["needs_reply"], true; got != want {
		t.Errorf("needs_reply = %v, want %v (the mail asks a question)", got, want)
	}

	wantPrompt := fakeopenai.CountPromptTokens([]fakeopenai.Message{{Role: "system", Content: system}, {Role: "user", Content: mail}})
	if got := resp.Usage.PromptTokens; got != int64(wantPrompt) {
		t.Errorf("prompt_tokens = %d, want %d", got, wantPrompt)
	}
	if got, want := resp.Usage.CompletionTokens, int64(fakeopenai.CountTokens(ch.Message.Content)); got != want {
		t.Errorf("completion_tokens = %d, want %d", got, want)
	}
	if resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
		t.Errorf("total_tokens = %d, want the sum", resp.Usage.TotalTokens)
	}
	if !resp.Usage.JSON.PromptTokensDetails.Valid() || !resp.Usage.PromptTokensDetails.JSON.CachedTokens.Valid() {
		t.Error("usage.prompt_tokens_details.cached_tokens missing")
	}

	h := httpResp.Header
	for name, want := range map[string]string{
		"x-ratelimit-limit-requests":     "600",
		"x-ratelimit-limit-tokens":       "60000",
		"x-ratelimit-remaining-requests": "59",                                  // 600 × 6 s / 60 s − 1
		"x-ratelimit-remaining-tokens":   strconv.Itoa(6000 - wantPrompt - 120), // admission counts max_completion_tokens
		"x-ratelimit-reset-requests":     "100ms",
		"x-ratelimit-reset-tokens":       fakeopenai.FormatDuration(time.Duration(wantPrompt+120) * time.Millisecond), // 1000 tokens/s
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if h.Get("x-request-id") == "" {
		t.Error("no x-request-id")
	}
	if _, err := strconv.Atoi(h.Get("openai-processing-ms")); err != nil {
		t.Errorf("openai-processing-ms = %q: %v", h.Get("openai-processing-ms"), err)
	}

	// The same mail gets the same answer.
	again, err := c.Chat.Completions.New(context.Background(), classifyParams(system, mail))
	if err != nil {
		t.Fatal(err)
	}
	if again.Choices[0].Message.Content != ch.Message.Content {
		t.Errorf("second answer %s differs from the first %s", again.Choices[0].Message.Content, ch.Message.Content)
	}
}

func TestOpenAIClientUnknownKey(t *testing.T) {
	_, url := serve(t, fakeopenai.Config{})
	wrong := client(url, "sk-wrong-key-1234")
	_, err := wrong.Chat.Completions.New(context.Background(), classifyParams("s", "m"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want an *openai.Error", err)
	}
	if apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" || apiErr.Type != "invalid_request_error" {
		t.Errorf("got %d %q %q, want 401 invalid_api_key invalid_request_error", apiErr.StatusCode, apiErr.Code, apiErr.Type)
	}
	if want := "Incorrect API key provided: sk-**********1234."; len(apiErr.Message) < len(want) || apiErr.Message[:len(want)] != want {
		t.Errorf("message = %q, want it to start %q", apiErr.Message, want)
	}

	// The default key works.
	right := client(url, fakeopenai.DefaultKey)
	if _, err := right.Chat.Completions.New(context.Background(), classifyParams("s", "m")); err != nil {
		t.Errorf("default key: %v", err)
	}
}

// The client sees a 429 as an *openai.Error carrying OpenAI's code and the
// headers a limiter reconciles with.
func TestOpenAIClientRateLimited(t *testing.T) {
	clk := newClock()
	_, url := serve(t, fakeopenai.Config{
		Keys: map[string]fakeopenai.Limits{"sk-a": {RPM: 10}}, // 1 request per 6 s window
		Now:  clk.Now,
	})
	c := client(url, "sk-a")
	if _, err := c.Chat.Completions.New(context.Background(), classifyParams("s", "m")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Chat.Completions.New(context.Background(), classifyParams("s", "m"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want an *openai.Error", err)
	}
	if apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" {
		t.Errorf("got %d %q %q, want 429 rate_limit_exceeded requests", apiErr.StatusCode, apiErr.Code, apiErr.Type)
	}
	if got, want := apiErr.Response.Header.Get("retry-after-ms"), "6000"; got != want {
		t.Errorf("retry-after-ms = %q, want %q", got, want)
	}
}

func TestOpenAIClientConnReset(t *testing.T) {
	fake, url := serve(t, fakeopenai.Config{})
	fake.Inject(fakeopenai.ConnReset, 1)
	c := client(url, fakeopenai.DefaultKey)
	_, err := c.Chat.Completions.New(context.Background(), classifyParams("s", "m"))
	var apiErr *openai.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if got := fake.Stats().Keys[fakeopenai.DefaultKey]; got.Faults[fakeopenai.FaultConnReset] != 1 || got.Admitted != 1 {
		t.Errorf("stats = %+v, want one admitted conn_reset", got)
	}
	if _, err := c.Chat.Completions.New(context.Background(), classifyParams("s", "m")); err != nil {
		t.Errorf("after the reset: %v", err)
	}
}

// A client that gives up while the server waits out the latency ends the
// wait; the request stays admitted.
func TestOpenAIClientTimeout(t *testing.T) {
	waiting, gaveUp := make(chan time.Duration, 1), make(chan error, 1)
	fake, url := serve(t, fakeopenai.Config{Latency: 5 * time.Second, Sleep: func(ctx context.Context, d time.Duration) error {
		waiting <- d
		<-ctx.Done()
		gaveUp <- ctx.Err()
		return ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-waiting
		cancel()
	}()
	c := client(url, fakeopenai.DefaultKey)
	_, err := c.Chat.Completions.New(ctx, classifyParams("s", "m"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the client's cancellation", err)
	}
	if err := <-gaveUp; err == nil {
		t.Error("the server's wait ended without the client's context done")
	}
	// The handler returns right after its wait; nothing else holds it.
	for fake.Stats().InFlight != 0 {
		runtime.Gosched()
	}
	if got := fake.Stats().Keys[fakeopenai.DefaultKey].Admitted; got != 1 {
		t.Errorf("admitted %d, want the 1 the client gave up on", got)
	}
}
