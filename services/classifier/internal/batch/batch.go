// Package batch sends backfill mail through OpenAI's Batch API, at half
// price: backfill requests that arrive together are gathered for Window
// (backfill is not waited on by a person); when they and the backfill
// still undelivered number at least Threshold, they become one JSONL file of
// chat completion requests (custom_id = the mail's id) uploaded through the
// Files API, a batch is created and polled, and each result is handed back
// to the request that waits for it — which the consumer then publishes and
// acknowledges like any verdict, so each result is published once. Fewer
// requests, live and interactive mail, a batch that cannot be created, and
// the unfinished requests of a batch that expires or fails all go to the
// realtime path (Next), so nothing is lost.
//
// The batches respect the model's enqueued-token limit (the prompt tokens
// of the batches in progress) and the budget (a batch reserves its
// worst-case cost at the batch price before it is sent).
//
// Progress hears of the mail chosen for a batch (it waits in it from then
// on, while the batch is assembled, submitted and processed) and of the
// mail that leaves a batch for the realtime path, so that ingest can show a
// sync job's mail waiting in a batch (package batchevents publishes it).
//
// A request waits in its batch while the consumer keeps its event in
// progress. A redelivered event of a mail already in a batch waits for that
// batch instead of sending the mail again.
package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"

	"mailroom.dev/services/classifier/internal/classify"
)

// Model is the language model tier, which builds the batch lines and reads
// their answers, and is the realtime path.
type Model interface {
	classify.Tier
	BatchRequest(req classify.Request) (body openai.ChatCompletionNewParams, promptTokens, maxCompletion int)
	BatchVerdict(req classify.Request, c *openai.ChatCompletion) (classify.Verdict, string)
	BatchCostMicros(promptTokens int) int64
}

// Budget keeps spending within limits (the budget guard).
type Budget interface {
	Reserve(ctx context.Context, estimateMicros int64) (settle func(actualMicros int64), err error)
}

// Config configures a Tier. Zero fields take the defaults named.
type Config struct {
	// Mode is "auto" (batches for backfill above Threshold) or "off".
	Mode string
	// Threshold is how many backfill requests gathered in one Window make
	// a batch (default 200).
	Threshold int
	// Window is how long backfill requests gather before the tier decides
	// (default 2 s).
	Window time.Duration
	// MaxRequests bounds one batch's requests (default 50,000, OpenAI's).
	MaxRequests int
	// EnqueuedTokens is the model's enqueued-token limit: the prompt
	// tokens of this tier's batches in progress stay under it (default
	// 2,000,000).
	EnqueuedTokens int64
	// Poll is how often a batch in progress is read (default 30 s).
	Poll time.Duration
	// Client talks to the API (one key: batches belong to an organization).
	Client openai.Client
	Budget Budget
	// Backlog returns how much backfill mail waits undelivered (the
	// backfill consumer's pending events): a window's requests make a batch
	// when they and the backlog reach Threshold (the backlog's own mail
	// joins the next windows). Nil counts the window's requests alone.
	Backlog func(ctx context.Context) int
	// Progress, when set, hears of mail entering a batch (when a window's
	// mail is chosen for one, before it is submitted) and leaving one for
	// the realtime path; mail a batch answered leaves it with its
	// classification. It must not block.
	Progress Progress
	// Ledger, when set, remembers which mail is in which unfinished batch,
	// so that after a restart a redelivered mail waits for its batch
	// instead of being sent (and paid for) again.
	Ledger Ledger
	Logger *slog.Logger
}

// Move is some of a user's mail entering a batch or leaving one for the
// realtime path.
type Move struct {
	User string
	// Messages are the mail's ids (message resource names).
	Messages []string
	Entered  bool
	// Batch is the OpenAI batch id, when there is one yet.
	Batch string
	At    time.Time
}

// Progress hears of mail moving in and out of batches (a sync job shows
// the mail that waits in one).
type Progress interface {
	Moved(m Move)
}

