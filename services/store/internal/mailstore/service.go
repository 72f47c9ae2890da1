package mailstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"mailroom.dev/platform/apierror"
)

// Repository is what the service needs from a database. Both adapters
// (postgres, sqlite) implement it and pass the same contract suite
// (package storetest).
//
// Writes take a batch and apply it in one transaction, idempotently: a batch
// delivered again changes nothing (not even UpdateTime), duplicate keys
// inside a batch are allowed, and batches may run concurrently. A write
// drops the rows of a user marked deleted at or after the row's IngestTime.
//
// Deletes remove at most limit rows in one short transaction, so that
// purging a large table never holds locks for long; callers loop.
type Repository interface {
	// SaveReceived records received messages. A new message is pending; an
	// existing one gets the received metadata (which is authoritative) and
	// keeps its state and classification.
	SaveReceived(ctx context.Context, msgs []Message) error
	// SaveClassified records verdicts. A message not seen yet is created
	// from the verdict's metadata; an existing one keeps the metadata of its
	// MailReceived. A verdict older than the message's current one changes
	// nothing. Each verdict's cost is counted once.
	SaveClassified(ctx context.Context, verdicts []Classified) error
	// SaveFailed records dead-lettered messages: their metadata as
	// SaveReceived does, and the failed state unless the message is
	// classified (a classification, earlier or later, always wins).
	SaveFailed(ctx context.Context, failures []Failed) error
	// ListMessages returns the messages that q selects, newest first
	// (ReceivedTime, then ID, descending), without their bodies.
	ListMessages(ctx context.Context, q ListQuery) ([]Message, error)
	// GetMessage returns one message, body included, or ErrNotFound.
	GetMessage(ctx context.Context, user, id string) (Message, error)
	// Stats counts a user's messages.
	Stats(ctx context.Context, user string) (Stats, error)
	// Usage sums a user's classification costs; EndTime is left zero.
	Usage(ctx context.Context, user string) (Usage, error)

	// MarkUserDeleted records that user's data is deleted as of at: from
	// its commit on, writes of that user's events ingested at or before at
	// are dropped. Writes in flight when it is called finish first, so that
	// what they write is there for the deletes that follow.
	MarkUserDeleted(ctx context.Context, user string, at time.Time) error
	// DeleteMessages deletes at most limit of the messages that sel selects.
	DeleteMessages(ctx context.Context, sel Selection, limit int) (int64, error)
	// DeleteUsage deletes at most limit of the usage records that sel selects.
	DeleteUsage(ctx context.Context, sel Selection, limit int) (int64, error)
	// DeleteTombstones forgets the deletions recorded before before.
	DeleteTombstones(ctx context.Context, before time.Time) (int64, error)
}

// Page sizes of ListMessages.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Retention defaults.
const (
	// DefaultPurgeBatch is how many rows one delete transaction removes.
	DefaultPurgeBatch = 1000
	// TombstoneRetention is how long a user's deletion is remembered: longer
	// than any stream keeps an event (7 days; dead letters 30), so that no
	// event from before the deletion can still arrive after it is forgotten.
	TombstoneRetention = 90 * 24 * time.Hour
)

