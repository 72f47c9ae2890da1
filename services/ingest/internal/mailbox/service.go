package mailbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailparse"
)

// Bounds of the API.
const (
	// MaxImportBatch is the most messages one ImportMessages call takes.
	MaxImportBatch = 1000
	// DefaultPageSize and MaxPageSize bound ListMailboxes pages.
	DefaultPageSize = 50
	MaxPageSize     = 1000
	// DefaultSyncMessages and MaxSyncMessages bound what one sync fetches.
	DefaultSyncMessages = 100
	MaxSyncMessages     = 10000
	// DefaultMaxMessageBytes is the default bound of one raw message (25 MiB).
	DefaultMaxMessageBytes = 25 << 20

	maxAddress     = 320
	maxDisplayName = 200
)

// ReasonMessageTooLarge is the ErrorInfo reason of a message over the size limit.
const ReasonMessageTooLarge = apierror.ReasonMessageTooLarge

// Config configures a Service.
type Config struct {
	// MaxMessageBytes bounds one raw message (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Limits bound the MIME parse.
	Limits mailparse.Limits
	// Now tells the time (default time.Now).
	Now func() time.Time
	// Logger receives what goes wrong after a request was answered for.
	Logger *slog.Logger
}

// Service is ingest's use cases. Callers have authorized the user already.
type Service struct {
	repo Repository
	pub  Publisher
	cfg  Config
}

// NewService returns a Service over repo and pub.
func NewService(repo Repository, pub Publisher, cfg Config) *Service {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{repo: repo, pub: pub, cfg: cfg}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// CreateMailbox connects a mailbox of kind m.Kind for user, named id (a
// random id when empty). Only IMPORT mailboxes exist in this release.
func (s *Service) CreateMailbox(ctx context.Context, user string, m Mailbox, id string) (Mailbox, error) {
	switch m.Kind {
	case KindImport:
	case KindGmail, KindIMAP:
		return Mailbox{}, apierror.Unimplementedf("%s mailboxes are not supported yet: only IMPORT mailboxes can be created", m.Kind)
	case "":
		return Mailbox{}, apierror.Invalid("mailbox.provider", "is required: IMPORT, GMAIL or IMAP")
	default:
		return Mailbox{}, apierror.Invalid("mailbox.provider", "%q is not a provider: IMPORT, GMAIL or IMAP", m.Kind)
	}
	m.Address = strings.TrimSpace(m.Address)
	m.DisplayName = strings.TrimSpace(m.DisplayName)
	if len(m.Address) > maxAddress {
		return Mailbox{}, apierror.Invalid("mailbox.address", "is longer than %d bytes", maxAddress)
	}
	if len(m.DisplayName) > maxDisplayName {
		return Mailbox{}, apierror.Invalid("mailbox.display_name", "is longer than %d bytes", maxDisplayName)
	}
	if id != "" && !resname.ValidID(id) {
		return Mailbox{}, apierror.Invalid("mailbox_id", "%q is not a valid id: 1 to 63 lowercase letters, digits and hyphens, starting with a letter or digit", id)
	}
	m.User = user
	m.State = StateActive
	m.StateReason = ""
	m.Cursor = ""
	m.MessageCount = 0
	m.CreateTime = s.now()
	m.LastSyncTime = time.Time{}

	chosen := id != ""
	for attempt := 0; ; attempt++ {
		if !chosen {
			id = randomID()
		}
		m.ID = id
		err := s.repo.CreateMailbox(ctx, m)
		switch {
		case err == nil:
			return m, nil
		case errors.Is(err, ErrAlreadyExists) && chosen:
			return Mailbox{}, apierror.AlreadyExistsf("mailbox %s already exists", m.Name())
		case errors.Is(err, ErrAlreadyExists) && attempt < 3:
			continue // a random id collided: draw another
		default:
			return Mailbox{}, fmt.Errorf("create mailbox: %w", err)
		}
	}
}

// GetMailbox returns one of user's mailboxes.
func (s *Service) GetMailbox(ctx context.Context, user, id string) (Mailbox, error) {
	m, err := s.repo.GetMailbox(ctx, user, id)
	if errors.Is(err, ErrNotFound) {
		return Mailbox{}, apierror.NotFoundf("mailbox %s does not exist", resname.Mailbox(user, id))
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("get mailbox: %w", err)
	}
	return m, nil
}

// ListMailboxes returns a page of user's mailboxes, ordered by id, and the
// token of the next page (empty on the last).
func (s *Service) ListMailboxes(ctx context.Context, user string, pageSize int, pageToken string) ([]Mailbox, string, error) {
	switch {
	case pageSize < 0:
		return nil, "", apierror.Invalid("page_size", "must not be negative")
	case pageSize == 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	after, err := decodePageToken(user, pageToken)
	if err != nil {
		return nil, "", err
	}
	ms, err := s.repo.ListMailboxes(ctx, user, after, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("list mailboxes: %w", err)
	}
	next := ""
	if len(ms) > pageSize {
		ms = ms[:pageSize]
		next = encodePageToken(user, ms[len(ms)-1].ID)
	}
	return ms, next, nil
}

// Page tokens are opaque to callers: base64url of a version, the user (so
// that a token works only for the listing it came from) and the last id.
const pageTokenVersion = "m1"

func encodePageToken(user, afterID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenVersion + "\x00" + user + "\x00" + afterID))
}