// Ledger keeps the mail of unfinished batches.
type Ledger interface {
	AddBatchMail(ctx context.Context, batch string, messages []string, at time.Time) error
	BatchOf(ctx context.Context, message string) (string, bool, error)
	DoneBatch(ctx context.Context, batch string) error
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = "auto"
	}
	if c.Threshold <= 0 {
		c.Threshold = 200
	}
	if c.Window <= 0 {
		c.Window = 2 * time.Second
	}
	if c.MaxRequests <= 0 || c.MaxRequests > 50000 {
		c.MaxRequests = 50000
	}
	if c.EnqueuedTokens <= 0 {
		c.EnqueuedTokens = 2_000_000
	}
	if c.Poll <= 0 {
		c.Poll = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Tier is the batch tier in front of the realtime model.
type Tier struct {
	cfg   Config
	model Model
	ctx   context.Context
	stop  context.CancelFunc

	mu       sync.Mutex
	gather   []*waiter          // backfill requests gathering for the next decision
	timer    *time.Timer        // ends the current gathering window
	byID     map[string]*waiter // requests gathering or in a batch, by mail id
	enqueued int64              // prompt tokens of the batches in progress
	freed    chan struct{}      // closed when enqueued tokens are freed
	stats    Stats
	resumed  map[string]*resumed // batches of an earlier process, by id
}

// resumed is a batch an earlier process created: its mail comes back as
// redelivered events, which wait for it here.
type resumed struct {
	waiters map[string]*waiter
	// results holds the answers by custom id once the batch is final, for
	// the mail redelivered after that; final is set then.
	results map[string]*openai.ChatCompletion
	final   bool
}

// Stats counts the tier's work.
type Stats struct {
	// Waiting is the mail gathering or in a batch now.
	Waiting int
	// Batches is the batches created; Sent the mail sent in them;
	// Answered the mail answered by a batch; Realtime the backfill mail
	// sent to the realtime path instead (too few, or a batch that expired
	// or failed).
	Batches, Sent, Answered, Realtime int64
}

type waiter struct {
	req    classify.Request
	body   openai.ChatCompletionNewParams
	tokens int
	done   chan struct{}
	v      classify.Verdict
	ok     bool // false: go to the realtime path
}

// New returns a tier over model. Close stops its batches' polling.
func New(model Model, cfg Config) *Tier {
	cfg.defaults()
	ctx, stop := context.WithCancel(context.Background())
	return &Tier{cfg: cfg, model: model, ctx: ctx, stop: stop, byID: map[string]*waiter{}, freed: make(chan struct{}), resumed: map[string]*resumed{}}
}

// Close stops polling; requests waiting in a batch return with an error
// (their events are redelivered).
func (t *Tier) Close() error { t.stop(); return nil }

// Stats returns the tier's counts.
func (t *Tier) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Waiting = len(t.byID)
	return s
}

// Classify implements classify.Tier.
func (t *Tier) Classify(ctx context.Context, req classify.Request) (classify.Verdict, error) {
	if t.cfg.Mode == "off" || req.Lane != classify.LaneBackfill || req.ID == "" {
		return t.model.Classify(ctx, req)
	}
	w := t.resume(ctx, req)
	if w == nil {
		w = t.join(req)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return classify.Verdict{}, ctx.Err()
	case <-t.ctx.Done():
		return classify.Verdict{}, errors.New("batch tier stopped")
	}
	if !w.ok {
		return t.model.Classify(ctx, req)
	}
	return w.v, nil
}

// join adds req to the gathering window, or returns the waiter of the same
// mail already gathering or in a batch.
func (t *Tier) join(req classify.Request) *waiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.byID[req.ID]; ok {
		return w
	}
	body, tokens, _ := t.model.BatchRequest(req)
	w := &waiter{req: req, body: body, tokens: tokens, done: make(chan struct{})}
	t.byID[req.ID] = w
	t.gather = append(t.gather, w)
	if t.timer == nil {
		t.timer = time.AfterFunc(t.cfg.Window, t.decide)
	}
	return w
}