// Options configure a Service.
type Options struct {
	// StoreBodies keeps messages' text bodies; by default only metadata and
	// the snippet are stored.
	StoreBodies bool
	// Retention is how long messages are kept, by received time; zero keeps
	// them forever.
	Retention time.Duration
	// UsageRetention is how long usage records are kept, by classify time;
	// zero keeps them forever.
	UsageRetention time.Duration
	// PurgeBatch is the most rows one delete transaction removes
	// (DefaultPurgeBatch when zero).
	PurgeBatch int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Service records mail events and answers queries over them. Callers
// authorize the user before calling it.
type Service struct {
	repo Repository
	opts Options
}

// NewService returns a service over repo.
func NewService(repo Repository, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PurgeBatch <= 0 {
		opts.PurgeBatch = DefaultPurgeBatch
	}
	return &Service{repo: repo, opts: opts}
}

// RecordReceived stores received messages in one transaction.
func (s *Service) RecordReceived(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	clean := make([]Message, len(msgs))
	for i, m := range msgs {
		clean[i] = s.normalize(m)
		clean[i].State = StatePending
		clean[i].Classification = nil
	}
	return s.repo.SaveReceived(ctx, clean)
}

// RecordFailed stores dead-lettered messages in one transaction.
func (s *Service) RecordFailed(ctx context.Context, failures []Failed) error {
	if len(failures) == 0 {
		return nil
	}
	clean := make([]Failed, len(failures))
	for i, f := range failures {
		f.Message = s.normalize(f.Message)
		f.Message.State = StateFailed
		f.Message.Classification = nil
		f.Reason = stripNUL(f.Reason)
		f.FailTime = micros(f.FailTime)
		clean[i] = f
	}
	return s.repo.SaveFailed(ctx, clean)
}

// RecordClassified stores verdicts in one transaction.
func (s *Service) RecordClassified(ctx context.Context, verdicts []Classified) error {
	if len(verdicts) == 0 {
		return nil
	}
	clean := make([]Classified, 0, len(verdicts))
	for _, v := range verdicts {
		if v.Message.Classification == nil {
			return errors.New("mailstore: a verdict without a classification")
		}
		v.Message = s.normalize(v.Message)
		v.Message.Body = "" // a verdict never carries a body; keep the one received
		v.Message.State = StateClassified
		c := *v.Message.Classification
		c.Category = strings.ToLower(stripNUL(c.Category))
		c.Reason, c.Rule, c.Model = stripNUL(c.Reason), stripNUL(c.Rule), stripNUL(c.Model)
		c.ClassifyTime = micros(c.ClassifyTime)
		v.Message.Classification = &c
		clean = append(clean, v)
	}
	return s.repo.SaveClassified(ctx, clean)
}

// normalize makes m storable the same way on both backends: times in UTC at
// microsecond precision, no NUL characters (Postgres text refuses them), a
// lowercase sender address, and no body unless bodies are kept.
func (s *Service) normalize(m Message) Message {
	m.Subject = stripNUL(m.Subject)
	m.From = stripNUL(m.From)
	m.FromAddress = strings.ToLower(strings.TrimSpace(stripNUL(m.FromAddress)))
	m.To = stripAll(m.To)
	m.Snippet = stripNUL(m.Snippet)
	m.AttachmentNames = stripAll(m.AttachmentNames)
	m.ProviderMessageID = stripNUL(m.ProviderMessageID)
	m.ReceivedTime = micros(m.ReceivedTime)
	m.IngestTime = micros(m.IngestTime)
	if s.opts.StoreBodies {
		m.Body = stripNUL(m.Body)
	} else {
		m.Body = ""
	}
	return m
}

func micros(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func stripNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func stripAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = stripNUL(s)
	}
	return out
}

// ListRequest is a page request of List.
type ListRequest struct {
	// Filter is an AIP-160 subset (see ParseFilter).
	Filter string
	// PageSize is at most MaxPageSize (larger values are lowered to it);
	// zero means DefaultPageSize.
	PageSize int
	// PageToken continues an earlier list with the same user and filter.
	PageToken string
}

// Page is one page of List.
type Page struct {
	Messages []Message
	// NextPageToken fetches the next page; empty on the last page.
	NextPageToken string
}

