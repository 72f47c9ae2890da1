package mailbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailparse"
)

// Bounds of the API.
const (
	// MaxImportBatch is the most messages one ImportMessages call takes.
	MaxImportBatch = 1000
	// DefaultPageSize and MaxPageSize bound ListMailboxes and ListSyncJobs pages.
	DefaultPageSize = 50
	MaxPageSize     = 1000
	// DefaultSyncMessages and MaxSyncMessages bound what one sync fetches.
	DefaultSyncMessages = 100
	MaxSyncMessages     = 10000
	// DefaultMaxMessageBytes is the default bound of one raw message (25 MiB).
	DefaultMaxMessageBytes = 25 << 20

	maxAddress     = 320
	maxDisplayName = 200
	maxIMAPField   = 255
	maxIMAPSecret  = 1024
)

// ReasonMessageTooLarge is the ErrorInfo reason of a message over the size limit.
const ReasonMessageTooLarge = apierror.ReasonMessageTooLarge

// ReasonQueueFull is the ErrorInfo reason of an import refused because
// the queue of mail waiting for classification is full.
const ReasonQueueFull = "QUEUE_FULL"

// ReasonSyncRunning is the ErrorInfo reason of a sync refused because the
// mailbox has a job running.
const ReasonSyncRunning = "SYNC_ALREADY_RUNNING"

// Config configures a Service. Zero values take the defaults noted.
type Config struct {
	// MaxMessageBytes bounds one raw message (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Limits bound the MIME parse.
	Limits mailparse.Limits
	// Now tells the time (default time.Now).
	Now func() time.Time
	// Logger receives what goes wrong after a request was answered for.
	Logger *slog.Logger

	// Deleted is the deletion marker, when set: whether user was deleted
	// at or after since (a mailbox's creation). Nothing of a mailbox
	// created before its user's deletion is published, even by a sync
	// that another replica was running when DeleteUser began.
	Deleted func(ctx context.Context, user string, since time.Time) (bool, error)

	// Vault keeps the credentials of GMAIL and IMAP mailboxes.
	Vault Vault
	// Providers sync the mailboxes of each kind.
	Providers map[Kind]Provider
	// Gmail is Google's consent flow; nil when Gmail is not configured.
	Gmail GmailAuth
	// IMAP checks IMAP settings at creation.
	IMAP IMAPChecker
	// ConsentStartURL is the gateway's /oauth/google/start: the
	// authorization URL of a Gmail mailbox is it with the state, so that
	// the browser that opens it is bound to the consent (a cookie) before
	// it goes on to Google.
	ConsentStartURL string
	// AuthStateTTL is how long a Gmail authorization URL stays valid (default 15m).
	AuthStateTTL time.Duration
	// MaxMessageAge, when set, is the store's retention: a sync does not
	// publish mail dated before it (the store would purge it within the
	// hour, after the classifier had paid for it); it records it as
	// expired and counts it as skipped.
	MaxMessageAge time.Duration

	// Owner names this process among the replicas that run sync jobs
	// (default random).
	Owner string
	// Lease is how long a process's claim of a job lasts unless renewed
	// (default 30s); another replica takes over a job whose lease lapsed.
	Lease time.Duration
	// Poll is how often the runner looks for jobs that other replicas
	// created or gave up (default 2s).
	Poll time.Duration
	// MaxJobs bounds the jobs this process runs at once (default 4).
	MaxJobs int
	// SyncInterval is how often the scheduler syncs each active GMAIL and
	// IMAP mailbox; zero disables the scheduler.
	SyncInterval time.Duration
	// PushSyncFactor stretches SyncInterval for Gmail mailboxes while
	// pushes arrive (0 or 1: never).
	PushSyncFactor int
	// Idler holds IMAP IDLE; MaxIdle bounds the connections this process
	// holds (0: none); IdleReissue is how often an IDLE is issued again
	// (0: the Idler's default).
	Idler       Idler
	MaxIdle     int
	IdleReissue time.Duration
	// IdleLeases spreads the IDLE connections across replicas, each
	// mailbox's held by one (package idlelease); nil: this process alone
	// holds them (one replica, or tests).
	IdleLeases IdleLeases
	// WatchInterval is how often WatchSyncJob looks at its job (default 500ms).
	WatchInterval time.Duration
	// MeterProvider makes the sync metrics (mailroom_sync_*); nil means the
	// global one.
	MeterProvider metric.MeterProvider
}

