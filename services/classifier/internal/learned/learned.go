// Package learned teaches the classifier its users' senders. After the
// language model has put a sender's mail (its address, or its List-Id for
// mailing lists) in the same category Threshold times in a row with high
// confidence, later mail from that sender is classified from the record,
// without the model, as source learned. A deterministic sample of that mail
// (SampleRate, chosen by a hash of the mail's id, so a test can know which)
// still goes to the model; a disagreement resets the record.
//
// A user's correction counts as a learned record at once (and is never
// overruled by a sample: the user said so), and becomes a few-shot example
// in that user's prompt.
package learned

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"mailroom.dev/services/classifier/internal/classify"
)

// Record is what is known about one sender of one user.
type Record struct {
	// Category is the category the sender's mail was put in.
	Category string
	// Count is how many verdicts in a row agreed on Category.
	Count int
	// Corrected is true when the user set Category (a correction).
	Corrected bool
	// Model is the model whose verdicts the record repeats ("" for a
	// correction).
	Model string
}

// Example is a correction shown to the model.
type Example struct {
	From, Subject, Category string
}

// Store keeps the records and the examples.
type Store interface {
	// Sender returns the record of (user, key), ok false when there is none.
	Sender(ctx context.Context, user, key string) (Record, bool, error)
	// ObserveSender counts a confident model verdict: the record's count
	// goes up when it agrees, else the record restarts at the verdict with
	// a count of 1. A corrected record is left alone. It returns the
	// record after the change.
	ObserveSender(ctx context.Context, user, key, category, model string, at time.Time) (Record, error)
	// ResetSender deletes the record of (user, key) unless it is corrected.
	ResetSender(ctx context.Context, user, key string) error
	// CorrectSender sets the record of (user, key) to category, corrected.
	CorrectSender(ctx context.Context, user, key, category string, at time.Time) error
	// AddExample keeps a correction of message as an example; a later one of
	// the same message replaces it.
	AddExample(ctx context.Context, user, message string, e Example, at time.Time) error
	// Examples returns the user's latest examples, newest first, at most limit.
	Examples(ctx context.Context, user string, limit int) ([]Example, error)
}

// Config configures a Tier. Zero fields take the defaults named.
type Config struct {
	// Threshold is how many agreeing confident verdicts make a record
	// answer (default 3); math.MaxInt learns from corrections only.
	Threshold int
	// MinConfidence is what a verdict needs to count (default 0.7).
	MinConfidence float64
	// SampleRate is the fraction of learned mail still sent to the model to
	// check the record (default 0.05; negative means none).
	SampleRate float64
	// MaxExamples bounds the corrections put in a prompt (default 8); the
	// language model tier bounds them in tokens too.
	MaxExamples int
	// ExamplesTTL is how long a user's examples are remembered (default 30 s).
	ExamplesTTL time.Duration
	Now         func() time.Time
}

