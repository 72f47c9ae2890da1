// Package mailstore is the store service's domain: messages and their
// classifications, the queries over them (list with filter and keyset page
// tokens, get, stats, usage), and the Repository that the postgres and sqlite
// adapters implement. It imports neither gRPC nor a database driver.
//
// (The package is not called "mail" so as not to shadow net/mail.)
package mailstore

import (
	"errors"
	"time"

	"mailroom.dev/platform/resname"
)

// State is where a message is in the chain.
type State string

// The states of a message.
const (
	// StatePending messages have been received and wait for classification.
	StatePending State = "pending"
	// StateClassified messages carry a classification.
	StateClassified State = "classified"
	// StateFailed messages could not be classified (dead-lettered).
	StateFailed State = "failed"
)

// Priority is how soon a person should look at a message.
type Priority string

// The priorities; the zero value means none was given.
const (
	PriorityUnspecified Priority = ""
	PriorityLow         Priority = "low"
	PriorityNormal      Priority = "normal"
	PriorityHigh        Priority = "high"
)

// Source is the tier of the classifier that decided.
type Source string

// The classification sources; the zero value means unknown.
const (
	SourceUnspecified Source = ""
	SourceRules       Source = "rules"
	SourceLLM         Source = "llm"
	SourceCache       Source = "cache"
	SourceLearned     Source = "learned"
	// SourceUser is the user's correction.
	SourceUser Source = "user"
	// SourceDeadLetter marks a usage record of attempts that failed (the
	// message was dead-lettered): paid for, not a classification.
	SourceDeadLetter Source = "dead_letter"
)

// Classification is the classifier's verdict on one message.
type Classification struct {
	// Category is the lowercase name of a category ("newsletters").
	Category   string
	Confidence float32
	Priority   Priority
	NeedsReply bool
	// Reason is a short explanation, never a quote of the mail.
	Reason string
	Source Source
	// Rule names the matching rule when Source is SourceRules.
	Rule string
	// Model names the model when Source is SourceLLM.
	Model string
	// ClassifyTime orders verdicts: a message keeps its latest one.
	ClassifyTime time.Time
}

// Message is a mail's metadata, its state and its classification. Its key is
// (User, ID); ingest derives ID deterministically from the mailbox and the
// provider message id, so that a mail fetched twice is one message.
type Message struct {
	User              string
	ID                string
	MailboxID         string
	ProviderMessageID string

	Subject string
	// From is the formatted sender, FromAddress its bare lowercase address.
	From            string
	FromAddress     string
	To              []string
	ReceivedTime    time.Time
	Snippet         string
	SizeBytes       int64
	AttachmentNames []string
	// Body is the text body, kept only when the service is configured to.
	Body string

	State State
	// Classification is set once the message is classified.
	Classification *Classification

	// CreateTime and UpdateTime are set by the repository.
	CreateTime time.Time
	UpdateTime time.Time

	// IngestTime is when ingest accepted the mail. It is not stored: a
	// write compares it with the user's deletion, so that an event of a
	// deleted user that arrives late is dropped (see MarkUserDeleted).
	IngestTime time.Time
}

// Name returns the message's resource name, users/{user}/messages/{id}.
func (m Message) Name() string { return resname.Message(m.User, m.ID) }

// Mailbox returns the mailbox's resource name, users/{user}/mailboxes/{id}.
func (m Message) Mailbox() string { return resname.Mailbox(m.User, m.MailboxID) }

// Cost is what one classification cost.
type Cost struct {
	PromptTokens       int64
	CompletionTokens   int64
	CachedPromptTokens int64
	CostMicros         int64
	// Requests counts model API requests, retries included.
	Requests int64
	// Models splits the cost by model; empty for a verdict without one.
	Models []ModelCost
}

// ModelCost is what one model's requests cost.
type ModelCost struct {
	Model              string `json:"model"`
	PromptTokens       int64  `json:"prompt_tokens"`
	CompletionTokens   int64  `json:"completion_tokens"`
	CachedPromptTokens int64  `json:"cached_prompt_tokens"`
	CostMicros         int64  `json:"cost_micros"`
	Requests           int64  `json:"requests"`
	Batch              bool   `json:"batch,omitempty"`
}

// Classified is a classified message as the classifier reports it: the
// message's metadata (without its body), its classification, and the cost.
type Classified struct {
	// Message carries the metadata; Message.Classification must be set.
	Message Message
	Cost    Cost
}

// Failed is a message that the classifier gave up on (dead-lettered).
type Failed struct {
	// Message carries the metadata of the original MailReceived.
	Message Message
	// Reason says why, without mail content.
	Reason string
	// FailTime is when the classifier gave up; the latest failure's reason
	// is kept.
	FailTime time.Time
	// Cost is what the failed attempts cost; it goes into the usage ledger
	// (source dead_letter), once per failure.
	Cost Cost
}

// Cursor is a position in the newest-first order of a user's messages:
// (ReceivedTime, ID), both descending.
type Cursor struct {
	ReceivedTime time.Time
	ID           string
}

// ListQuery is what a repository lists: the user's messages that match
// Filter and come strictly after After (when set) in newest-first order, at
// most Limit of them.
type ListQuery struct {
	User   string
	Filter Filter
	After  *Cursor
	Limit  int
}

// CategoryCount is the number of classified messages in one category.
type CategoryCount struct {
	Category string
	Count    int64
}

// MailboxCount is the number of messages of one mailbox.
type MailboxCount struct {
	MailboxID  string
	Count      int64
	Classified int64
}

// Stats counts a user's messages.
type Stats struct {
	Total      int64
	Classified int64
	Pending    int64
	Failed     int64
	// Categories are sorted largest first, then by name.
	Categories []CategoryCount
	// Mailboxes are sorted by mailbox id.
	Mailboxes []MailboxCount
}

// Usage sums what classification has cost a user. Every verdict counts once,
// however often its event was delivered.
type Usage struct {
	Classifications      int64
	RuleClassifications  int64
	LLMClassifications   int64
	CacheClassifications int64
	// LearnedClassifications came from a learned sender; UserClassifications
	// are corrections.
	LearnedClassifications int64
	UserClassifications    int64
	// DeadLetters counts failures whose attempts' cost is in the sums.
	DeadLetters        int64
	Requests           int64
	PromptTokens       int64
	CompletionTokens   int64
	CachedPromptTokens int64
	CostMicros         int64
	// Models splits the cost by model, sorted by model name.
	Models []ModelCost
	// StartTime is the classify time of the earliest verdict counted, zero
	// when there is none; EndTime is when the sum was taken.
	StartTime time.Time
	EndTime   time.Time
}

// Selection selects the rows that a delete removes: all of User's, or
// (when User is empty) those older than Before — messages by received
// time, usage records by classify time.
type Selection struct {
	User   string
	Before time.Time
}

// Purged counts what a purge deleted.
type Purged struct {
	Messages     int64
	UsageRecords int64
	// Tombstones are deletion records old enough to be forgotten.
	Tombstones int64
}

// ErrNotFound is returned by a repository for a message that does not exist.
var ErrNotFound = errors.New("mailstore: not found")
