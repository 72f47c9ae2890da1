// Package mailbox is ingest's domain: the mailboxes a user connects, the
// sync jobs that fetch their mail, and the import that turns raw mail into
// one MailReceived event per message. It knows neither gRPC nor SQL nor
// NATS nor the providers' protocols: those are adapters that implement
// Repository, Publisher, Vault and Provider, or call Service.
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

// IMAPSecurity is how an IMAP connection is protected.
type IMAPSecurity string

// The IMAP security modes.
const (
	IMAPTLS      IMAPSecurity = "TLS"
	IMAPStartTLS IMAPSecurity = "STARTTLS"
	IMAPNone     IMAPSecurity = "NONE"
)

// IMAPSettings are the connection settings of an IMAP mailbox. The
// password is not among them: it lives in the vault.
type IMAPSettings struct {
	Host     string       `json:"host"`
	Port     int          `json:"port"`
	Username string       `json:"username"`
	Security IMAPSecurity `json:"security"`
	// Folders are the folders synced; empty is INBOX alone.
	Folders []string `json:"folders,omitempty"`
}

// DefaultIMAPFolder is the folder synced when none is named.
const DefaultIMAPFolder = "INBOX"

// MaxIMAPFolders bounds the folders of one IMAP mailbox.
const MaxIMAPFolders = 20

// FolderList returns the folders to sync: Folders, or INBOX alone.
func (s IMAPSettings) FolderList() []string {
	if len(s.Folders) == 0 {
		return []string{DefaultIMAPFolder}
	}
	return s.Folders
}