// decide ends a gathering window: enough requests become batches, too few
// go to the realtime path.
func (t *Tier) decide() {
	waiting := 0
	if t.cfg.Backlog != nil {
		waiting = t.cfg.Backlog(t.ctx)
	}
	t.mu.Lock()
	ws := t.gather
	t.gather, t.timer = nil, nil
	if len(ws)+waiting < t.cfg.Threshold {
		t.stats.Realtime += int64(len(ws))
		for _, w := range ws {
			delete(t.byID, w.req.ID)
		}
		t.mu.Unlock()
		for _, w := range ws {
			close(w.done)
		}
		return
	}
	t.mu.Unlock()
	t.moved(ws, true, "")
	// Batches of at most MaxRequests and at most the enqueued-token limit.
	var chunk []*waiter
	var tokens int64
	for _, w := range ws {
		if len(chunk) > 0 && (len(chunk) >= t.cfg.MaxRequests || tokens+int64(w.tokens) > t.cfg.EnqueuedTokens) {
			go t.run(chunk, tokens)
			chunk, tokens = nil, 0
		}
		chunk = append(chunk, w)
		tokens += int64(w.tokens)
	}
	if len(chunk) > 0 {
		go t.run(chunk, tokens)
	}
}

// finish hands each waiter its verdict, or the realtime path.
func (t *Tier) finish(ws []*waiter, verdicts map[string]classify.Verdict, batchID string) {
	var left []*waiter
	t.mu.Lock()
	for _, w := range ws {
		if v, ok := verdicts[w.req.ID]; ok {
			w.v, w.ok = v, true
			t.stats.Answered++
		} else {
			t.stats.Realtime++
			left = append(left, w)
		}
		delete(t.byID, w.req.ID)
	}
	t.mu.Unlock()
	if t.ctx.Err() == nil {
		// Stopping is no leaving: the mail comes back redelivered, and
		// waits for its batch again.
		t.moved(left, false, batchID)
	}
	for _, w := range ws {
		close(w.done)
	}
}

// run sends one batch and waits for it.
func (t *Tier) run(ws []*waiter, tokens int64) {
	verdicts := map[string]classify.Verdict{}
	var batchID string
	defer func() { t.finish(ws, verdicts, batchID) }()
	log := t.cfg.Logger.With("component", "batch", "requests", len(ws), "tokens", tokens)

	// The model's enqueued-token limit: wait for earlier batches.
	if !t.enqueue(tokens) {
		return
	}
	defer t.dequeue(tokens)
	settle := func(int64) {}
	if t.cfg.Budget != nil {
		var estimate int64
		for _, w := range ws {
			estimate += t.model.BatchCostMicros(w.tokens)
		}
		s, err := t.cfg.Budget.Reserve(t.ctx, estimate)
		if err != nil {
			return
		}
		settle = s
	}
	var spent int64
	defer func() { settle(spent) }()

	var file bytes.Buffer
	for _, w := range ws {
		line, err := json.Marshal(map[string]any{"custom_id": w.req.ID, "method": "POST", "url": "/v1/chat/completions", "body": w.body})
		if err != nil {
			log.Error("batch: encoding a request failed", "error", err.Error())
			return
		}
		file.Write(line)
		file.WriteByte('\n')
	}
	f, err := t.cfg.Client.Files.New(t.ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(file.Bytes()), "mailroom-backfill.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		log.Warn("batch: uploading the requests failed; the mail goes to the realtime path", "error", err.Error())
		return
	}
	b, err := t.cfg.Client.Batches.New(t.ctx, openai.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata:         map[string]string{"source": "mailroom-backfill"},
	})
	if err != nil {
		log.Warn("batch: creating the batch failed; the mail goes to the realtime path", "error", err.Error())
		return
	}
	batchID = b.ID
	t.mu.Lock()
	t.stats.Batches++
	t.stats.Sent += int64(len(ws))
	t.mu.Unlock()
	log = log.With("batch", b.ID)
	log.Info("batch: sent backfill mail through the Batch API")
	if t.cfg.Ledger != nil {
		ids := make([]string, len(ws))
		for i, w := range ws {
			ids[i] = w.req.ID
		}
		if err := t.cfg.Ledger.AddBatchMail(t.ctx, b.ID, ids, time.Now()); err != nil {
			log.Warn("batch: recording the batch's mail failed; after a restart it would be sent again", "error", err.Error())
		}
		defer func() {
			if t.ctx.Err() == nil {
				_ = t.cfg.Ledger.DoneBatch(context.WithoutCancel(t.ctx), b.ID)
			}
		}()
	}
	for !final(b.Status) {
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(t.cfg.Poll):
		}
		nb, err := t.cfg.Client.Batches.Get(t.ctx, b.ID)
		if err != nil {
			log.Warn("batch: polling failed; trying again", "error", err.Error())
			continue
		}
		b = nb
	}
	if b.Status != openai.BatchStatusCompleted {
		log.Warn("batch: the batch ended unfinished; its unanswered mail goes to the realtime path",
			"status", string(b.Status), "completed", b.RequestCounts.Completed, "failed", b.RequestCounts.Failed)
	}
	if b.OutputFileID == "" {
		return
	}
	byID := map[string]*waiter{}
	for _, w := range ws {
		byID[w.req.ID] = w
	}
	spent, err = t.read(b.OutputFileID, byID, verdicts)
	if err != nil {
		log.Warn("batch: reading the output failed; the mail goes to the realtime path", "error", err.Error())
	}
	log.Info("batch: done", "status", string(b.Status), "answered", len(verdicts), "cost_micros", spent)
}

