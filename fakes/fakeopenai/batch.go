package fakeopenai

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The Files and Batch APIs, as OpenAI documents them
// (platform.openai.com/docs/guides/batch, /docs/api-reference/files and
// /docs/api-reference/batch):
//
//   - POST /v1/files (multipart: purpose, file) takes a JSONL file of
//     requests for purpose "batch" (at most 200 MB, 50,000 requests, one
//     model, one endpoint); GET /v1/files/{id} and /v1/files/{id}/content
//     read it back, as they read a batch's output and error files.
//   - POST /v1/batches (input_file_id, endpoint, completion_window "24h")
//     makes a batch; GET /v1/batches/{id} reads it; POST
//     /v1/batches/{id}/cancel cancels it.
//   - A batch is validating for BatchConfig.Validation, then failed (a bad
//     line, or more enqueued tokens than the model's limit allows) or
//     in_progress for BatchConfig.Completion, then completed with an
//     output file of one line per request (custom_id, response.status_code,
//     response.body a chat completion) — or, as a fate injected with
//     InjectBatch says, expired with the unfinished requests in the error
//     file (error.code batch_expired), or failed.
//   - Enqueued tokens (the prompt tokens of a key's validating and
//     in-progress batches, per model) are capped by BatchConfig.EnqueuedTokens.
//
// Batch requests are not rate limited per minute and their usage is counted
// in Stats.Batch, apart from the realtime requests.

// BatchConfig configures the Batch API. The zero value is usable.
type BatchConfig struct {
	// Validation is how long a batch is validating (default 0: it is
	// validated when it is first read after its creation).
	Validation time.Duration
	// Completion is how long a batch is in_progress before it completes
	// (default 1 s).
	Completion time.Duration
	// EnqueuedTokens caps, per model, the prompt tokens of one key's
	// batches that are validating or in progress (default
	// DefaultEnqueuedTokens for every model).
	EnqueuedTokens map[string]int64
}

// DefaultEnqueuedTokens is the enqueued-token limit of a model that
// BatchConfig.EnqueuedTokens does not name (OpenAI's tier 1 limit for
// gpt-4o-mini).
const DefaultEnqueuedTokens = 2_000_000

// Batch API limits OpenAI documents.
const (
	maxBatchFileBytes = 200 << 20
	maxBatchRequests  = 50_000
)

// BatchFate is what becomes of a batch instead of completing.
type BatchFate struct {
	// Status is "expired" or "failed".
	Status string
	// Done is how many requests an expired batch finished first.
	Done int
}

// BatchStats counts the Batch API's work.
type BatchStats struct {
	Batches          int64 `json:"batches"`
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"promptTokens"`
	CachedTokens     int64 `json:"cachedTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	Expired          int64 `json:"expired"`
	Failed           int64 `json:"failed"`
}

type fileObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int    `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
	ExpiresAt *int64 `json:"expires_at"`
}

type storedFile struct {
	obj   fileObject
	owner *keyState
	data  []byte
}

type batchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

type batchErrors struct {
	Object string       `json:"object"`
	Data   []batchError `json:"data"`
}

type requestCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

type batchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Errors           *batchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        int64             `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    requestCounts     `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
}

type batchLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

type batchState struct {
	obj      batchObject
	owner    *keyState
	created  time.Time
	started  time.Time
	fate     *BatchFate
	model    string
	tokens   int64 // enqueued prompt tokens while validating or in progress
	requests []*chatRequest
	ids      []string
}

// batches is the Files and Batch APIs' state.
type batches struct {
	mu    sync.Mutex
	files map[string]*storedFile
	all   map[string]*batchState
	fates []BatchFate
	stats BatchStats
	seq   int
}

// InjectBatch makes the next batches created meet fates, in order, instead
// of completing.
func (s *Server) InjectBatch(fates ...BatchFate) {
	s.batch.mu.Lock()
	s.batch.fates = append(s.batch.fates, fates...)
	s.batch.mu.Unlock()
}

// BatchStats returns the Batch API's counts.
func (s *Server) BatchStats() BatchStats {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	return s.batch.stats
}

func (s *Server) registerBatch() {
	s.batch.files = map[string]*storedFile{}
	s.batch.all = map[string]*batchState{}
	s.mux.HandleFunc("POST /v1/files", s.createFile)
	s.mux.HandleFunc("GET /v1/files/{id}", s.getFile)
	s.mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	s.mux.HandleFunc("DELETE /v1/files/{id}", s.deleteFile)
	s.mux.HandleFunc("POST /v1/batches", s.createBatch)
	s.mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	s.mux.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
}

func (b *batches) nextID(prefix string) string {
	b.seq++
	return fmt.Sprintf("%s-fake%012d", prefix, b.seq)
}

var filePurposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

func (s *Server) createFile(w http.ResponseWriter, r *http.Request) {
	ks := s.authenticate(w, r)
	if ks == nil {
		return
	}
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		invalidRequest(w, "file", "The request must be multipart/form-data with a file and a purpose.")
		return
	}
	purpose := r.FormValue("purpose")
	if !slices.Contains(filePurposes, purpose) {
		invalidRequest(w, "purpose", "'%s' is not one of %s - 'purpose'", purpose, strings.Join(filePurposes, ", "))
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		invalidRequest(w, "file", "No file was uploaded ('file').")
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBatchFileBytes+1))
	if err != nil {
		invalidRequest(w, "file", "The file could not be read.")
		return
	}
	if purpose == "batch" {
		if len(data) > maxBatchFileBytes {
			invalidRequest(w, "file", "File is too large: batch input files may be at most 200 MB.")
			return
		}
		if !strings.HasSuffix(hdr.Filename, ".jsonl") {
			invalidRequest(w, "file", "Invalid file format for Batch API. Must be .jsonl")
			return
		}
	}
	now := s.cfg.Now()
	s.batch.mu.Lock()
	sf := &storedFile{owner: ks, data: data, obj: fileObject{ID: s.batch.nextID("file"), Object: "file", Bytes: len(data),
		CreatedAt: now.Unix(), Filename: hdr.Filename, Purpose: purpose, Status: "processed"}}
	s.batch.files[sf.obj.ID] = sf
	s.batch.mu.Unlock()
	writeJSON(w, http.StatusOK, sf.obj)
}

// file returns the key's file with the path's id, or writes a 404.
func (s *Server) file(w http.ResponseWriter, r *http.Request) (*keyState, *storedFile) {
	ks := s.authenticate(w, r)
	if ks == nil {
		return nil, nil
	}
	id := r.PathValue("id")
	s.batch.mu.Lock()
	f := s.batch.files[id]
	s.batch.mu.Unlock()
	if f == nil || f.owner != ks {
		writeError(w, http.StatusNotFound, apiError{Message: fmt.Sprintf("No such File object: %s", id), Type: "invalid_request_error", Param: ptr("id")})
		return nil, nil
	}
	return ks, f
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	if _, f := s.file(w, r); f != nil {
		writeJSON(w, http.StatusOK, f.obj)
	}
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	if _, f := s.file(w, r); f != nil {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(f.data)
	}
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	if _, f := s.file(w, r); f != nil {
		s.batch.mu.Lock()
		delete(s.batch.files, f.obj.ID)
		s.batch.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"id": f.obj.ID, "object": "file", "deleted": true})
	}
}

var batchEndpoints = []string{"/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions"}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	ks := s.authenticate(w, r)
	if ks == nil {
		return
	}
	var req struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	body, err := readAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		invalidRequest(w, "", "We could not parse the JSON body of your request.")
		return
	}
	switch {
	case req.InputFileID == "":
		invalidRequest(w, "input_file_id", "Missing required parameter: 'input_file_id'.")
		return
	case !slices.Contains(batchEndpoints, req.Endpoint):
		invalidRequest(w, "endpoint", "Invalid value: '%s'. Supported values are: %s.", req.Endpoint, strings.Join(batchEndpoints, ", "))
		return
	case req.CompletionWindow != "24h":
		invalidRequest(w, "completion_window", "Invalid value: '%s'. Supported values are: '24h'.", req.CompletionWindow)
		return
	case len(req.Metadata) > 16:
		invalidRequest(w, "metadata", "Invalid 'metadata': too many properties. Expected an object with at most 16 properties.")
		return
	}
	now := s.cfg.Now()
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	f := s.batch.files[req.InputFileID]
	if f == nil || f.owner != ks {
		writeError(w, http.StatusNotFound, apiError{Message: fmt.Sprintf("No such File object: %s", req.InputFileID), Type: "invalid_request_error", Param: ptr("input_file_id")})
		return
	}
	if f.obj.Purpose != "batch" {
		invalidRequest(w, "input_file_id", "The file %s has purpose '%s'; a batch's input file must have purpose 'batch'.", f.obj.ID, f.obj.Purpose)
		return
	}
	b := &batchState{owner: ks, created: now, obj: batchObject{ID: s.batch.nextID("batch"), Object: "batch", Endpoint: req.Endpoint,
		InputFileID: req.InputFileID, CompletionWindow: "24h", Status: "validating", CreatedAt: now.Unix(),
		ExpiresAt: now.Add(24 * time.Hour).Unix(), Metadata: req.Metadata}}
	if len(s.batch.fates) > 0 {
		fate := s.batch.fates[0]
		b.fate = &fate
		s.batch.fates = s.batch.fates[1:]
	}
	s.batch.all[b.obj.ID] = b
	s.batch.stats.Batches++
	s.advanceBatchLocked(b, now)
	writeJSON(w, http.StatusOK, b.obj)
}

func (s *Server) batchOf(w http.ResponseWriter, r *http.Request) *batchState {
	ks := s.authenticate(w, r)
	if ks == nil {
		return nil
	}
	id := r.PathValue("id")
	b := s.batch.all[id]
	if b == nil || b.owner != ks {
		writeError(w, http.StatusNotFound, apiError{Message: fmt.Sprintf("No batch found with id '%s'.", id), Type: "invalid_request_error", Param: ptr("id")})
		return nil
	}
	return b
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	if b := s.batchOf(w, r); b != nil {
		s.advanceBatchLocked(b, s.cfg.Now())
		writeJSON(w, http.StatusOK, b.obj)
	}
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	b := s.batchOf(w, r)
	if b == nil {
		return
	}
	now := s.cfg.Now()
	s.advanceBatchLocked(b, now)
	if b.obj.Status != "validating" && b.obj.Status != "in_progress" {
		writeError(w, http.StatusConflict, apiError{Message: fmt.Sprintf("Cannot cancel a batch with status '%s'.", b.obj.Status), Type: "invalid_request_error"})
		return
	}
	// The requests not run yet are in the error file, as batch_cancelled.
	s.finishLocked(b, now, "cancelled", 0)
	writeJSON(w, http.StatusOK, b.obj)
}

func unix(t time.Time) *int64 { u := t.Unix(); return &u }

// enqueuedLocked is the prompt tokens of ks's unfinished batches of model.
func (s *Server) enqueuedLocked(ks *keyState, model string) int64 {
	var n int64
	for _, b := range s.batch.all {
		if b.owner == ks && b.model == model && (b.obj.Status == "in_progress" || b.obj.Status == "finalizing") {
			n += b.tokens
		}
	}
	return n
}

// advanceBatchLocked moves b along its statuses as far as now allows.
func (s *Server) advanceBatchLocked(b *batchState, now time.Time) {
	if b.obj.Status == "validating" && !now.Before(b.created.Add(s.cfg.Batch.Validation)) {
		s.validateLocked(b, now)
	}
	completion := s.cfg.Batch.Completion
	if completion <= 0 {
		completion = time.Second
	}
	if b.obj.Status == "in_progress" && !now.Before(b.started.Add(completion)) {
		switch {
		case b.fate != nil && b.fate.Status == "expired":
			s.finishLocked(b, now, "expired", b.fate.Done)
		case b.fate != nil && b.fate.Status == "failed":
			s.failLocked(b, now, batchError{Code: "server_error", Message: "The batch failed while in progress."})
		default:
			s.finishLocked(b, now, "completed", len(b.requests))
		}
	}
}

func (s *Server) failLocked(b *batchState, now time.Time, errs ...batchError) {
	b.obj.Status = "failed"
	b.obj.FailedAt = unix(now)
	b.obj.Errors = &batchErrors{Object: "list", Data: errs}
	b.tokens = 0
	s.batch.stats.Failed++
}

// validateLocked checks the input file as OpenAI does before a batch runs.
func (s *Server) validateLocked(b *batchState, now time.Time) {
	f := s.batch.files[b.obj.InputFileID]
	if f == nil {
		s.failLocked(b, now, batchError{Code: "invalid_file", Message: "The input file was deleted."})
		return
	}
	var (
		errs   []batchError
		seen   = map[string]bool{}
		tokens int64
	)
	bad := func(line int, code, param, format string, args ...any) {
		l := line
		errs = append(errs, batchError{Code: code, Message: fmt.Sprintf(format, args...), Param: ptr(param), Line: &l})
	}
	sc := bufio.NewScanner(bytes.NewReader(f.data))
	sc.Buffer(make([]byte, 1<<20), maxBody)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l batchLine
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			bad(line, "invalid_json_line", "", "This line is not parseable as valid JSON.")
			continue
		}
		switch {
		case l.CustomID == "":
			bad(line, "missing_required_parameter", "custom_id", "Missing required parameter: 'custom_id'.")
			continue
		case seen[l.CustomID]:
			bad(line, "duplicate_custom_id", "custom_id", "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.")
			continue
		case l.Method != "POST":
			bad(line, "invalid_method", "method", "Invalid value: '%s'. Supported values are: 'POST'.", l.Method)
			continue
		case l.URL != b.obj.Endpoint:
			bad(line, "mismatched_endpoint", "url", "The URL provided for this request does not match the batch endpoint.")
			continue
		}
		seen[l.CustomID] = true
		req, param, msg := parseRequest(bytes.NewReader(l.Body))
		if msg == "" {
			param, msg = req.validate()
		}
		if msg != "" {
			bad(line, "invalid_request", "body."+param, "%s", msg)
			continue
		}
		if b.model == "" {
			b.model = req.Model
		} else if req.Model != b.model {
			bad(line, "mismatched_model", "body.model", "The model in this request (%s) differs from the batch's (%s): a batch uses one model.", req.Model, b.model)
			continue
		}
		tokens += int64(len(req.render()) + TokensReplyPriming)
		b.requests = append(b.requests, req)
		b.ids = append(b.ids, l.CustomID)
	}
	switch {
	case len(errs) > 0:
		s.failLocked(b, now, errs...)
		return
	case len(b.requests) == 0:
		s.failLocked(b, now, batchError{Code: "empty_file", Message: "The input file is empty."})
		return
	case len(b.requests) > maxBatchRequests:
		s.failLocked(b, now, batchError{Code: "too_many_requests", Message: fmt.Sprintf("A batch may have at most %d requests; this file has %d.", maxBatchRequests, len(b.requests))})
		return
	}
	limit := int64(DefaultEnqueuedTokens)
	if l, ok := s.cfg.Batch.EnqueuedTokens[b.model]; ok {
		limit = l
	}
	if used := s.enqueuedLocked(b.owner, b.model); used+tokens > limit {
		s.failLocked(b, now, batchError{Code: "token_limit_exceeded", Message: fmt.Sprintf(
			"Enqueued token limit reached for %s in organization %s. Limit: %d enqueued tokens. Please try submitting your requests again once some of your in_progress batches have completed.",
			b.model, s.cfg.Organization, limit)})
		return
	}
	b.tokens = tokens
	b.obj.Status = "in_progress"
	b.obj.InProgressAt = unix(now)
	b.obj.RequestCounts.Total = len(b.requests)
	b.started = now
}

type outputLine struct {
	ID       string       `json:"id"`
	CustomID string       `json:"custom_id"`
	Response *outResponse `json:"response"`
	Error    *batchError  `json:"error"`
}

type outResponse struct {
	StatusCode int              `json:"status_code"`
	RequestID  string           `json:"request_id"`
	Body       completionObject `json:"body"`
}

// finishLocked answers b's first done requests and ends it in status; the
// rest go to the error file.
func (s *Server) finishLocked(b *batchState, now time.Time, status string, done int) {
	done = min(done, len(b.requests))
	var out, errOut bytes.Buffer
	enc, errEnc := json.NewEncoder(&out), json.NewEncoder(&errOut)
	for i, req := range b.requests {
		s.batch.seq++
		lineID := fmt.Sprintf("batch_req_fake%012d", s.batch.seq)
		if i >= done {
			code, msg := "batch_expired", "This request could not be executed before the completion window expired."
			if status == "cancelled" {
				code, msg = "batch_cancelled", "This request was not executed because the batch was cancelled."
			}
			_ = errEnc.Encode(outputLine{ID: lineID, CustomID: b.ids[i], Error: &batchError{Code: code, Message: msg}})
			continue
		}
		seq := req.render()
		prompt := len(seq) + TokensReplyPriming
		maxTokens := req.maxTokens(s.cfg.DefaultMaxTokens)
		s.mu.Lock()
		cached := b.owner.cache.use(prefixHashes(seq), now)
		s.mu.Unlock()
		content, finish, completion := s.answer(req, "", maxTokens)
		n := req.choices()
		choices := make([]choice, n)
		for j := range choices {
			choices[j] = choice{Index: j, Message: message{Role: "assistant", Content: content, Annotations: []any{}}, FinishReason: finish}
		}
		_ = enc.Encode(outputLine{ID: lineID, CustomID: b.ids[i], Response: &outResponse{StatusCode: 200, RequestID: requestID(s.nextID()),
			Body: completionObject{ID: fmt.Sprintf("chatcmpl-fakebatch%012d", s.batch.seq), Object: "chat.completion", Created: now.Unix(),
				Model: req.Model, Choices: choices, ServiceTier: "default", SystemFingerprint: "fp_fakeopenai",
				Usage: usage{PromptTokens: prompt, CompletionTokens: completion * n, TotalTokens: prompt + completion*n,
					PromptTokensDetails: promptDetails{CachedTokens: cached}}}}})
		s.batch.stats.Requests++
		s.batch.stats.PromptTokens += int64(prompt)
		s.batch.stats.CachedTokens += int64(cached)
		s.batch.stats.CompletionTokens += int64(completion * n)
	}
	b.obj.RequestCounts = requestCounts{Total: len(b.requests), Completed: done, Failed: len(b.requests) - done}
	addFile := func(data []byte, name string) *string {
		if len(data) == 0 {
			return nil
		}
		f := &storedFile{owner: b.owner, data: data, obj: fileObject{ID: s.batch.nextID("file"), Object: "file", Bytes: len(data),
			CreatedAt: now.Unix(), Filename: name, Purpose: "batch_output", Status: "processed"}}
		s.batch.files[f.obj.ID] = f
		return &f.obj.ID
	}
	b.obj.OutputFileID = addFile(out.Bytes(), b.obj.ID+"_output.jsonl")
	b.obj.ErrorFileID = addFile(errOut.Bytes(), b.obj.ID+"_error.jsonl")
	b.obj.FinalizingAt = unix(now)
	b.obj.Status = status
	b.tokens = 0
	switch status {
	case "completed":
		b.obj.CompletedAt = unix(now)
	case "expired":
		b.obj.ExpiredAt = unix(now)
		s.batch.stats.Expired++
	case "cancelled":
		b.obj.CancellingAt, b.obj.CancelledAt = unix(now), unix(now)
	}
}
