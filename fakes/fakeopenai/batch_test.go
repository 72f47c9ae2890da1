package fakeopenai_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"mailroom.dev/fakes/fakeopenai"
)

// batchFile is a JSONL file of n classification requests, custom ids m0….
func batchFile(t *testing.T, n int, prefix string) []byte {
	t.Helper()
	var b bytes.Buffer
	for i := range n {
		body := withSchema(chat(fmt.Sprintf("<email>\nSubject: invoice %d\n\nYour receipt.\n</email>", i), 120), classificationSchema())
		line, err := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("%s%d", prefix, i), "method": "POST", "url": "/v1/chat/completions", "body": body})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func upload(t *testing.T, c openai.Client, data []byte) string {
	t.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{
		File:    openai.File(bytes.NewReader(data), "requests.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatalf("Files.New: %v", err)
	}
	if f.Purpose != "batch" || f.Bytes != int64(len(data)) {
		t.Fatalf("file = %+v", f)
	}
	return f.ID
}

func newBatch(t *testing.T, c openai.Client, file string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{
		InputFileID:      file,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	if err != nil {
		t.Fatalf("Batches.New: %v", err)
	}
	return b
}

func getBatch(t *testing.T, c openai.Client, id string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Batches.Get: %v", err)
	}
	return b
}

// lines reads a file's JSONL content into maps.
func lines(t *testing.T, c openai.Client, id string) []map[string]any {
	t.Helper()
	resp, err := c.Files.Content(context.Background(), id)
	if err != nil {
		t.Fatalf("Files.Content: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestBatchValidatesRunsAndCompletes(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{Now: clk.Now, Batch: fakeopenai.BatchConfig{Validation: time.Minute, Completion: 10 * time.Minute}})
	c := client(url, fakeopenai.DefaultKey)
	b := newBatch(t, c, upload(t, c, batchFile(t, 5, "m")))
	if b.Status != openai.BatchStatusValidating {
		t.Fatalf("new batch = %s, want validating", b.Status)
	}
	clk.Advance(time.Minute)
	if b = getBatch(t, c, b.ID); b.Status != openai.BatchStatusInProgress || b.RequestCounts.Total != 5 || b.OutputFileID != "" {
		t.Fatalf("after validation = %s %+v, want in_progress with 5 requests", b.Status, b.RequestCounts)
	}
	clk.Advance(9 * time.Minute)
	if b = getBatch(t, c, b.ID); b.Status != openai.BatchStatusInProgress {
		t.Fatalf("before the completion time = %s", b.Status)
	}
	clk.Advance(time.Minute)
	b = getBatch(t, c, b.ID)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 5 || b.RequestCounts.Failed != 0 || b.OutputFileID == "" || b.ErrorFileID != "" || b.CompletedAt == 0 {
		t.Fatalf("completed batch = %+v", b)
	}
	out := lines(t, c, b.OutputFileID)
	if len(out) != 5 {
		t.Fatalf("%d output lines, want 5", len(out))
	}
	seen := map[string]bool{}
	for _, l := range out {
		seen[l["custom_id"].(string)] = true
		resp := l["response"].(map[string]any)
		body := resp["body"].(map[string]any)
		content := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
		var a struct{ Category string }
		if resp["status_code"].(float64) != 200 || json.Unmarshal([]byte(content), &a) != nil || a.Category != "finance" {
			t.Errorf("line %v: want a 200 classifying the receipt as finance", l)
		}
	}
	if len(seen) != 5 {
		t.Errorf("custom ids = %v", seen)
	}
	if st := fake.BatchStats(); st.Requests != 5 || st.PromptTokens == 0 {
		t.Errorf("batch stats = %+v", st)
	}
	if st := fake.Stats(); st.Keys[fakeopenai.DefaultKey].Requests != 0 {
		t.Errorf("batch requests counted as realtime requests: %+v", st.Keys[fakeopenai.DefaultKey])
	}
}

func TestBatchExpiresPartWayAndFails(t *testing.T) {
	clk := newClock()
	fake, url := serve(t, fakeopenai.Config{Now: clk.Now})
	c := client(url, fakeopenai.DefaultKey)
	fake.InjectBatch(fakeopenai.BatchFate{Status: "expired", Done: 2}, fakeopenai.BatchFate{Status: "failed"})
	expired := newBatch(t, c, upload(t, c, batchFile(t, 5, "e")))
	failed := newBatch(t, c, upload(t, c, batchFile(t, 3, "f")))
	clk.Advance(time.Second)
	b := getBatch(t, c, expired.ID)
	if b.Status != openai.BatchStatusExpired || b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 3 || b.ExpiredAt == 0 {
		t.Fatalf("expired batch = %s %+v", b.Status, b.RequestCounts)
	}
	if n := len(lines(t, c, b.OutputFileID)); n != 2 {
		t.Errorf("%d finished lines, want 2", n)
	}
	errs := lines(t, c, b.ErrorFileID)
	if len(errs) != 3 || errs[0]["error"].(map[string]any)["code"] != "batch_expired" || errs[0]["response"] != nil {
		t.Errorf("error file = %v; want 3 batch_expired lines", errs)
	}
	if b := getBatch(t, c, failed.ID); b.Status != openai.BatchStatusFailed || len(b.Errors.Data) == 0 || b.FailedAt == 0 {
		t.Errorf("failed batch = %+v", b)
	}
}

func TestBatchValidationFailures(t *testing.T) {
	clk := newClock()
	// Room for about one 5-request file of enqueued tokens.
	p := int64(promptOf("<email>\nSubject: invoice 0\n\nYour receipt.\n</email>"))
	one := 5*p + p/2
	_, url := serve(t, fakeopenai.Config{Now: clk.Now, Batch: fakeopenai.BatchConfig{
		Completion: time.Hour, EnqueuedTokens: map[string]int64{"gpt-4o-mini": one}}})
	c := client(url, fakeopenai.DefaultKey)

	first := newBatch(t, c, upload(t, c, batchFile(t, 5, "a")))
	if first.Status != openai.BatchStatusInProgress {
		t.Fatalf("first batch = %s, want in_progress", first.Status)
	}
	second := newBatch(t, c, upload(t, c, batchFile(t, 5, "b")))
	if second.Status != openai.BatchStatusFailed || second.Errors.Data[0].Code != "token_limit_exceeded" ||
		!strings.Contains(second.Errors.Data[0].Message, "Enqueued token limit reached for gpt-4o-mini") {
		t.Fatalf("over the enqueued-token limit = %s %+v", second.Status, second.Errors)
	}
	// Once the first completes, its tokens are no longer enqueued.
	clk.Advance(time.Hour)
	if b := getBatch(t, c, first.ID); b.Status != openai.BatchStatusCompleted {
		t.Fatalf("first = %s", b.Status)
	}
	if third := newBatch(t, c, upload(t, c, batchFile(t, 5, "c"))); third.Status != openai.BatchStatusInProgress {
		t.Errorf("after the first completed = %s", third.Status)
	}

	dup := append(batchFile(t, 2, "d"), batchFile(t, 1, "d")...)
	b := newBatch(t, c, upload(t, c, dup))
	if b.Status != openai.BatchStatusFailed || b.Errors.Data[0].Code != "duplicate_custom_id" || b.Errors.Data[0].Line != 3 {
		t.Errorf("duplicate custom_id = %s %+v", b.Status, b.Errors.Data)
	}
	b = newBatch(t, c, upload(t, c, []byte("{not json}\n")))
	if b.Status != openai.BatchStatusFailed || b.Errors.Data[0].Code != "invalid_json_line" {
		t.Errorf("bad line = %s %+v", b.Status, b.Errors.Data)
	}

	// Requests rejected outright: a wrong window, an unknown file, a file
	// of another purpose.
	_, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: "file-nope",
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("unknown file: %v", err)
	}
	other, err := c.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(strings.NewReader("{}"), "x.jsonl", "application/jsonl"), Purpose: openai.FilePurposeUserData})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: other.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "1h"})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "Supported values are: '24h'") {
		t.Errorf("1h window: %v", err)
	}
	_, err = c.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(strings.NewReader("{}"), "x.csv", "text/csv"), Purpose: openai.FilePurposeBatch})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "Must be .jsonl") {
		t.Errorf("csv batch file: %v", err)
	}
}