// resume returns the waiter of a redelivered mail whose batch an earlier
// process created, starting to follow that batch if need be; nil when the
// mail is in no such batch.
func (t *Tier) resume(ctx context.Context, req classify.Request) *waiter {
	if t.cfg.Ledger == nil {
		return nil
	}
	t.mu.Lock()
	_, here := t.byID[req.ID]
	t.mu.Unlock()
	if here {
		return nil // this process's own batch: join finds it
	}
	id, ok, err := t.cfg.Ledger.BatchOf(ctx, req.ID)
	if err != nil || !ok {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.resumed[id]
	if r == nil {
		r = &resumed{waiters: map[string]*waiter{}}
		t.resumed[id] = r
		go t.follow(id, r)
	}
	if w, ok := r.waiters[req.ID]; ok {
		return w
	}
	w := &waiter{req: req, done: make(chan struct{})}
	if r.final {
		if !t.answerLocked(w, r.results[req.ID]) {
			go t.moved([]*waiter{w}, false, id)
		}
		return w
	}
	r.waiters[req.ID] = w
	return w
}

// answerLocked hands w the verdict of c (nil: the realtime path), and
// reports whether it had one.
func (t *Tier) answerLocked(w *waiter, c *openai.ChatCompletion) bool {
	if c != nil {
		if v, problem := t.model.BatchVerdict(w.req, c); problem == "" {
			w.v, w.ok = v, true
			t.stats.Answered++
		}
	}
	if !w.ok {
		t.stats.Realtime++
	}
	close(w.done)
	return w.ok
}

// moved tells Progress that ws entered a batch or left one, one Move per
// user.
func (t *Tier) moved(ws []*waiter, entered bool, batchID string) {
	if t.cfg.Progress == nil || len(ws) == 0 {
		return
	}
	now := time.Now()
	byUser := map[string][]string{}
	var users []string
	for _, w := range ws {
		if _, ok := byUser[w.req.User]; !ok {
			users = append(users, w.req.User)
		}
		byUser[w.req.User] = append(byUser[w.req.User], w.req.ID)
	}
	for _, u := range users {
		t.cfg.Progress.Moved(Move{User: u, Messages: byUser[u], Entered: entered, Batch: batchID, At: now})
	}
}

// follow polls a batch of an earlier process until it is final, then
// answers the mail waiting for it, and keeps the answers for an hour for
// the mail redelivered later.
func (t *Tier) follow(id string, r *resumed) {
	log := t.cfg.Logger.With("component", "batch", "batch", id)
	log.Info("batch: following a batch of an earlier process")
	results := map[string]*openai.ChatCompletion{}
	for {
		b, err := t.cfg.Client.Batches.Get(t.ctx, id)
		if err == nil && final(b.Status) {
			if b.OutputFileID != "" {
				if err := t.readRaw(b.OutputFileID, results); err != nil {
					log.Warn("batch: reading the output failed; the mail goes to the realtime path", "error", err.Error())
				}
			}
			break
		}
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == 404 {
			break // gone: its mail goes to the realtime path
		}
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(t.cfg.Poll):
		}
	}
	if t.cfg.Budget != nil && len(results) > 0 {
		// The earlier process's reservation died with it: book the spend.
		var spent int64
		for _, c := range results {
			v, _ := t.model.BatchVerdict(classify.Request{}, c)
			spent += v.Usage.CostMicros
		}
		go func() {
			if settle, err := t.cfg.Budget.Reserve(t.ctx, 0); err == nil {
				settle(spent)
			}
		}()
	}
	t.mu.Lock()
	r.final, r.results = true, results
	var left []*waiter
	for _, w := range r.waiters {
		if !t.answerLocked(w, results[w.req.ID]) {
			left = append(left, w)
		}
	}
	r.waiters = nil
	t.mu.Unlock()
	t.moved(left, false, id)
	_ = t.cfg.Ledger.DoneBatch(t.ctx, id)
	select {
	case <-t.ctx.Done():
	case <-time.After(time.Hour):
	}
	t.mu.Lock()
	delete(t.resumed, id)
	t.mu.Unlock()
}