func (c *Config) defaults() {
	if c.Threshold <= 0 {
		c.Threshold = 3
	}
	if c.MinConfidence <= 0 {
		c.MinConfidence = 0.7
	}
	if c.SampleRate == 0 {
		c.SampleRate = 0.05
	}
	if c.MaxExamples <= 0 {
		c.MaxExamples = 8
	}
	if c.ExamplesTTL <= 0 {
		c.ExamplesTTL = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Tier answers from learned senders, and otherwise asks Next (the verdict
// cache and the language model) with the user's examples, learning from its
// answer.
type Tier struct {
	cfg   Config
	store Store
	next  classify.Tier

	mu       sync.Mutex
	examples map[string]cachedExamples
	gates    map[string]*gate // backfill model calls in flight per sender
}

// gate bounds one sender's backfill mail at the model to Threshold at once:
// a backfill holds many mails of one sender, and once Threshold verdicts
// agree the rest need no model call.
type gate struct {
	n int
	// full is set when Threshold calls are in flight, and cleared when the
	// last of them ends: the waiting look at the record their verdicts
	// made before any of them goes to the model.
	full bool
	free chan struct{} // closed when full clears
}

type cachedExamples struct {
	e  []classify.Example
	at time.Time
}

// New returns a tier over store in front of next.
func New(store Store, next classify.Tier, cfg Config) *Tier {
	cfg.defaults()
	return &Tier{cfg: cfg, store: store, next: next, examples: map[string]cachedExamples{}, gates: map[string]*gate{}}
}

// Key is the sender key of a mail: "list:<List-Id>" for a mailing list
// (many addresses, one kind of mail), else "from:<address>"; "" when
// there is neither.
func Key(m classify.Message) string {
	if v, ok := m.Header("List-Id"); ok {
		v = strings.TrimSpace(v)
		if i, j := strings.LastIndex(v, "<"), strings.LastIndex(v, ">"); i >= 0 && j > i {
			v = v[i+1 : j]
		}
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			return "list:" + v
		}
	}
	if a := m.Sender(); a != "" {
		return "from:" + a
	}
	return ""
}

// AddressKey is the sender key of a bare address.
func AddressKey(address string) string {
	a := strings.ToLower(strings.TrimSpace(address))
	if a == "" {
		return ""
	}
	return "from:" + a
}

// Sampled reports whether the mail with this id is in the sample that is
// checked with the model: a hash of the id below rate, so the same mail is
// always (or never) sampled.
func Sampled(id string, rate float64) bool {
	if rate <= 0 {
		return false
	}
	sum := sha256.Sum256([]byte("mailroom-learned-sample\x00" + id))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
	return u < rate
}

// Classify implements classify.Tier.
func (t *Tier) Classify(ctx context.Context, req classify.Request) (classify.Verdict, error) {
	key := Key(req.Message)
	var (
		rec     Record
		learned bool
	)
	if key != "" {
		rec, learned = t.record(ctx, req, key)
	}
	if !learned && key != "" && req.Lane == classify.LaneBackfill && t.cfg.Threshold < math.MaxInt {
		// Wait while Threshold of this sender's mails are at the model; their
		// verdicts may make the record that answers this one.
		gk := req.User + "\x00" + key
		if err := t.enter(ctx, gk); err != nil {
			return classify.Verdict{}, err
		}
		if rec, learned = t.record(ctx, req, key); learned {
			t.leave(gk)
		} else {
			defer t.leave(gk)
		}
	}
	id := req.ID
	if id == "" {
		id = classify.ContentHash(req.Message)
	}
	if learned && (rec.Corrected || !Sampled(id, t.cfg.SampleRate)) {
		reason := fmt.Sprintf("learned: the model put this sender's mail in %s %d times", rec.Category, rec.Count)
		if rec.Corrected {
			reason = "learned: you corrected this sender's mail to " + rec.Category
		}
		return classify.Verdict{Category: rec.Category, Confidence: 1, Confident: true, Priority: classify.PriorityNormal,
			Reason: reason, Source: classify.SourceLearned, Model: rec.Model}, nil
	}
	if req.Examples == nil {
		req.Examples = t.userExamples(ctx, req.User)
	}
	v, err := t.next.Classify(ctx, req)
	if err != nil || key == "" || v.Source != classify.SourceLLM {
		return v, err
	}
	switch {
	case learned && v.Category != rec.Category:
		// The sample disagrees: the record is wrong, or the sender changed.
		_ = t.store.ResetSender(ctx, req.User, key)
	case v.Confidence >= t.cfg.MinConfidence && t.cfg.Threshold < math.MaxInt:
		_, _ = t.store.ObserveSender(ctx, req.User, key, v.Category, v.Model, t.cfg.Now())
	}
	return v, nil
}

// enter takes one of the sender's Threshold places at the model; when all
// are taken it waits until the calls holding them have all ended (the
// caller then looks at the record again).
func (t *Tier) enter(ctx context.Context, k string) error {
	for {
		t.mu.Lock()
		g := t.gates[k]
		if g == nil {
			g = &gate{free: make(chan struct{})}
			t.gates[k] = g
		}
		if !g.full {
			g.n++
			g.full = g.n >= t.cfg.Threshold
			t.mu.Unlock()
			return nil
		}
		free := g.free
		t.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (t *Tier) leave(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gates[k]
	g.n--
	if g.n == 0 {
		close(g.free)
		delete(t.gates, k)
	}
}

// record returns the record that answers for the mail, if any: a
// correction of its sender's address comes first (the store knows no
// List-Id, so a correction is kept by address), then the record of key.
// A record that failed to read costs a model call, nothing more.
func (t *Tier) record(ctx context.Context, req classify.Request, key string) (Record, bool) {
	keys := []string{key}
	if addr := AddressKey(req.Message.Sender()); addr != "" && addr != key {
		keys = []string{addr, key}
	}
	for i, k := range keys {
		r, ok, err := t.store.Sender(ctx, req.User, k)
		if err != nil || !ok || !req.Taxonomy.Has(r.Category) {
			continue
		}
		if r.Corrected || (i == len(keys)-1 && r.Count >= t.cfg.Threshold) {
			return r, true
		}
	}
	return Record{}, false
}

// userExamples returns the user's corrections as prompt examples,
// remembered for ExamplesTTL.
func (t *Tier) userExamples(ctx context.Context, user string) []classify.Example {
	now := t.cfg.Now()
	t.mu.Lock()
	c, ok := t.examples[user]
	t.mu.Unlock()
	if ok && now.Sub(c.at) < t.cfg.ExamplesTTL {
		return c.e
	}
	es, err := t.store.Examples(ctx, user, t.cfg.MaxExamples)
	if err != nil {
		return c.e
	}
	out := make([]classify.Example, 0, len(es))
	for _, e := range es {
		out = append(out, classify.Example(e))
	}
	t.mu.Lock()
	if len(t.examples) > 100000 {
		t.examples = map[string]cachedExamples{}
	}
	t.examples[user] = cachedExamples{e: out, at: now}
	t.mu.Unlock()
	return out
}

// Correction is a user's correction of one message.
type Correction struct {
	User string
	// Message is the message's resource name.
	Message string
	// Sender is the sender's bare address; ListID the List-Id, when known.
	Sender, ListID string
	From, Subject  string
	Category       string
}

// Correct records a correction: the sender (and its list, when known) is
// learned at once, and the mail becomes an example in the user's prompt.
// The category must be in taxonomy.
func (t *Tier) Correct(ctx context.Context, c Correction, taxonomy classify.Taxonomy) error {
	if !taxonomy.Has(c.Category) {
		return fmt.Errorf("%w: category %q is not in the user's taxonomy (%s)", ErrInvalid, c.Category, strings.Join(taxonomy.Names(), ", "))
	}
	now := t.cfg.Now()
	keys := []string{AddressKey(c.Sender)}
	if c.ListID != "" {
		keys = append(keys, Key(classify.Message{Headers: []classify.Header{{Name: "List-Id", Value: c.ListID}}}))
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if err := t.store.CorrectSender(ctx, c.User, k, c.Category, now); err != nil {
			return err
		}
	}
	if err := t.store.AddExample(ctx, c.User, c.Message, Example{From: c.From, Subject: c.Subject, Category: c.Category}, now); err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.examples, c.User)
	t.mu.Unlock()
	return nil
}

// ErrInvalid marks a correction that cannot be accepted.
var ErrInvalid = errInvalid{}

type errInvalid struct{}

func (errInvalid) Error() string { return "invalid correction" }