// Service is ingest's use cases. Callers have authorized the user already.
type Service struct {
	repo Repository
	pub  Publisher
	cfg  Config

	wake chan struct{}
	mu   sync.Mutex
	// running maps user/mailbox to the cancel function of its job in this process.
	running map[string]context.CancelFunc
	metrics *metrics
	// push coalesces Gmail pushes (push.go).
	pushOnce sync.Once
	push     *pushState
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
	if cfg.AuthStateTTL <= 0 {
		cfg.AuthStateTTL = 15 * time.Minute
	}
	if cfg.Owner == "" {
		cfg.Owner = randomID()
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 4
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 500 * time.Millisecond
	}
	return &Service{repo: repo, pub: pub, cfg: cfg, wake: make(chan struct{}, 1), running: map[string]context.CancelFunc{},
		metrics: newMetrics(cfg.MeterProvider)}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// CreateMailbox connects a mailbox of kind m.Kind for user, named id (a
// random id when empty). An IMPORT mailbox is ACTIVE at once. A GMAIL
// mailbox waits for the user's consent (PENDING_AUTHORIZATION) at the
// returned mailbox's AuthorizationURL. An IMAP mailbox is tried (the
// address checked, a login made) and its password put in the vault.
func (s *Service) CreateMailbox(ctx context.Context, user string, m Mailbox, id, imapPassword string) (Mailbox, error) {
	switch m.Kind {
	case KindImport:
		m.IMAP = nil
	case KindGmail:
		if s.cfg.Gmail == nil || s.cfg.Providers[KindGmail] == nil {
			return Mailbox{}, apierror.Preconditionf("Gmail is not configured on this server: the operator sets GOOGLE_OAUTH_CLIENT_ID, GOOGLE_OAUTH_CLIENT_SECRET and MAILROOM_PUBLIC_URL")
		}
		m.IMAP = nil
	case KindIMAP:
		if s.cfg.IMAP == nil || s.cfg.Providers[KindIMAP] == nil {
			return Mailbox{}, apierror.Preconditionf("IMAP is not configured on this server")
		}
		if err := validateIMAP(m.IMAP, imapPassword); err != nil {
			return Mailbox{}, err
		}
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
	if id != "" {
		// Fail before trying a server or minting a consent for a name that is taken.
		if _, err := s.repo.GetMailbox(ctx, user, id); err == nil {
			return Mailbox{}, apierror.AlreadyExistsf("mailbox %s already exists", resname.Mailbox(user, id))
		} else if !errors.Is(err, ErrNotFound) {
			return Mailbox{}, fmt.Errorf("get mailbox: %w", err)
		}
	}
	if m.Kind == KindIMAP {
		if err := s.cfg.IMAP.CheckIMAP(ctx, *m.IMAP, imapPassword); err != nil {
			return Mailbox{}, err
		}
	}

	m.User = user
	m.State = StateActive
	m.StateReason = ""
	m.Cursor = ""
	m.MessageCount = 0
	m.CreateTime = s.now()
	m.LastSyncTime = time.Time{}
	m.AuthorizationURL = ""
	if m.Kind == KindGmail {
		m.State = StatePendingAuthorization
		m.StateReason = pendingReason(m.CreateTime.Add(s.cfg.AuthStateTTL))
	}

	m, err := s.insertMailbox(ctx, m, id)
	if err != nil {
		return Mailbox{}, err
	}
	switch m.Kind {
	case KindGmail:
		url, err := s.newConsent(ctx, m, m.CreateTime)
		if err != nil {
			s.undoCreate(ctx, m)
			return Mailbox{}, err
		}
		m.AuthorizationURL = url
	case KindIMAP:
		if err := s.cfg.Vault.PutCredential(ctx, m, CredentialIMAPPassword, []byte(imapPassword)); err != nil {
			s.undoCreate(ctx, m)
			return Mailbox{}, apierror.Unavailablef(err, "the credential vault did not take the password; the mailbox was not created")
		}
	}
	return m, nil
}

// pendingReason is the state reason of a mailbox waiting for its consent.
func pendingReason(until time.Time) string {
	return "waiting for the user's consent at the authorization URL returned when the mailbox was created or reconnected (valid until " +
		until.Format(time.RFC3339) + "); to get a new URL, reconnect the mailbox"
}

// newConsent records a pending Gmail consent for m (single-use state, PKCE
// verifier, valid for AuthStateTTL from now) and returns its URL.
func (s *Service) newConsent(ctx context.Context, m Mailbox, now time.Time) (string, error) {
	state, verifier := randomToken(), randomToken()
	err := s.repo.CreateAuthState(ctx, AuthState{
		Hash: hashState(state), User: m.User, MailboxID: m.ID, Verifier: verifier,
		ExpireTime: now.Add(s.cfg.AuthStateTTL),
	})
	if err != nil {
		return "", fmt.Errorf("create auth state: %w", err)
	}
	if s.cfg.ConsentStartURL == "" {
		return "", errors.New("no consent start URL is configured")
	}
	return s.cfg.ConsentStartURL + "?" + url.Values{"state": {state}}.Encode(), nil
}

// StartAuthorization binds the pending consent of state to binding (a
// secret the gateway keeps in the cookie of the browser that opened the
// authorization URL first) and returns Google's consent URL. A state binds
// once: a second browser, or a link opened again, is refused.
func (s *Service) StartAuthorization(ctx context.Context, state, binding string) (string, error) {
	if s.cfg.Gmail == nil {
		return "", apierror.Preconditionf("Gmail is not configured on this server")
	}
	if state == "" || len(state) > 200 {
		return "", apierror.Invalid("state", "is required: it is the state parameter of the authorization URL")
	}
	if len(binding) < 16 || len(binding) > 200 {
		return "", apierror.Invalid("binding", "is required: a random secret of the browser")
	}
	a, err := s.repo.BindAuthState(ctx, hashState(state), hashState(binding))
	if errors.Is(err, ErrNotFound) {
		return "", apierror.Invalid("state", "is unknown, was used already or was opened in another browser: start the connection again by reconnecting the mailbox")
	}
	if err != nil {
		return "", fmt.Errorf("bind auth state: %w", err)
	}
	if s.now().After(a.ExpireTime) {
		return "", apierror.Preconditionf("the authorization URL expired: reconnect the mailbox for a new one")
	}
	return s.cfg.Gmail.AuthCodeURL(state, a.Verifier), nil
}

// ReconnectMailbox starts a new consent for a Gmail mailbox that is
// DISCONNECTED or still PENDING_AUTHORIZATION, and returns it pending with
// the new authorization URL. Its cursor, records and messages stay: the
// consent that comes back makes it ACTIVE, and its next sync goes on where
// the last one stopped. Earlier URLs stay valid until they expire; the
// first consent to come back wins.
func (s *Service) ReconnectMailbox(ctx context.Context, user, id string) (Mailbox, error) {
	mb, err := s.GetMailbox(ctx, user, id)
	if err != nil {
		return Mailbox{}, err
	}
	if mb.Kind != KindGmail {
		return Mailbox{}, apierror.Preconditionf("mailbox %s is not a Gmail mailbox: only Gmail mailboxes are connected through a consent", mb.Name())
	}
	if s.cfg.Gmail == nil {
		return Mailbox{}, apierror.Preconditionf("Gmail is not configured on this server")
	}
	if mb.State == StateActive {
		return Mailbox{}, apierror.Preconditionf("mailbox %s is connected already: reconnect a DISCONNECTED mailbox", mb.Name())
	}
	now := s.now()
	url, err := s.newConsent(ctx, mb, now)
	if err != nil {
		return Mailbox{}, err
	}
	if err := s.repo.SetMailboxState(ctx, user, id, StatePendingAuthorization, pendingReason(now.Add(s.cfg.AuthStateTTL)), ""); err != nil {
		return Mailbox{}, fmt.Errorf("reconnect mailbox: %w", err)
	}
	mb, err = s.GetMailbox(ctx, user, id)
	if err != nil {
		return Mailbox{}, err
	}
	mb.AuthorizationURL = url
	return mb, nil
}

func (s *Service) insertMailbox(ctx context.Context, m Mailbox, id string) (Mailbox, error) {
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

func (s *Service) undoCreate(ctx context.Context, m Mailbox) {
	if err := s.repo.DeleteMailbox(context.WithoutCancel(ctx), m.User, m.ID); err != nil && !errors.Is(err, ErrNotFound) {
		s.cfg.Logger.WarnContext(ctx, "half-created mailbox not removed", "mailbox", m.Name(), "error", err.Error())
	}
}

func validateIMAP(st *IMAPSettings, password string) error {
	if st == nil {
		return apierror.Invalid("mailbox.imap", "is required for an IMAP mailbox: host, port, username, password and security")
	}
	st.Host = strings.TrimSpace(strings.TrimSuffix(strings.ToLower(st.Host), "."))
	st.Username = strings.TrimSpace(st.Username)
	switch {
	case st.Host == "":
		return apierror.Invalid("mailbox.imap.host", "is required")
	case len(st.Host) > maxIMAPField || strings.ContainsAny(st.Host, "/:@ \t?#[]") && net.ParseIP(st.Host) == nil:
		return apierror.Invalid("mailbox.imap.host", "is not a host name or an IP address")
	case st.Username == "":
		return apierror.Invalid("mailbox.imap.username", "is required")
	case len(st.Username) > maxIMAPField || strings.ContainsAny(st.Username, "\r\n\x00"):
		return apierror.Invalid("mailbox.imap.username", "is not a valid login name")
	case password == "":
		return apierror.Invalid("mailbox.imap.password", "is required")
	case len(password) > maxIMAPSecret || strings.ContainsAny(password, "\r\n\x00"):
		return apierror.Invalid("mailbox.imap.password", "is not a valid password")
	case st.Port < 0 || st.Port > 65535:
		return apierror.Invalid("mailbox.imap.port", "%d is not a port", st.Port)
	}
	if len(st.Folders) > MaxIMAPFolders {
		return apierror.Invalid("mailbox.imap.folders", "has %d folders; at most %d are synced", len(st.Folders), MaxIMAPFolders)
	}
	var folders []string
	seen := map[string]bool{}
	for i, f := range st.Folders {
		f = strings.TrimSpace(f)
		if strings.EqualFold(f, DefaultIMAPFolder) {
			f = DefaultIMAPFolder
		}
		switch {
		case f == "":
			return apierror.Invalid(fmt.Sprintf("mailbox.imap.folders[%d]", i), "is empty")
		case len(f) > maxIMAPField || strings.ContainsAny(f, "\r\n\x00*%"):
			return apierror.Invalid(fmt.Sprintf("mailbox.imap.folders[%d]", i), "is not a folder name")
		case seen[f]:
			continue
		}
		seen[f] = true
		folders = append(folders, f)
	}
	st.Folders = folders
	switch st.Security {
	case "":
		st.Security = IMAPTLS
	case IMAPTLS, IMAPStartTLS, IMAPNone:
	default:
		return apierror.Invalid("mailbox.imap.security", "%q is not TLS, STARTTLS or NONE", st.Security)
	}
	if st.Port == 0 {
		st.Port = 993
		if st.Security != IMAPTLS {
			st.Port = 143
		}
	}
	return nil
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
	pageSize, err := checkPageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	after, err := decodePageToken(mailboxTokenVersion, user, pageToken, "ListMailboxes")
	if err != nil {
		return nil, "", err
	}
	if after != "" && !resname.ValidID(after) {
		return nil, "", apierror.Invalid("page_token", "is not a token returned by ListMailboxes")
	}
	ms, err := s.repo.ListMailboxes(ctx, user, after, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("list mailboxes: %w", err)
	}
	next := ""
	if len(ms) > pageSize {
		ms = ms[:pageSize]
		next = encodePageToken(mailboxTokenVersion, user, ms[len(ms)-1].ID)
	}
	return ms, next, nil
}

func checkPageSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, apierror.Invalid("page_size", "must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}

// Page tokens are opaque to callers: base64url of a version, the user (so
// that a token works only for the listing it came from) and the position.
const (
	mailboxTokenVersion = "m1"
	jobTokenVersion     = "j1"
)

func encodePageToken(version, user, pos string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(version + "\x00" + user + "\x00" + pos))
}

func decodePageToken(version, user, token, listing string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	parts := strings.Split(string(b), "\x00")
	if err != nil || len(parts) != 3 || parts[0] != version || parts[2] == "" {
		return "", apierror.Invalid("page_token", "is not a token returned by %s", listing)
	}
	if parts[1] != user {
		return "", apierror.Invalid("page_token", "belongs to another listing")
	}
	return parts[2], nil
}

// DeleteMailbox stops a mailbox's sync, deletes its credential from the
// vault, then the mailbox with its sync jobs and records. Its messages stay
// in the store.
func (s *Service) DeleteMailbox(ctx context.Context, user, id string) error {
	mb, err := s.GetMailbox(ctx, user, id)
	if err != nil {
		return err
	}
	s.cancelRunning(user, id)
	if mb.Kind == KindGmail && s.cfg.Gmail != nil && s.cfg.Vault != nil {
		// Google keeps a grant until it is revoked: a deleted mailbox must
		// not leave mailroom's access to it alive. A failure is logged, not
		// fatal: the token is deleted below, and the user can revoke the
		// access in their Google account.
		if token, err := s.cfg.Vault.GetCredential(ctx, mb); err == nil {
			if err := s.cfg.Gmail.Revoke(ctx, string(token)); err != nil {
				s.cfg.Logger.WarnContext(ctx, "the Google grant of a deleted mailbox was not revoked", "mailbox", mb.Name(), "error", err.Error())
			}
		} else if !errors.Is(err, ErrNotFound) {
			s.cfg.Logger.WarnContext(ctx, "the Google grant of a deleted mailbox was not revoked: its token could not be read", "mailbox", mb.Name(), "error", err.Error())
		}
	}
	if mb.Kind != KindImport && s.cfg.Vault != nil {
		// The credential goes first: should the rest fail, deleting again
		// finds the mailbox and finishes, and no secret outlives its mailbox.
		if err := s.cfg.Vault.DeleteCredential(ctx, mb); err != nil {
			return apierror.Unavailablef(err, "the credential vault did not delete the mailbox's credential; the mailbox was kept, try again")
		}
	}
	if err := s.repo.DeleteMailbox(ctx, user, id); errors.Is(err, ErrNotFound) {
		return apierror.NotFoundf("mailbox %s does not exist", resname.Mailbox(user, id))
	} else if err != nil {
		return fmt.Errorf("delete mailbox: %w", err)
	}
	return nil
}

// PurgeUserData deletes every mailbox of user, with their sync jobs and
// records, and stops their syncs. The credentials are auth's to delete (it
// calls this while deleting the user).
func (s *Service) PurgeUserData(ctx context.Context, user string) (Purged, error) {
	if !resname.ValidID(user) {
		return Purged{}, apierror.Invalid("user", "%q is not a user id", user)
	}
	s.mu.Lock()
	for key, cancel := range s.running {
		if strings.HasPrefix(key, user+"/") {
			cancel()
		}
	}
	s.mu.Unlock()
	p, err := s.repo.PurgeUser(ctx, user)
	if err != nil {
		return Purged{}, fmt.Errorf("purge user: %w", err)
	}
	// The events still in the stream carry the user's mail: they go too.
	if ep, ok := s.pub.(EventPurger); ok {
		if p.Events, err = ep.PurgeUser(ctx, user); err != nil {
			return p, fmt.Errorf("purge user: %w", err)
		}
	}
	return p, nil
}

// CompleteAuthorization finishes a Gmail consent: state (single use) names
// the pending mailbox, code is traded for a refresh token, which goes to
// the vault, and the mailbox becomes ACTIVE. oauthError is Google's error
// when the user refused.
func (s *Service) CompleteAuthorization(ctx context.Context, state, code, oauthError, binding string) (Mailbox, error) {
	if s.cfg.Gmail == nil {
		return Mailbox{}, apierror.Preconditionf("Gmail is not configured on this server")
	}
	if state == "" {
		return Mailbox{}, apierror.Invalid("state", "is required: it is the state parameter Google returned")
	}
	if len(state) > 200 || (code == "" && oauthError == "") || len(code) > 2048 {
		return Mailbox{}, apierror.Invalid("code", "is required: it is the code parameter Google returned")
	}
	a, err := s.repo.TakeAuthState(ctx, hashState(state))
	if errors.Is(err, ErrNotFound) {
		return Mailbox{}, apierror.Invalid("state", "is unknown or was used already: start the connection again by creating the mailbox")
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("take auth state: %w", err)
	}
	if a.BindingHash == "" || binding == "" || subtle.ConstantTimeCompare([]byte(a.BindingHash), []byte(hashState(binding))) != 1 {
		// Another browser than the one that opened the authorization URL:
		// someone else's link. The state is spent; the mailbox stays as it
		// was, and its owner reconnects it for a new URL.
		return Mailbox{}, apierror.Denied("this consent was started in another browser: open the authorization URL of your own mailbox in this browser")
	}
	mb, err := s.GetMailbox(ctx, a.User, a.MailboxID)
	if err != nil {
		return Mailbox{}, err
	}
	if s.now().After(a.ExpireTime) {
		s.disconnect(ctx, mb, "the authorization URL expired before the consent came back; reconnect the mailbox for a new one")
		return Mailbox{}, apierror.Preconditionf("the authorization of mailbox %s expired: reconnect it for a new URL", mb.Name())
	}
	if oauthError != "" {
		reason := safeToken(oauthError)
		s.disconnect(ctx, mb, "Google did not grant access ("+reason+"); reconnect the mailbox to retry")
		return Mailbox{}, apierror.Preconditionf("Google did not grant access to mailbox %s (%s)", mb.Name(), reason)
	}
	token, address, err := s.cfg.Gmail.Exchange(ctx, code, a.Verifier)
	if errors.Is(err, ErrInvalidGrant) {
		s.disconnect(ctx, mb, "Google refused the authorization code; reconnect the mailbox to retry")
		return Mailbox{}, apierror.Preconditionf("Google refused the authorization code of mailbox %s (invalid_grant)", mb.Name())
	}
	if err != nil {
		return Mailbox{}, apierror.Unavailablef(err, "the exchange of the authorization code with Google failed")
	}
	if err := s.cfg.Vault.PutCredential(ctx, mb, CredentialGmailRefreshToken, []byte(token)); err != nil {
		return Mailbox{}, apierror.Unavailablef(err, "the credential vault did not take the token")
	}
	if address == "" {
		address = mb.Address
	}
	if err := s.repo.SetMailboxState(ctx, mb.User, mb.ID, StateActive, "", cut(address, maxAddress)); err != nil {
		return Mailbox{}, fmt.Errorf("activate mailbox: %w", err)
	}
	return s.GetMailbox(ctx, mb.User, mb.ID)
}

// disconnect marks mb DISCONNECTED with reason; a failure is logged: the
// caller's answer says what happened anyway.
func (s *Service) disconnect(ctx context.Context, mb Mailbox, reason string) {
	ctx = context.WithoutCancel(ctx)
	if err := s.repo.SetMailboxState(ctx, mb.User, mb.ID, StateDisconnected, reason, ""); err != nil && !errors.Is(err, ErrNotFound) {
		s.cfg.Logger.WarnContext(ctx, "mailbox state not updated", "mailbox", mb.Name(), "error", err.Error())
	}
}

// safeToken keeps an OAuth error code printable: letters, digits and _.
func safeToken(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "error"
	}
	return b.String()
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// PurgeAuthStates deletes the Gmail consents whose authorization URL
// expired without the browser coming back: nobody can complete them, and
// each holds a PKCE verifier. ingest runs it periodically.
func (s *Service) PurgeAuthStates(ctx context.Context) (int64, error) {
	n, err := s.repo.DeleteExpiredAuthStates(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("purge auth states: %w", err)
	}
	return n, nil
}

// Imported is the outcome of one imported message.
type Imported struct {
	// MessageID is the last segment of the message's resource name.
	MessageID         string
	ProviderMessageID string
	Subject           string
	// Duplicate tells that the mailbox had the message already.
	Duplicate bool
}

// ImportMessages accepts raw messages into one of user's IMPORT mailboxes.
// The batch is validated and parsed whole before anything is published, so
// one bad message rejects it all. Each message the mailbox does not have
// yet is then published, in order, and recorded; it is accepted once the
// stream has acknowledged it. lane is the lane to classify in: backfill
// (when empty) or live; the interactive lane belongs to the Classify RPC,
// where one caller waits for one answer, and an import there would jump
// ahead of every user's waiting request.
func (s *Service) ImportMessages(ctx context.Context, user, mailboxID string, raws [][]byte, lane Lane) ([]Imported, error) {
	switch lane {
	case "", LaneBackfill, LaneLive:
	default:
		return nil, apierror.Invalid("lane", "is %s; imported messages are classified in the backfill or live lane (the interactive lane is the Classify RPC's)", lane)
	}
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
	ids := make([]string, len(raws))
	for i, raw := range raws {
		field := fmt.Sprintf("messages[%d].raw", i)
		if len(raw) == 0 {
			return nil, apierror.Invalid(field, "is empty")
		}
		if len(raw) > s.cfg.MaxMessageBytes {
			return nil, s.tooLarge(field, len(raw))
		}
		content, err := mailparse.Parse(raw, mailparse.Options{Now: now, Limits: s.cfg.Limits})
		if err != nil {
			return nil, parseError(field, err)
		}
		content.Date = receivedTime(content, time.Time{}, now)
		pid := ImportProviderMessageID(raw)
		ids[i] = pid
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
	known, err := s.repo.KnownMessages(ctx, user, mb.ID, ids)
	if err != nil {
		return nil, fmt.Errorf("known messages: %w", err)
	}
	if err := s.checkDeleted(ctx, mb); err != nil {
		return nil, err
	}

	out := make([]Imported, 0, len(batch))
	var recs []Record
	var failed error
	for i, r := range batch {
		dup := known[r.ProviderMessageID]
		if !dup {
			if _, err := s.pub.PublishReceived(ctx, r); err != nil {
				failed = apierror.Unavailablef(err, "publishing messages[%d] failed; the %d messages before it were accepted, and sending the batch again is safe (re-imports are de-duplicated)", i, i)
				if errors.Is(err, ErrQueueFull) {
					failed = &apierror.Error{Kind: apierror.ResourceExhausted, Reason: ReasonQueueFull, Err: err,
						Message: fmt.Sprintf("the queue of mail waiting for classification is full: messages[%d] and the rest were not accepted (the %d before it were); send them again once the backlog has been processed", i, i)}
				}
				break
			}
			recs = append(recs, Record{
				User: user, MailboxID: mb.ID, ProviderMessageID: r.ProviderMessageID, MessageID: r.MessageID,
				Status: RecordPublished, CreateTime: now,
			})
			known[r.ProviderMessageID] = true
			s.metrics.message(ctx, KindImport, ResultPublished, 1)
		} else {
			s.metrics.message(ctx, KindImport, ResultSkipped, 1)
		}
		out = append(out, Imported{MessageID: r.MessageID, ProviderMessageID: r.ProviderMessageID, Subject: r.Content.Subject, Duplicate: dup})
	}
	if _, err := s.repo.RecordMessages(context.WithoutCancel(ctx), recs); err != nil {
		// Published but not recorded: a repeat publishes them again, which
		// JetStream and the store de-duplicate.
		return nil, apierror.Unavailablef(err, "recording the imported messages failed; sending the batch again is safe (re-imports are de-duplicated)")
	}
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

// ReasonUserDeleted is the reason of the error that refuses to publish
// mail of a deleted user.
const ReasonUserDeleted = "USER_DELETED"

// checkDeleted refuses to go on with mb's mail when its user was deleted
// after mb was created (the deletion marker); it says nothing when the
// marker cannot be read, and refuses: the mail waits for the next sync.
func (s *Service) checkDeleted(ctx context.Context, mb Mailbox) error {
	if s.cfg.Deleted == nil {
		return nil
	}
	deleted, err := s.cfg.Deleted(ctx, mb.User, mb.CreateTime)
	if err != nil {
		return apierror.Unavailablef(err, "the deletion marker of %s cannot be read now; retry", resname.User(mb.User))
	}
	if deleted {
		return apierror.NotFoundf("%s is deleted", resname.User(mb.User)).WithReason(ReasonUserDeleted)
	}
	return nil
}

func (s *Service) tooLarge(field string, size int) error {
	return apierror.Invalid(field, "is %d bytes, over the limit of %d bytes per message", size, s.cfg.MaxMessageBytes).
		WithReason(ReasonMessageTooLarge).
		WithMetadata("size_bytes", fmt.Sprint(size)).
		WithMetadata("limit_bytes", fmt.Sprint(s.cfg.MaxMessageBytes))
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
// means DefaultSyncMessages. The job runs in the background; at most one
// job per mailbox is PENDING or RUNNING at a time.
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
	return s.startJob(ctx, mb, mode, maxMessages)
}

func (s *Service) startJob(ctx context.Context, mb Mailbox, mode SyncMode, maxMessages int) (SyncJob, error) {
	if mode == "" {
		mode = SyncFull
		if (mb.Kind == KindImport && !mb.LastSyncTime.IsZero()) || mb.Cursor != "" {
			mode = SyncIncremental
		}
	}
	now := s.now()
	job := SyncJob{
		User:        mb.User,
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
		if err := s.repo.RecordSync(ctx, mb.User, mb.ID, mb.Cursor, now); err != nil {
			return SyncJob{}, fmt.Errorf("record sync: %w", err)
		}
		return job, nil
	}
	if s.cfg.Providers[mb.Kind] == nil {
		return SyncJob{}, apierror.Preconditionf("%s mailboxes cannot be synced: %s is not configured on this server", mb.Kind, mb.Kind)
	}
	if mb.State != StateActive {
		return SyncJob{}, apierror.Preconditionf("mailbox %s is %s and cannot be synced: %s", mb.Name(), mb.State, mb.StateReason)
	}
	err := s.repo.CreateSyncJob(ctx, job)
	if errors.Is(err, ErrJobActive) {
		e := &apierror.Error{Kind: apierror.Aborted, Reason: ReasonSyncRunning,
			Message: fmt.Sprintf("mailbox %s has a sync job running already", mb.Name())}
		if active, aerr := s.repo.ActiveSyncJob(ctx, mb.User, mb.ID); aerr == nil {
			e.Message = fmt.Sprintf("mailbox %s has a sync job running already: %s", mb.Name(), active.Name())
			e = e.WithMetadata("sync_job", active.Name())
		}
		return SyncJob{}, e
	}
	if err != nil {
		return SyncJob{}, fmt.Errorf("create sync job: %w", err)
	}
	s.poke()
	return job, nil
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

// ListSyncJobs returns a page of user's sync jobs, newest first, and the
// token of the next page (empty on the last).
func (s *Service) ListSyncJobs(ctx context.Context, user string, pageSize int, pageToken string) ([]SyncJob, string, error) {
	pageSize, err := checkPageSize(pageSize)
	if err != nil {
		return nil, "", err
	}
	pos, err := decodePageToken(jobTokenVersion, user, pageToken, "ListSyncJobs")
	if err != nil {
		return nil, "", err
	}
	var after *JobPage
	if pos != "" {
		// A user's position is create time and id; across users (AllUsers)
		// the job's user comes between them.
		bad := apierror.Invalid("page_token", "is not a token returned by ListSyncJobs")
		ts, rest, ok := strings.Cut(pos, "/")
		us, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			return nil, "", bad
		}
		after = &JobPage{CreateTime: time.UnixMicro(us).UTC(), ID: rest}
		if user == AllUsers {
			if after.User, after.ID, ok = strings.Cut(rest, "/"); !ok || !resname.ValidID(after.User) {
				return nil, "", bad
			}
		}
		if !resname.ValidID(after.ID) {
			return nil, "", bad
		}
	}
	jobs, err := s.repo.ListSyncJobs(ctx, user, after, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("list sync jobs: %w", err)
	}
	next := ""
	if len(jobs) > pageSize {
		jobs = jobs[:pageSize]
		last := jobs[len(jobs)-1]
		pos := fmt.Sprintf("%d/%s", last.CreateTime.UnixMicro(), last.ID)
		if user == AllUsers {
			pos = fmt.Sprintf("%d/%s/%s", last.CreateTime.UnixMicro(), last.User, last.ID)
		}
		next = encodePageToken(jobTokenVersion, user, pos)
	}
	return jobs, next, nil
}

// WatchSyncJob calls send with the job as it is now, then again at every
// change, until the job ends (the last call carries its final state) or
// ctx is done.
func (s *Service) WatchSyncJob(ctx context.Context, user, id string, send func(SyncJob) error) error {
	var last SyncJob
	first := true
	t := time.NewTicker(s.cfg.WatchInterval)
	defer t.Stop()
	for {
		j, err := s.GetSyncJob(ctx, user, id)
		if err != nil {
			return err
		}
		// The lease changes at every renewal; callers see neither it nor the owner.
		j.Owner, j.LeaseUntil = "", time.Time{}
		if first || j != last {
			if err := send(j); err != nil {
				return err
			}
			first, last = false, j
		}
		if j.State.Ended() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// CountClassified notes that the classifier classified a message; a sync
// job counts each of its messages once.
func (s *Service) CountClassified(ctx context.Context, user, mailboxID, providerMessageID, job string) error {
	_, err := s.repo.MarkClassified(ctx, user, mailboxID, providerMessageID, job)
	return err
}

// CountBatched notes that the classifier put user's messages (message
// ids) in an OpenAI batch (entered) or took them out of one for the
// realtime path, as of at; their sync jobs show them as batched meanwhile.
func (s *Service) CountBatched(ctx context.Context, user string, messageIDs []string, entered bool, at time.Time) error {
	return s.repo.MarkBatched(ctx, user, messageIDs, entered, at)
}

// randomID returns 16 random lowercase hex digits, a valid resource id.
func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomToken returns 32 random bytes, base64url: an OAuth state or a PKCE
// verifier (43 characters, as RFC 7636 asks).
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashState is what the database keeps of a consent's state parameter, so
// that reading the table does not let anyone complete a consent.
func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}