// readRaw reads an output file's successful answers by custom id.
func (t *Tier) readRaw(fileID string, out map[string]*openai.ChatCompletion) error {
	resp, err := t.cfg.Client.Files.Content(t.ctx, fileID)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	for sc.Scan() {
		var line struct {
			CustomID string `json:"custom_id"`
			Response *struct {
				StatusCode int             `json:"status_code"`
				Body       json.RawMessage `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("an output line is not JSON: %w", err)
		}
		if line.Response == nil || line.Response.StatusCode != 200 {
			continue
		}
		var c openai.ChatCompletion
		if json.Unmarshal(line.Response.Body, &c) == nil {
			out[line.CustomID] = &c
		}
	}
	return sc.Err()
}

// read parses an output file into verdicts by custom id and returns their cost.
func (t *Tier) read(fileID string, byID map[string]*waiter, verdicts map[string]classify.Verdict) (int64, error) {
	resp, err := t.cfg.Client.Files.Content(t.ctx, fileID)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var spent int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	for sc.Scan() {
		var line struct {
			CustomID string `json:"custom_id"`
			Response *struct {
				StatusCode int             `json:"status_code"`
				Body       json.RawMessage `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return spent, fmt.Errorf("an output line is not JSON: %w", err)
		}
		w, ok := byID[line.CustomID]
		if !ok || line.Response == nil || line.Response.StatusCode != 200 {
			continue
		}
		var c openai.ChatCompletion
		if err := json.Unmarshal(line.Response.Body, &c); err != nil {
			continue
		}
		v, problem := t.model.BatchVerdict(w.req, &c)
		spent += v.Usage.CostMicros
		if problem != "" {
			continue // paid for, unusable: the realtime path asks again
		}
		verdicts[line.CustomID] = v
	}
	return spent, sc.Err()
}

func final(s openai.BatchStatus) bool {
	switch s {
	case openai.BatchStatusCompleted, openai.BatchStatusExpired, openai.BatchStatusFailed, openai.BatchStatusCancelled:
		return true
	}
	return false
}

// enqueue waits until tokens fit under the enqueued-token limit.
func (t *Tier) enqueue(tokens int64) bool {
	for {
		t.mu.Lock()
		if t.enqueued == 0 || t.enqueued+tokens <= t.cfg.EnqueuedTokens {
			t.enqueued += tokens
			t.mu.Unlock()
			return true
		}
		freed := t.freed
		t.mu.Unlock()
		select {
		case <-freed:
		case <-t.ctx.Done():
			return false
		}
	}
}

func (t *Tier) dequeue(tokens int64) {
	t.mu.Lock()
	t.enqueued -= tokens
	close(t.freed)
	t.freed = make(chan struct{})
	t.mu.Unlock()
}
