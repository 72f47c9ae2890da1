// Package mailbox is ingest's domain: the mailboxes a user connects, the
// sync jobs that fetch their mail, and the import that turns raw mail into
// one MailReceived event per message. It knows neither gRPC nor SQL nor
// NATS: those are adapters that implement Repository and Publisher, or call
// Service.
package mailbox

import (
	"context"
	"errors"
	"time"

	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailparse"
)

// Kind is where a mailbox's mail comes from.
type Kind string

// The kinds of mailbox.
const (
	KindImport Kind = "IMPORT"
	KindGmail  Kind = "GMAIL"
	KindIMAP   Kind = "IMAP"
)

// State is whether a mailbox can be synced.
type State string

// The states of a mailbox.
const (
	StateActive               State = "ACTIVE"
	StatePendingAuthorization State = "PENDING_AUTHORIZATION"
	StateDisconnected         State = "DISCONNECTED"
)

// Mailbox is a source of a user's mail.
type Mailbox struct {
	User        string
	ID          string
	Kind        Kind
	Address     string
	DisplayName string
	State       State
	StateReason string
	// Cursor is the provider's position after the last sync (a Gmail
	// historyId, an IMAP UIDVALIDITY and UID); empty before the first.
	Cursor       string
	MessageCount int64
	CreateTime   time.Time
	// LastSyncTime is when the last sync job ended; zero before the first.
	LastSyncTime time.Time
}

// Name is the mailbox's resource name.
func (m Mailbox) Name() string { return resname.Mailbox(m.User, m.ID) }

// SyncMode is how much a sync fetches.
type SyncMode string

// The sync modes.
const (
	SyncFull        SyncMode = "FULL"
	SyncIncremental SyncMode = "INCREMENTAL"
)

// JobState is where a sync job is in its life.
type JobState string

// The states of a sync job.
const (
	JobPending   JobState = "PENDING"
	JobRunning   JobState = "RUNNING"
	JobSucceeded JobState = "SUCCEEDED"
	JobFailed    JobState = "FAILED"
)

// Progress counts what a sync job has done.
type Progress struct {
	Listed    int64
	Fetched   int64
	Published int64
	Skipped   int64
	Failed    int64
}

// SyncJob is one sync of a mailbox.
type SyncJob struct {
	User        string
	ID          string
	MailboxID   string
	Mode        SyncMode
	MaxMessages int
	State       JobState
	Progress    Progress
	// Error explains a FAILED job; it never holds mail content.
	Error      string
	CreateTime time.Time
	UpdateTime time.Time
	// EndTime is when the job succeeded or failed; zero before.
	EndTime time.Time
}

// Name is the job's resource name.
func (j SyncJob) Name() string { return resname.SyncJob(j.User, j.ID) }

// MailboxName is the resource name of the job's mailbox.
func (j SyncJob) MailboxName() string { return resname.Mailbox(j.User, j.MailboxID) }

// Lane is the scheduling lane a message is classified in; its value is the
// lane's segment of the mail.received subject.
type Lane string

// The lanes, in the order the classifier serves them.
const (
	LaneInteractive Lane = "interactive"
	LaneLive        Lane = "live"
	LaneBackfill    Lane = "backfill"
)

// Errors a Repository returns.
var (
	ErrNotFound      = errors.New("mailbox: not found")
	ErrAlreadyExists = errors.New("mailbox: already exists")
)

// Repository keeps mailboxes and sync jobs. Implementations return
// ErrNotFound and ErrAlreadyExists (possibly wrapped) for those cases.
type Repository interface {
	// CreateMailbox inserts m; ErrAlreadyExists when its name is taken.
	CreateMailbox(ctx context.Context, m Mailbox) error
	// GetMailbox returns a mailbox; ErrNotFound when there is none.
	GetMailbox(ctx context.Context, user, id string) (Mailbox, error)
	// ListMailboxes returns up to limit mailboxes of user whose id sorts
	// after afterID (all when empty), ordered by id.
	ListMailboxes(ctx context.Context, user, afterID string, limit int) ([]Mailbox, error)
	// AddMessageCount adds n to a mailbox's message count; ErrNotFound when there is none.
	AddMessageCount(ctx context.Context, user, id string, n int64) error
	// RecordSync stores a mailbox's cursor and last sync time; ErrNotFound when there is none.
	RecordSync(ctx context.Context, user, id, cursor string, t time.Time) error
	// CreateSyncJob inserts j; ErrAlreadyExists when its name is taken.
	CreateSyncJob(ctx context.Context, j SyncJob) error
	// UpdateSyncJob stores j's state, progress, error and times; ErrNotFound when there is none.
	UpdateSyncJob(ctx context.Context, j SyncJob) error
	// GetSyncJob returns a sync job; ErrNotFound when there is none.
	GetSyncJob(ctx context.Context, user, id string) (SyncJob, error)
}

// Received is a message accepted from a mailbox, on its way to the classifier.
type Received struct {
	User      string
	MailboxID string
	// MessageID is the last segment of the message's resource name.
	MessageID         string
	ProviderMessageID string
	Lane              Lane
	Content           *mailparse.Message
	IngestTime        time.Time
	// SyncJobID names the sync job that fetched the message; empty for imports.
	SyncJobID string
}

// DedupID is the event's de-duplication id (Nats-Msg-Id): the user, the
// mailbox id and the provider message id. JetStream de-duplicates per
// stream on this id alone, and mailbox ids are unique per user only, so the
// user is part of it: two users' "inbox" mailboxes never shadow each other.
func (r Received) DedupID() string { return r.User + "/" + r.MailboxID + "/" + r.ProviderMessageID }

// Publisher hands received messages to the classifier.
type Publisher interface {
	// PublishReceived publishes r and returns once the stream has it;
	// duplicate tells that the stream had it already.
	PublishReceived(ctx context.Context, r Received) (duplicate bool, err error)
}

// Fetched is one raw message a provider fetched.
type Fetched struct {
	ProviderMessageID string
	Raw               []byte
}

// Provider fetches mail from where a mailbox's mail lives (Gmail, IMAP).
// IMPORT mailboxes have none: their mail is pushed through ImportMessages.
//
// This is the seam for the providers of a later issue: Sync lists what job
// asks for (everything, newest first, for FULL; what came after mb.Cursor
// for INCREMENTAL), at most job.MaxMessages, hands each message to deliver
// (which parses and publishes it, and counts progress), and returns the
// cursor to keep for the next incremental sync.
type Provider interface {
	Sync(ctx context.Context, mb Mailbox, job SyncJob, deliver func(context.Context, Fetched) error) (cursor string, err error)
}