func decodePageToken(user, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	parts := strings.Split(string(b), "\x00")
	if err != nil || len(parts) != 3 || parts[0] != pageTokenVersion || !resname.ValidID(parts[2]) {
		return "", apierror.Invalid("page_token", "is not a token returned by ListMailboxes")
	}
	if parts[1] != user {
		return "", apierror.Invalid("page_token", "belongs to another listing")
	}
	return parts[2], nil
}

// Imported is the outcome of one imported message.
type Imported struct {
	// MessageID is the last segment of the message's resource name.
	MessageID         string
	ProviderMessageID string
	Subject           string
	// Duplicate tells that the stream had the message already.
	Duplicate bool
}

// ImportMessages accepts raw messages into one of user's IMPORT mailboxes.
// The batch is validated and parsed whole before anything is published, so
// one bad message rejects it all. Each message is then published, in order;
// it is accepted once the stream has acknowledged it. lane is the lane to
// classify in (backfill when empty).
func (s *Service) ImportMessages(ctx context.Context, user, mailboxID string, raws [][]byte, lane Lane) ([]Imported, error) {
	if len(raws) == 0 {
		return nil, apierror.Invalid("messages", "is empty: send at least one message")
	}
	if len(raws) > MaxImportBatch {
		return nil, apierror.Invalid("messages", "has %d messages; at most %d are accepted per call", len(raws), MaxImportBatch)
	}
	if lane == "" {
		lane = LaneBackfill
	}
	mb, err := s.GetMailbox(ctx, user, mailboxID)
	if err != nil {
		return nil, err
	}
	if mb.Kind != KindImport {
		return nil, apierror.Preconditionf("mailbox %s is a %s mailbox: only IMPORT mailboxes accept imported messages", mb.Name(), mb.Kind)
	}

	now := s.now()
	batch := make([]Received, len(raws))
	for i, raw := range raws {
		field := fmt.Sprintf("messages[%d].raw", i)
		if len(raw) == 0 {
			return nil, apierror.Invalid(field, "is empty")
		}
		if len(raw) > s.cfg.MaxMessageBytes {
			return nil, apierror.Invalid(field, "is %d bytes, over the limit of %d bytes per message", len(raw), s.cfg.MaxMessageBytes).
				WithReason(ReasonMessageTooLarge).
				WithMetadata("size_bytes", fmt.Sprint(len(raw))).
				WithMetadata("limit_bytes", fmt.Sprint(s.cfg.MaxMessageBytes))
		}
		content, err := mailparse.Parse(raw, mailparse.Options{Now: now, Limits: s.cfg.Limits})
		if err != nil {
			return nil, parseError(field, err)
		}
		pid := ImportProviderMessageID(raw)
		batch[i] = Received{
			User:              user,
			MailboxID:         mb.ID,
			MessageID:         MessageID(mb.Name(), pid),
			ProviderMessageID: pid,
			Lane:              lane,
			Content:           content,
			IngestTime:        now,
		}
	}

	out := make([]Imported, 0, len(batch))
	var added int64
	for i, r := range batch {
		dup, err := s.pub.PublishReceived(ctx, r)
		if err != nil {
			s.addMessageCount(ctx, mb, added)
			return nil, apierror.Unavailablef(err, "publishing messages[%d] failed; the %d messages before it were accepted, and sending the batch again is safe (re-imports are de-duplicated)", i, i)
		}
		if !dup {
			added++
		}
		out = append(out, Imported{MessageID: r.MessageID, ProviderMessageID: r.ProviderMessageID, Subject: r.Content.Subject, Duplicate: dup})
	}
	s.addMessageCount(ctx, mb, added)
	return out, nil
}