// List returns a page of user's messages, newest first. Pages are keyset
// pages: new mail arriving between calls never shifts or repeats a page.
func (s *Service) List(ctx context.Context, user string, req ListRequest) (Page, error) {
	size := req.PageSize
	switch {
	case size < 0:
		return Page{}, apierror.Invalid("page_size", "must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	f, err := ParseFilter(req.Filter)
	if err != nil {
		return Page{}, err
	}
	for i, c := range f.Conditions {
		if c.Field == FieldMailbox {
			if c.Owner != user && c.Owner != "me" {
				return Page{}, apierror.Invalid("filter", "mailbox names a mailbox of another user than the parent's")
			}
			f.Conditions[i].Owner = user
		}
	}
	after, err := decodePageToken(user, f, req.PageToken)
	if err != nil {
		return Page{}, err
	}
	msgs, err := s.repo.ListMessages(ctx, ListQuery{User: user, Filter: f, After: after, Limit: size + 1})
	if err != nil {
		return Page{}, err
	}
	var p Page
	if len(msgs) > size {
		msgs = msgs[:size]
		last := msgs[size-1]
		p.NextPageToken = encodePageToken(user, f, Cursor{ReceivedTime: last.ReceivedTime, ID: last.ID})
	}
	p.Messages = msgs
	return p, nil
}

// Get returns one of user's messages.
func (s *Service) Get(ctx context.Context, user, id string) (Message, error) {
	m, err := s.repo.GetMessage(ctx, user, id)
	if errors.Is(err, ErrNotFound) {
		return Message{}, apierror.NotFoundf("message users/%s/messages/%s does not exist", user, id)
	}
	return m, err
}

// Correct records a user's correction of a message's category as the
// message's latest verdict (source user, at at), and returns the message
// after it. The caller has checked the category against the user's
// taxonomy; the correction counts in the usage ledger, at no cost.
func (s *Service) Correct(ctx context.Context, user, id, category string, at time.Time) (Message, error) {
	m, err := s.Get(ctx, user, id)
	if err != nil {
		return Message{}, err
	}
	c := Classification{Category: category, Confidence: 1, Priority: PriorityNormal, Reason: "corrected by the user",
		Source: SourceUser, ClassifyTime: at.UTC().Truncate(time.Microsecond)}
	if m.Classification != nil {
		c.Priority, c.NeedsReply = m.Classification.Priority, m.Classification.NeedsReply
		if !m.Classification.ClassifyTime.Before(c.ClassifyTime) {
			// A verdict is replaced only by a later one.
			c.ClassifyTime = m.Classification.ClassifyTime.Add(time.Microsecond)
		}
	}
	v := m
	v.Classification, v.IngestTime = &c, at
	if err := s.RecordClassified(ctx, []Classified{{Message: v}}); err != nil {
		return Message{}, err
	}
	return s.Get(ctx, user, id)
}

// Stats counts user's messages.
func (s *Service) Stats(ctx context.Context, user string) (Stats, error) {
	return s.repo.Stats(ctx, user)
}

// Usage sums what classifying user's mail has cost, up to now.
func (s *Service) Usage(ctx context.Context, user string) (Usage, error) {
	u, err := s.repo.Usage(ctx, user)
	if err != nil {
		return Usage{}, err
	}
	u.EndTime = s.opts.Now().UTC()
	return u, nil
}

// PurgeUser deletes every message and usage record of user, in batches,
// after recording the deletion, so that the user's events still in flight
// are dropped when they arrive. A user of the same id created afterwards
// starts afresh: events ingested after the deletion are stored.
func (s *Service) PurgeUser(ctx context.Context, user string) (Purged, error) {
	if err := s.repo.MarkUserDeleted(ctx, user, micros(s.opts.Now())); err != nil {
		return Purged{}, err
	}
	var p Purged
	var err error
	sel := Selection{User: user}
	if p.Messages, err = s.deleteAll(ctx, sel, s.repo.DeleteMessages); err != nil {
		return p, err
	}
	p.UsageRecords, err = s.deleteAll(ctx, sel, s.repo.DeleteUsage)
	return p, err
}

// PurgeExpired deletes, in batches, the messages received longer ago than
// the retention, the usage records older than theirs, and the deletion
// records old enough to be forgotten.
func (s *Service) PurgeExpired(ctx context.Context) (Purged, error) {
	now := s.opts.Now()
	var p Purged
	var err error
	if s.opts.Retention > 0 {
		if p.Messages, err = s.deleteAll(ctx, Selection{Before: now.Add(-s.opts.Retention)}, s.repo.DeleteMessages); err != nil {
			return p, err
		}
	}
	if s.opts.UsageRetention > 0 {
		if p.UsageRecords, err = s.deleteAll(ctx, Selection{Before: now.Add(-s.opts.UsageRetention)}, s.repo.DeleteUsage); err != nil {
			return p, err
		}
	}
	p.Tombstones, err = s.repo.DeleteTombstones(ctx, now.Add(-TombstoneRetention))
	return p, err
}

// deleteAll calls del until a batch comes back short.
func (s *Service) deleteAll(ctx context.Context, sel Selection, del func(context.Context, Selection, int) (int64, error)) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := del(ctx, sel, s.opts.PurgeBatch)
		total += n
		if err != nil || n < int64(s.opts.PurgeBatch) {
			return total, err
		}
	}
}