// Mailbox is a source of a user's mail.
type Mailbox struct {
	User        string
	ID          string
	Kind        Kind
	Address     string
	DisplayName string
	State       State
	StateReason string
	// IMAP holds the settings of an IMAP mailbox; nil for other kinds.
	IMAP *IMAPSettings
	// AuthorizationURL is where the user grants access to a GMAIL mailbox.
	// It is set only in the answer to CreateMailbox: its state parameter is
	// a single-use credential and is not stored in the clear.
	AuthorizationURL string
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

// CredentialName is the resource name of the mailbox's credential in the vault.
func (m Mailbox) CredentialName() string { return m.Name() + "/credential" }

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

// Ended reports whether s is a final state.
func (s JobState) Ended() bool { return s == JobSucceeded || s == JobFailed }

// Progress counts what a sync job has done.
type Progress struct {
	Listed    int64
	Fetched   int64
	Published int64
	Skipped   int64
	Failed    int64
	// Classified counts the job's messages the classifier has classified.
	Classified int64
	// Batched counts the job's messages that wait in an OpenAI batch now
	// (gathering or submitted); they move to Classified when their
	// answers land, or leave for the realtime path.
	Batched int64
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
	// Owner names the ingest process running the job, and LeaseUntil is
	// when its claim lapses unless renewed; another process may then take
	// the job over.
	Owner      string
	LeaseUntil time.Time
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
	// ErrJobActive is CreateSyncJob's answer when the mailbox has a
	// PENDING or RUNNING job already.
	ErrJobActive = errors.New("mailbox: a sync job of the mailbox is active")
	// ErrNotRecorded: a message was published but its record is not
	// committed yet (records follow publishes in batches); try again soon.
	ErrNotRecorded = errors.New("mailbox: the message is not recorded yet")
	// ErrQueueFull is a publish refused because the queue of mail waiting
	// for classification is full (MAILROOM_STREAM_MAX_BYTES).
	ErrQueueFull = errors.New("mailbox: the mail queue is full")
)

// RecordStatus is what became of a message a mailbox handed over.
type RecordStatus string

// The record statuses.
const (
	// RecordPublished messages are on their way to the classifier.
	RecordPublished RecordStatus = "published"
	// RecordFailed messages can never be published (too large, not mail);
	// they are recorded so that no later sync fetches them again.
	RecordFailed RecordStatus = "failed"
	// RecordExpired messages are dated before the retention window; they
	// are recorded, not published.
	RecordExpired RecordStatus = "expired"
)

// Record is ingest's memory of one message of a mailbox: syncs skip the
// messages recorded, so that nothing is published twice.
type Record struct {
	User              string
	MailboxID         string
	ProviderMessageID string
	MessageID         string
	// SyncJobID is the job that fetched the message; empty for imports.
	SyncJobID  string
	Status     RecordStatus
	CreateTime time.Time
}

// JobPage is a position in a user's sync jobs, newest first; across
// users (AllUsers), User breaks ties of create time before ID.
type JobPage struct {
	CreateTime time.Time
	User       string
	ID         string
}

// AllUsers, as the user of ListSyncJobs, lists every user's jobs (an
// admin's view: users/-).
const AllUsers = "-"

// Purged counts what PurgeUser deleted.
type Purged struct {
	Mailboxes int64
	SyncJobs  int64
	// Events counts the user's received events still in the event stream.
	Events int64
}

// AuthState is a pending Gmail consent: the hash of its state parameter,
// the mailbox it connects, and the PKCE verifier of the exchange.
type AuthState struct {
	Hash       string
	User       string
	MailboxID  string
	Verifier   string
	ExpireTime time.Time
	// BindingHash is the hash of the binding of the browser that opened
	// the consent first; empty until one did.
	BindingHash string
}

// Repository keeps mailboxes, sync jobs, message records and consent
// states. Implementations return ErrNotFound, ErrAlreadyExists and
// ErrJobActive (possibly wrapped) for those cases.
type Repository interface {
	// CreateMailbox inserts m; ErrAlreadyExists when its name is taken.
	CreateMailbox(ctx context.Context, m Mailbox) error
	// GetMailbox returns a mailbox; ErrNotFound when there is none.
	GetMailbox(ctx context.Context, user, id string) (Mailbox, error)
	// ListMailboxes returns up to limit mailboxes of user whose id sorts
	// after afterID (all when empty), ordered by id.
	ListMailboxes(ctx context.Context, user, afterID string, limit int) ([]Mailbox, error)
	// ListDueMailboxes returns up to limit ACTIVE mailboxes of kinds whose
	// last sync ended before the given time (or never) and that have no
	// active sync job.
	ListDueMailboxes(ctx context.Context, kinds []Kind, before time.Time, limit int) ([]Mailbox, error)
	// SetMailboxState sets a mailbox's state and reason, and its address
	// when address is not empty; ErrNotFound when there is none.
	SetMailboxState(ctx context.Context, user, id string, state State, reason, address string) error
	// RecordSync stores a mailbox's cursor and last sync time; ErrNotFound when there is none.
	RecordSync(ctx context.Context, user, id, cursor string, t time.Time) error
	// DeleteMailbox deletes a mailbox with its sync jobs, records and
	// consent states; ErrNotFound when there is none.
	DeleteMailbox(ctx context.Context, user, id string) error
	// PurgeUser deletes every mailbox of user with everything that hangs on them.
	PurgeUser(ctx context.Context, user string) (Purged, error)

	// KnownMessages returns which of ids the mailbox has records of.
	KnownMessages(ctx context.Context, user, mailboxID string, ids []string) (map[string]bool, error)
	// RecordMessages records, in one transaction, each of recs whose
	// mailbox has no record of its provider message id yet, and counts the
	// new published ones in their mailbox's message count. It returns how
	// many records were new. All of recs belong to one mailbox.
	RecordMessages(ctx context.Context, recs []Record) (int, error)
	// MarkClassified notes that a recorded message was classified and, the
	// first time only, counts it in the progress of job (when not empty).
	// It reports whether this was the first time.
	MarkClassified(ctx context.Context, user, mailboxID, providerMessageID, job string) (bool, error)
	// MarkBatched notes that user's messages (message ids) entered an
	// OpenAI batch (entered) or left one for the realtime path, as of at;
	// each message's sync job counts it in Progress.Batched while it is in
	// one. An event older than the last applied to a message changes
	// nothing to it, so applying one twice is harmless. ErrNotRecorded when
	// some message has no record yet (the others are marked).
	MarkBatched(ctx context.Context, user string, messageIDs []string, entered bool, at time.Time) error

	// CreateSyncJob inserts j; ErrAlreadyExists when its name is taken,
	// ErrJobActive when j is PENDING or RUNNING and its mailbox has such a job.
	CreateSyncJob(ctx context.Context, j SyncJob) error
	// UpdateSyncJob stores j's state, progress, error, times, owner and
	// lease, provided the job's owner is still asOwner; ErrNotFound when
	// the job is gone or another process owns it.
	UpdateSyncJob(ctx context.Context, j SyncJob, asOwner string) error
	// GetSyncJob returns a sync job; ErrNotFound when there is none.
	GetSyncJob(ctx context.Context, user, id string) (SyncJob, error)
	// ListSyncJobs returns up to limit of user's jobs (every user's for
	// AllUsers), newest first, starting after the position after (from
	// the newest when nil).
	ListSyncJobs(ctx context.Context, user string, after *JobPage, limit int) ([]SyncJob, error)
	// ActiveSyncJob returns the PENDING or RUNNING job of a mailbox; ErrNotFound when there is none.
	ActiveSyncJob(ctx context.Context, user, mailboxID string) (SyncJob, error)
	// ClaimSyncJob makes owner the runner of the oldest job that is
	// PENDING, or RUNNING with a lease that lapsed before now, until
	// leaseUntil, and returns it RUNNING; ok is false when there is none.
	ClaimSyncJob(ctx context.Context, owner string, now, leaseUntil time.Time) (job SyncJob, ok bool, err error)

	// CreateAuthState stores a pending consent.
	CreateAuthState(ctx context.Context, a AuthState) error
	// BindAuthState sets the binding hash of the unbound consent whose
	// state hashes to hash and returns it; ErrNotFound when there is no
	// such consent or it is bound already.
	BindAuthState(ctx context.Context, hash, bindingHash string) (AuthState, error)
	// TakeAuthState deletes and returns the consent whose state hashes to
	// hash; ErrNotFound when there is none. A state is thus used once.
	TakeAuthState(ctx context.Context, hash string) (AuthState, error)
	// DeleteExpiredAuthStates deletes the consents that expired before
	// before, and returns how many there were.
	DeleteExpiredAuthStates(ctx context.Context, before time.Time) (int64, error)
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

// EventPurger is a Publisher that can also delete a user's events still in
// the stream.
type EventPurger interface {
	PurgeUser(ctx context.Context, user string) (int64, error)
}

// CredentialKind is what a mailbox's secret is.
type CredentialKind string

// The credential kinds.
const (
	CredentialGmailRefreshToken CredentialKind = "GMAIL_REFRESH_TOKEN"
	CredentialIMAPPassword      CredentialKind = "IMAP_PASSWORD"
)

// Vault keeps mailbox credentials (auth's credential vault).
type Vault interface {
	// PutCredential stores the secret of a mailbox, replacing an earlier one.
	PutCredential(ctx context.Context, mb Mailbox, kind CredentialKind, secret []byte) error
	// GetCredential returns the secret of a mailbox; ErrNotFound when there is none.
	GetCredential(ctx context.Context, mb Mailbox) ([]byte, error)
	// DeleteCredential deletes the secret of a mailbox; none is no error.
	DeleteCredential(ctx context.Context, mb Mailbox) error
}

// ErrInvalidGrant is what a GmailAuth returns (wrapped) when Google refuses
// an authorization code or a refresh token for good (OAuth invalid_grant).
var ErrInvalidGrant = errors.New("mailbox: the provider refused the grant (invalid_grant)")

// GmailAuth is Google's side of the consent flow.
type GmailAuth interface {
	// AuthCodeURL is the consent page's URL for state, with the PKCE
	// (S256) challenge of verifier.
	AuthCodeURL(state, verifier string) string
	// Exchange trades an authorization code for a refresh token and tells
	// the mailbox's address.
	Exchange(ctx context.Context, code, verifier string) (refreshToken, address string, err error)
	// Revoke revokes the grant of a refresh token at Google; a token Google
	// no longer knows is revoked already.
	Revoke(ctx context.Context, refreshToken string) error
}

// IMAPChecker tries IMAP settings before a mailbox is created: it refuses
// addresses ingest may not connect to, and logs in. Its errors are meant
// for the caller (*apierror.Error) unless the server could not be reached.
type IMAPChecker interface {
	CheckIMAP(ctx context.Context, s IMAPSettings, password string) error
}

// Fetched is one raw message a provider fetched.
type Fetched struct {
	ProviderMessageID string
	Raw               []byte
	// ReceivedTime is when the provider received the message (Gmail's
	// internalDate, IMAP's INTERNALDATE); zero when it does not say. It,
	// not the sender's Date header that anyone can forge, is the message's
	// date for retention and the expired check.
	ReceivedTime time.Time
}

// Provider fetches the mail of one kind of mailbox (Gmail, IMAP). IMPORT
// mailboxes have none: their mail is pushed through ImportMessages.
//
// Sync runs one sync job: it lists what the job's mode and the mailbox's
// cursor ask for, skips the messages run.Known reports, hands at most
// run.Job.MaxMessages others, newest first, to run.Deliver, and returns the
// cursor for the next sync. The cursor it returns must not pass a message
// it has not delivered: the next sync starts there. A *DisconnectError
// tells that the mailbox's credential is refused for good.
type Provider interface {
	Sync(ctx context.Context, run *SyncRun) (cursor string, err error)
}

// DisconnectError is a provider's refusal of a mailbox's credential for
// good (a revoked Gmail consent). Reason is shown in the mailbox's state.
type DisconnectError struct {
	Reason string
	Err    error
}

func (e *DisconnectError) Error() string { return "mailbox disconnected: " + e.Reason }

// Unwrap returns the provider's error.
func (e *DisconnectError) Unwrap() error { return e.Err }