// addMessageCount counts newly published messages. The messages are
// accepted whatever happens here, so a failure is logged, not returned.
func (s *Service) addMessageCount(ctx context.Context, mb Mailbox, n int64) {
	if n == 0 {
		return
	}
	if err := s.repo.AddMessageCount(ctx, mb.User, mb.ID, n); err != nil {
		s.cfg.Logger.WarnContext(ctx, "message count not updated", "mailbox", mb.Name(), "added", n, "error", err.Error())
	}
}

func parseError(field string, err error) error {
	if errors.Is(err, mailparse.ErrEmpty) {
		return apierror.Invalid(field, "is empty")
	}
	var perr *mailparse.Error
	if errors.As(err, &perr) {
		if perr.Limit {
			return apierror.Invalid(field, "is beyond what ingest parses: %s", perr.Reason).WithReason("MESSAGE_TOO_COMPLEX")
		}
		return apierror.Invalid(field, "is not an RFC 822 message: %s", perr.Reason)
	}
	return apierror.Invalid(field, "is not an RFC 822 message")
}

// ImportProviderMessageID is the provider message id of an imported
// message: the hex of the first 16 bytes of the SHA-256 of its bytes, so
// that importing the same bytes again is a duplicate.
func ImportProviderMessageID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// MessageID is the id of a message (the last segment of
// users/{user}/messages/{id}): the hex of the first 16 bytes of the
// SHA-256 of its mailbox's name, a zero byte and its provider message id.
func MessageID(mailboxName, providerMessageID string) string {
	sum := sha256.Sum256([]byte(mailboxName + "\x00" + providerMessageID))
	return hex.EncodeToString(sum[:16])
}

// SyncMailbox starts a sync job of one of user's mailboxes. mode empty
// means INCREMENTAL after a first sync and FULL before; maxMessages zero
// means DefaultSyncMessages.
func (s *Service) SyncMailbox(ctx context.Context, user, mailboxID string, mode SyncMode, maxMessages int) (SyncJob, error) {
	switch {
	case maxMessages < 0:
		return SyncJob{}, apierror.Invalid("max_messages", "must not be negative")
	case maxMessages > MaxSyncMessages:
		return SyncJob{}, apierror.Invalid("max_messages", "is %d; at most %d messages are fetched by one sync", maxMessages, MaxSyncMessages)
	case maxMessages == 0:
		maxMessages = DefaultSyncMessages
	}
	mb, err := s.GetMailbox(ctx, user, mailboxID)
	if err != nil {
		return SyncJob{}, err
	}
	if mode == "" {
		mode = SyncFull
		if !mb.LastSyncTime.IsZero() {
			mode = SyncIncremental
		}
	}
	now := s.now()
	job := SyncJob{
		User:        user,
		ID:          randomID(),
		MailboxID:   mb.ID,
		Mode:        mode,
		MaxMessages: maxMessages,
		State:       JobPending,
		CreateTime:  now,
		UpdateTime:  now,
	}
	if mb.Kind == KindImport {
		// An IMPORT mailbox has nothing to fetch: its mail is pushed through
		// ImportMessages. Its sync job therefore ends SUCCEEDED at once, with
		// zero progress, so that callers treat every mailbox alike.
		job.State = JobSucceeded
		job.EndTime = now
		if err := s.repo.CreateSyncJob(ctx, job); err != nil {
			return SyncJob{}, fmt.Errorf("create sync job: %w", err)
		}
		if err := s.repo.RecordSync(ctx, user, mb.ID, mb.Cursor, now); err != nil {
			return SyncJob{}, fmt.Errorf("record sync: %w", err)
		}
		return job, nil
	}
	// GMAIL and IMAP mailboxes cannot be created yet. A later issue runs
	// their Provider here: store the PENDING job, then a worker moves it to
	// RUNNING, calls Provider.Sync with a deliver that parses, publishes and
	// counts progress, records the cursor, and ends the job SUCCEEDED or FAILED.
	return SyncJob{}, apierror.Unimplementedf("syncing %s mailboxes is not supported yet", mb.Kind)
}

// GetSyncJob returns one of user's sync jobs.
func (s *Service) GetSyncJob(ctx context.Context, user, id string) (SyncJob, error) {
	j, err := s.repo.GetSyncJob(ctx, user, id)
	if errors.Is(err, ErrNotFound) {
		return SyncJob{}, apierror.NotFoundf("sync job %s does not exist", resname.SyncJob(user, id))
	}
	if err != nil {
		return SyncJob{}, fmt.Errorf("get sync job: %w", err)
	}
	return j, nil
}

// randomID returns 16 random lowercase hex digits, a valid resource id.
func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
