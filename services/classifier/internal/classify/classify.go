// Package classify is the classifier's domain: the message a classification
// is about, the verdict, the default taxonomy, and the pipeline of tiers that
// reaches a verdict (rules now; a content-hash cache and the language model
// under the limiter slot in as further tiers). It knows neither gRPC nor NATS.
package classify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Header is one mail header.
type Header struct {
	Name  string
	Value string
}

// Attachment describes an attachment without its content.
type Attachment struct {
	Filename    string
	ContentType string
	SizeBytes   int64
}

// Message is a normalized mail, the input of every tier.
type Message struct {
	Subject string
	// From is the formatted sender ("Ada <ada@example.com>").
	From string
	// FromAddress is the sender's bare address, lowercased; when empty it is
	// derived from From (see Sender).
	FromAddress string
	Headers     []Header
	// Body is the plain text body (may be empty: the rules tier does not read it).
	Body        string
	HasCalendar bool
	Attachments []Attachment
	// ContentHash is the SHA-256 of the normalized content, hex, when known.
	ContentHash string
}

// Header returns the value of the first header named name, compared without
// regard to case, and whether there was one.
func (m *Message) Header(name string) (string, bool) {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Sender returns the sender's bare address, lowercased: FromAddress, or the
// address parsed out of From; "" when there is none.
func (m *Message) Sender() string {
	if m.FromAddress != "" {
		return strings.ToLower(strings.TrimSpace(m.FromAddress))
	}
	if a, err := mail.ParseAddress(m.From); err == nil {
		return strings.ToLower(a.Address)
	}
	// A bare address that net/mail rejects (odd characters) is still usable.
	if f := strings.TrimSpace(m.From); strings.Count(f, "@") == 1 && !strings.ContainsAny(f, " <>") {
		return strings.ToLower(f)
	}
	return ""
}

// Lane is the scheduling lane of a classification.
type Lane string

// The lanes, in priority order.
const (
	LaneInteractive Lane = "interactive"
	LaneLive        Lane = "live"
	LaneBackfill    Lane = "backfill"
)

// Source is the tier that reached a verdict.
type Source int

// The sources of a verdict.
const (
	SourceUnspecified Source = iota
	SourceRules
	SourceLLM
	SourceCache
	// SourceLearned is a learned record of the sender (see learned).
	SourceLearned
	// SourceUser is the user's own correction.
	SourceUser
)

// Priority is how soon a person should look at a message.
type Priority int

// The priorities.
const (
	PriorityUnspecified Priority = iota
	PriorityLow
	PriorityNormal
	PriorityHigh
)

// Usage is what a verdict cost.
type Usage struct {
	PromptTokens       int64
	CompletionTokens   int64
	CachedPromptTokens int64
	CostMicros         int64
	Requests           int64
	// Models splits the usage by model; the fields above are its sums.
	Models []ModelUsage
}

// ModelUsage is what one model's requests cost.
type ModelUsage struct {
	Model              string
	PromptTokens       int64
	CompletionTokens   int64
	CachedPromptTokens int64
	CostMicros         int64
	Requests           int64
	// Batch is true for requests sent through the Batch API.
	Batch bool
}

// Add adds one request's (or batch line's) usage of model.
func (u *Usage) Add(model string, batch bool, prompt, cached, completion, cost int64) {
	u.Requests++
	u.PromptTokens += prompt
	u.CachedPromptTokens += cached
	u.CompletionTokens += completion
	u.CostMicros += cost
	for i := range u.Models {
		m := &u.Models[i]
		if m.Model == model && m.Batch == batch {
			m.Requests++
			m.PromptTokens += prompt
			m.CachedPromptTokens += cached
			m.CompletionTokens += completion
			m.CostMicros += cost
			return
		}
	}
	u.Models = append(u.Models, ModelUsage{Model: model, Batch: batch, Requests: 1,
		PromptTokens: prompt, CachedPromptTokens: cached, CompletionTokens: completion, CostMicros: cost})
}

// Verdict is a tier's classification of a message. The zero Verdict (no
// category) means the tier abstains.
type Verdict struct {
	// Category is the lowercase name of a category of the taxonomy.
	Category string
	// Confidence is between 0 and 1.
	Confidence float64
	// Confident is true when the verdict should stand without asking a
	// later tier (a confident rule skips the language model).
	Confident  bool
	Priority   Priority
	NeedsReply bool
	// Reason is a short explanation, never a quote of the mail.
	Reason string
	Source Source
	// Rule names the rule, for SourceRules.
	Rule string
	// Model names the model, for SourceLLM.
	Model string
	Usage Usage
	// Time is when the verdict was reached.
	Time time.Time
}

// Request is one message to classify, with what a tier needs to schedule
// and bound the work.
type Request struct {
	// User is the owner's user id.
	User string
	// ID identifies the mail (its message resource name), when known: the
	// learned tier samples by it.
	ID   string
	Lane Lane
	// Taxonomy is the user's taxonomy; the verdict's category must be in it.
	Taxonomy Taxonomy
	Message  Message
	// Received is when the mail entered the system (ingest), zero when
	// unknown; the language-model tier measures the lane's wait from it.
	Received time.Time
	// Examples are the user's corrections, shown to the model after the
	// stable prefix of its prompt.
	Examples []Example
	// Recheck, when set, looks again for a verdict another replica made
	// for the same mail meanwhile (the verdict cache's): a tier that had to
	// wait for capacity asks it just before it pays for a model call, so
	// that mail redelivered to another replica while this one waited (a
	// replica paused past AckWait) is not paid for twice.
	Recheck func(ctx context.Context) (Verdict, bool)
	// StillOwned, when set, reports whether this process still holds the
	// work of the request: the consumer's delivery of the mail has not
	// outlived its AckWait (a process stopped or starved past it has lost
	// the mail to a redelivery elsewhere). A tier asks it just before it
	// pays for a model call and returns ErrNotOwned when it says no. When
	// it says yes it has also told the server that the work goes on, so
	// the delivery stays this process's for a whole AckWait from then.
	StillOwned func() bool
}

// ErrNotOwned says the request was abandoned before a paid call because
// its work is no longer this process's (Request.StillOwned): the mail was
// handed to another replica, which classifies it. The caller neither
// acknowledges nor retries it.
var ErrNotOwned = errors.New("classify: the mail was handed to another replica meanwhile")

// Example is a user's correction, shown to the model as a few-shot example.
type Example struct {
	From, Subject, Category string
}

// Tier is one stage of the pipeline. Classify returns a verdict, the zero
// Verdict to abstain, or an error when it could not decide now (the caller
// retries later). A tier may block (a language model waiting for rate-limit
// capacity) until ctx is done.
type Tier interface {
	Classify(ctx context.Context, req Request) (Verdict, error)
}

// TierFunc adapts a function to Tier.
type TierFunc func(ctx context.Context, req Request) (Verdict, error)

// Classify calls f.
func (f TierFunc) Classify(ctx context.Context, req Request) (Verdict, error) { return f(ctx, req) }

// Pipeline asks its tiers in order. The first confident verdict wins; when
// none is confident, the last verdict given wins (a later tier knows more
// than an earlier one that was unsure). A verdict whose category is not in
// the request's taxonomy counts as an abstention. When every tier abstains,
// the verdict is Other with no confidence.
type Pipeline struct {
	tiers []Tier
	now   func() time.Time
}

// NewPipeline returns a pipeline over tiers, asked in the order given.
func NewPipeline(tiers ...Tier) *Pipeline {
	return &Pipeline{tiers: tiers, now: time.Now}
}

// Classify runs the pipeline on req. An empty taxonomy means the default one.
func (p *Pipeline) Classify(ctx context.Context, req Request) (Verdict, error) {
	if len(req.Taxonomy) == 0 {
		req.Taxonomy = defaultTaxonomy
	}
	var last Verdict
	for _, t := range p.tiers {
		v, err := t.Classify(ctx, req)
		if err != nil {
			return Verdict{}, err
		}
		if v.Category == "" || !req.Taxonomy.Has(v.Category) {
			continue
		}
		last = v
		if v.Confident {
			break
		}
	}
	if last.Category == "" {
		last = Verdict{Category: Other, Reason: "no tier reached a verdict", Source: SourceRules, Rule: "fallback"}
	}
	if last.Time.IsZero() {
		last.Time = p.now()
	}
	return last, nil
}

// GiveUpError says a message cannot be classified: every attempt failed
// (the model answered with errors, timed out, or broke the schema). The
// message goes to the dead letters.
type GiveUpError struct {
	// Attempts is how many attempts failed.
	Attempts int
	// Reason says why, without mail content.
	Reason string
	// Usage is what the attempts cost.
	Usage Usage
}

func (e *GiveUpError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %s", e.Attempts, e.Reason)
}

// Service classifies a user's message with the user's taxonomy: what the
// consumer and the Classify RPC both call.
type Service struct {
	Taxonomies *Taxonomies
	Pipeline   *Pipeline
	// Quotas, when set, refuses (or, for the consumers, holds) the mail
	// of a user past a daily quota, and counts what each verdict used.
	Quotas *Quotas
}

// Classify loads the user's taxonomy (unless req has one) and runs the
// pipeline, within the user's daily quotas (a *QuotaError past them).
func (s *Service) Classify(ctx context.Context, req Request) (Verdict, error) {
	if s.Quotas != nil {
		day, err := s.Quotas.Take(ctx, req.User)
		if err != nil {
			return Verdict{}, err
		}
		v, err := s.classify(ctx, req)
		// The verdict is had: a failure to count it does not undo it.
		_ = s.Quotas.Done(context.WithoutCancel(ctx), req.User, day, v, err != nil)
		return v, err
	}
	return s.classify(ctx, req)
}

func (s *Service) classify(ctx context.Context, req Request) (Verdict, error) {
	if len(req.Taxonomy) == 0 && s.Taxonomies != nil {
		t, _, err := s.Taxonomies.Get(ctx, req.User)
		if err != nil {
			return Verdict{}, fmt.Errorf("taxonomy of %s: %w", req.User, err)
		}
		req.Taxonomy = t
	}
	return s.Pipeline.Classify(ctx, req)
}
