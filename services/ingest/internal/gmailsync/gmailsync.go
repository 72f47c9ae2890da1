// Package gmailsync connects and syncs Gmail mailboxes through the Gmail API
// (google.golang.org/api/gmail/v1) with OAuth 2.0 (golang.org/x/oauth2):
// the consent flow with PKCE, a full sync that lists the mailbox newest
// first, an incremental sync that reads the History API from the stored
// historyId, and a resync that fills the gap when that history expired.
// Every call is paid for in Gmail's per-user quota units, under a limiter,
// and backs off on rate limits.
package gmailsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/services/ingest/internal/mailbox"
)

// Google's endpoints, the defaults of Config.
const (
	GoogleAuthURL   = "https://accounts.google.com/o/oauth2/auth"
	GoogleTokenURL  = "https://oauth2.googleapis.com/token"
	GoogleRevokeURL = "https://oauth2.googleapis.com/revoke"
	GmailEndpoint   = "https://gmail.googleapis.com/"
)

// The scopes: read-only access to everything, or to headers only.
const (
	ScopeReadonly = "https://www.googleapis.com/auth/gmail.readonly"
	ScopeMetadata = "https://www.googleapis.com/auth/gmail.metadata"
)

// Quota is what Gmail charges per user, in quota units.
type Quota struct {
	// PerMinute is the per-user budget (6,000 a minute for current projects).
	PerMinute int
	// Get, List, History and Profile are the costs of messages.get (20),
	// messages.list (5), history.list (2) and users.getProfile (1).
	Get, List, History, Profile int
}

// DefaultQuota is Gmail's published per-user quota for current projects.
var DefaultQuota = Quota{PerMinute: 6000, Get: 20, List: 5, History: 2, Profile: 1}

// Config configures a Gmail. Zero values take the defaults noted.
type Config struct {
	ClientID     string
	ClientSecret string
	// RedirectURL is the gateway's /oauth/google/callback.
	RedirectURL string
	// AuthURL, TokenURL, RevokeURL and Endpoint default to Google's.
	AuthURL, TokenURL, RevokeURL, Endpoint string
	// MetadataOnly asks for the gmail.metadata scope: headers and snippet,
	// never bodies.
	MetadataOnly bool
	// Quota is the per-user quota (default DefaultQuota).
	Quota Quota
	// Concurrency bounds the messages.get calls in flight per sync (default 10).
	Concurrency int
	// Backoff is the first wait after a rate limit or a server error; it
	// doubles up to MaxBackoff (defaults 1s and 64s), with jitter.
	Backoff, MaxBackoff time.Duration
	// MaxAttempts bounds the tries of one call (default 8).
	MaxAttempts int
	// HTTPClient makes the requests (default: one with a 60s timeout).
	HTTPClient *http.Client
	// Logger receives retries and failures, never mail content.
	Logger *slog.Logger
	// MeterProvider makes mailroom_gmail_quota_units_total; nil means the
	// global one.
	MeterProvider metric.MeterProvider
	// Topic is the Pub/Sub topic that users.watch publishes to
	// (projects/…/topics/…); empty: no push (watch.go).
	Topic string
}

// Gmail is the mailbox.Provider and mailbox.GmailAuth of Gmail mailboxes.
type Gmail struct {
	cfg     Config
	oauth   *oauth2.Config
	quotas  sync.Map // mailbox name → *userQuota
	metrics *quotaMetrics
	watched sync.Map // mailbox name → time.Time of its last users.watch
}

var (
	_ mailbox.Provider  = (*Gmail)(nil)
	_ mailbox.GmailAuth = (*Gmail)(nil)
)

// New returns a Gmail for cfg.
func New(cfg Config) *Gmail {
	if cfg.AuthURL == "" {
		cfg.AuthURL = GoogleAuthURL
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = GoogleTokenURL
	}
	if cfg.RevokeURL == "" {
		cfg.RevokeURL = GoogleRevokeURL
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = GmailEndpoint
	}
	if !strings.HasSuffix(cfg.Endpoint, "/") {
		cfg.Endpoint += "/"
	}
	if cfg.Quota.PerMinute <= 0 {
		cfg.Quota.PerMinute = DefaultQuota.PerMinute
	}
	if cfg.Quota.Get <= 0 {
		cfg.Quota.Get = DefaultQuota.Get
	}
	if cfg.Quota.List <= 0 {
		cfg.Quota.List = DefaultQuota.List
	}
	if cfg.Quota.History <= 0 {
		cfg.Quota.History = DefaultQuota.History
	}
	if cfg.Quota.Profile <= 0 {
		cfg.Quota.Profile = DefaultQuota.Profile
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 10
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 64 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.HTTPClient == nil {
		// Keep a connection per concurrent call: the default two idle
		// connections per host would mean a TLS handshake for most calls.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency + 2
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second, Transport: tr}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	scope := ScopeReadonly
	if cfg.MetadataOnly {
		scope = ScopeMetadata
	}
	return &Gmail{cfg: cfg, metrics: newQuotaMetrics(cfg.MeterProvider), oauth: &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		RedirectURL:  cfg.RedirectURL,
		Scopes:       []string{scope},
		Endpoint:     oauth2.Endpoint{AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}}
}

// AuthCodeURL implements mailbox.GmailAuth: offline access (a refresh
// token), the consent screen every time (so that Google returns a refresh
// token again after a reconnect), and the S256 challenge of verifier.
func (g *Gmail) AuthCodeURL(state, verifier string) string {
	return g.oauth.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt", "consent"))
}

func (g *Gmail) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, g.cfg.HTTPClient)
}

// Exchange implements mailbox.GmailAuth: it trades code (with the PKCE
// verifier) for tokens, and reads the mailbox's address from its profile.
func (g *Gmail) Exchange(ctx context.Context, code, verifier string) (string, string, error) {
	hctx := g.httpContext(ctx)
	tok, err := g.oauth.Exchange(hctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return "", "", fmt.Errorf("gmail: exchange: %w", mailbox.ErrInvalidGrant)
		}
		return "", "", fmt.Errorf("gmail: exchange: %w", err)
	}
	if tok.RefreshToken == "" {
		return "", "", errors.New("gmail: Google returned no refresh token")
	}
	api, err := gmail.NewService(hctx, option.WithHTTPClient(oauth2.NewClient(hctx, g.oauth.TokenSource(hctx, tok))),
		option.WithEndpoint(g.cfg.Endpoint))
	if err != nil {
		return "", "", fmt.Errorf("gmail: client: %w", err)
	}
	prof, err := api.Users.GetProfile("me").Context(ctx).Do()
	if err != nil {
		return "", "", fmt.Errorf("gmail: profile: %w", err)
	}
	return tok.RefreshToken, prof.EmailAddress, nil
}

// Revoke implements mailbox.GmailAuth: it posts the token to Google's
// revocation endpoint, which revokes the whole grant. A token Google no
// longer knows (400 invalid_token) is revoked already.
func (g *Gmail) Revoke(ctx context.Context, refreshToken string) error {
	if err := g.stopWatch(ctx, refreshToken); err != nil {
		g.cfg.Logger.WarnContext(ctx, "gmail watch not stopped; it ends within 7 days", "error", err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.RevokeURL,
		strings.NewReader(url.Values{"token": {refreshToken}}.Encode()))
	if err != nil {
		return fmt.Errorf("gmail: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := g.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("gmail: revoke: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "invalid_token"):
		return nil
	}
	return fmt.Errorf("gmail: revoke: Google answered %d", resp.StatusCode)
}

// cursor is a Gmail mailbox's position: the historyId incremental syncs
// start from, and whether the backfill (the full listing of the mailbox,
// done in capped steps) is still going on.
type cursor struct {
	HistoryID uint64 `json:"historyId,string"`
	Backfill  bool   `json:"backfill,omitempty"`
}

func parseCursor(s string) (cursor, error) {
	var c cursor
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return cursor{}, fmt.Errorf("gmail: cursor: %w", err)
	}
	return c, nil
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// errHistoryExpired is history.list's 404: the stored historyId is too old.
var errHistoryExpired = errors.New("gmail: history expired")

// Sync implements mailbox.Provider.
//
//   - A first sync (no cursor) notes the mailbox's current historyId, then
//     lists the mailbox newest first and delivers the messages not
//     recorded, up to the job's cap, on the backfill lane. When the cap
//     stops it, the cursor says so and later syncs continue the listing.
//   - A FULL sync, or any sync while the backfill goes on, lists again.
//   - An incremental sync reads history.list (messageAdded) from the
//     cursor's historyId and delivers what is new, newest first, on the
//     live lane; the cursor moves to the history's end only when all of it
//     was delivered.
//   - When that history expired (404), a resync notes the current
//     historyId, lists the whole mailbox and delivers only what is not
//     recorded (the gap), on the live lane.
//
// Messages appear in both the listing and the history of the same period;
// the records make the second sighting a skip, never a second event.
func (g *Gmail) Sync(ctx context.Context, run *mailbox.SyncRun) (string, error) {
	cur, err := parseCursor(run.Mailbox.Cursor)
	if err != nil {
		return "", err
	}
	s := &session{g: g, run: run, quota: g.quota(run.Mailbox.Name()), hctx: g.httpContext(ctx)}
	if err := s.renew(); err != nil {
		return "", err
	}
	s.ensureWatch(ctx)

	switch {
	case cur.HistoryID == 0:
		start, err := s.historyID(ctx)
		if err != nil {
			return "", err
		}
		complete, err := s.fullPass(ctx, mailbox.LaneBackfill)
		if err != nil {
			return "", err
		}
		return cursor{HistoryID: start, Backfill: !complete}.String(), nil
	case run.Job.Mode == mailbox.SyncFull || cur.Backfill:
		complete, err := s.fullPass(ctx, mailbox.LaneBackfill)
		if err != nil {
			return "", err
		}
		return cursor{HistoryID: cur.HistoryID, Backfill: cur.Backfill && !complete}.String(), nil
	}
	next, err := s.incremental(ctx, cur)
	if !errors.Is(err, errHistoryExpired) {
		return next.String(), err
	}
	run.Logger.InfoContext(ctx, "gmail history expired; resyncing to fill the gap", "history_id", cur.HistoryID)
	start, err := s.historyID(ctx)
	if err != nil {
		return "", err
	}
	complete, err := s.fullPass(ctx, mailbox.LaneLive)
	if err != nil {
		return "", err
	}
	return cursor{HistoryID: start, Backfill: !complete}.String(), nil
}

// session is one sync's use of the API.
type session struct {
	g     *Gmail
	run   *mailbox.SyncRun
	quota *userQuota
	hctx  context.Context

	mu  sync.Mutex
	svc *gmail.Service
}

// renew starts over from the refresh token: a new access token is fetched
// at the next call. A 401 asks for it (Google revokes access tokens along
// with the consent; the refresh then says invalid_grant).
func (s *session) renew() error {
	ts := s.g.oauth.TokenSource(s.hctx, &oauth2.Token{RefreshToken: string(s.run.Secret)})
	svc, err := gmail.NewService(s.hctx, option.WithHTTPClient(oauth2.NewClient(s.hctx, ts)), option.WithEndpoint(s.g.cfg.Endpoint))
	if err != nil {
		return fmt.Errorf("gmail: client: %w", err)
	}
	s.mu.Lock()
	s.svc = svc
	s.mu.Unlock()
	return nil
}

func (s *session) api() *gmail.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.svc
}

func (s *session) historyID(ctx context.Context) (uint64, error) {
	var prof *gmail.Profile
	err := s.call(ctx, s.g.cfg.Quota.Profile, "users.getProfile", func() (err error) {
		prof, err = s.api().Users.GetProfile("me").Context(ctx).Do()
		return err
	})
	if err != nil {
		return 0, err
	}
	return prof.HistoryId, nil
}

// fullPass lists the mailbox newest first and delivers the messages not
// recorded, up to the run's remaining cap. complete tells that the listing
// reached the end with nothing left undelivered.
func (s *session) fullPass(ctx context.Context, lane mailbox.Lane) (complete bool, err error) {
	budget := s.run.Remaining()
	page := ""
	for {
		var resp *gmail.ListMessagesResponse
		err := s.call(ctx, s.g.cfg.Quota.List, "messages.list", func() (err error) {
			c := s.api().Users.Messages.List("me").MaxResults(500).Context(ctx)
			if page != "" {
				c = c.PageToken(page)
			}
			resp, err = c.Do()
			return err
		})
		if err != nil {
			return false, err
		}
		ids := make([]string, 0, len(resp.Messages))
		for _, m := range resp.Messages {
			ids = append(ids, m.Id)
		}
		s.run.AddListed(len(ids))
		todo, err := s.unknown(ctx, ids)
		if err != nil {
			return false, err
		}
		cut := len(todo) > budget
		if cut {
			todo = todo[:budget]
		}
		if err := s.fetchAll(ctx, todo, lane); err != nil {
			return false, err
		}
		budget -= len(todo)
		switch {
		case cut:
			return false, nil
		case resp.NextPageToken == "":
			return true, nil
		case budget == 0:
			return false, nil // the next sync lists on and finds out
		}
		page = resp.NextPageToken
	}
}

// unknown returns ids less those recorded, counting those as skipped.
func (s *session) unknown(ctx context.Context, ids []string) ([]string, error) {
	known, err := s.run.Known(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := ids[:0:0]
	for _, id := range ids {
		if !known[id] {
			out = append(out, id)
		}
	}
	s.run.AddSkipped(len(ids) - len(out))
	return out, nil
}

// incremental delivers what history.list reports added since cur.
func (s *session) incremental(ctx context.Context, cur cursor) (cursor, error) {
	var (
		added  []string
		seen   = map[string]bool{}
		latest = cur.HistoryID
		page   string
	)
	for {
		var resp *gmail.ListHistoryResponse
		err := s.call(ctx, s.g.cfg.Quota.History, "history.list", func() (err error) {
			c := s.api().Users.History.List("me").StartHistoryId(cur.HistoryID).
				HistoryTypes("messageAdded").MaxResults(500).Context(ctx)
			if page != "" {
				c = c.PageToken(page)
			}
			resp, err = c.Do()
			return err
		})
		if isStatus(err, http.StatusNotFound) {
			return cur, errHistoryExpired
		}
		if err != nil {
			return cur, err
		}
		for _, h := range resp.History {
			for _, ma := range h.MessagesAdded {
				if ma.Message == nil || seen[ma.Message.Id] || hasLabel(ma.Message.LabelIds, "SPAM", "TRASH") {
					continue
				}
				seen[ma.Message.Id] = true
				added = append(added, ma.Message.Id)
			}
		}
		latest = max(latest, resp.HistoryId)
		if resp.NextPageToken == "" {
			break
		}
		page = resp.NextPageToken
	}
	s.run.AddListed(len(added))
	todo, err := s.unknown(ctx, added)
	if err != nil {
		return cur, err
	}
	// History runs oldest first; the cap takes the newest.
	for i, j := 0, len(todo)-1; i < j; i, j = i+1, j-1 {
		todo[i], todo[j] = todo[j], todo[i]
	}
	budget := s.run.Remaining()
	cut := len(todo) > budget
	if cut {
		todo = todo[:budget]
	}
	if err := s.fetchAll(ctx, todo, mailbox.LaneLive); err != nil {
		return cur, err
	}
	if cut {
		// What the cap left out is still after cur: the next sync reads
		// the same history and skips what this one delivered.
		return cur, nil
	}
	return cursor{HistoryID: latest}, nil
}

func hasLabel(labels []string, want ...string) bool {
	for _, l := range labels {
		for _, w := range want {
			if l == w {
				return true
			}
		}
	}
	return false
}

// fetchAll gets ids, at most Concurrency at a time, and delivers each. The
// first error stops the rest.
func (s *session) fetchAll(ctx context.Context, ids []string, lane mailbox.Lane) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, s.g.cfg.Concurrency)
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for _, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.fetch(ctx, id, lane); err != nil {
				if first.CompareAndSwap(nil, &err) {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return context.Cause(ctx)
}

func (s *session) fetch(ctx context.Context, id string, lane mailbox.Lane) error {
	var msg *gmail.Message
	format := "raw"
	if s.g.cfg.MetadataOnly {
		format = "metadata"
	}
	err := s.call(ctx, s.g.cfg.Quota.Get, "messages.get", func() (err error) {
		msg, err = s.api().Users.Messages.Get("me", id).Format(format).Context(ctx).Do()
		return err
	})
	if isStatus(err, http.StatusNotFound) {
		s.run.AddSkipped(1) // deleted since it was listed
		return nil
	}
	if err != nil {
		return err
	}
	raw, err := rawOf(msg, s.g.cfg.MetadataOnly)
	if err != nil {
		return err
	}
	f := mailbox.Fetched{ProviderMessageID: id, Raw: raw}
	if msg.InternalDate > 0 {
		f.ReceivedTime = time.UnixMilli(msg.InternalDate)
	}
	return s.run.Deliver(ctx, f, lane)
}

// rawOf is the RFC 822 bytes of msg: decoded from format raw, or, under the
// metadata scope, made of its headers and its snippet as a plain text body.
func rawOf(msg *gmail.Message, metadata bool) ([]byte, error) {
	if !metadata {
		raw, err := decodeBase64URL(msg.Raw)
		if err != nil {
			return nil, fmt.Errorf("gmail: message %s: raw is not base64url: %w", msg.Id, err)
		}
		return raw, nil
	}
	var b strings.Builder
	if msg.Payload != nil {
		for _, h := range msg.Payload.Headers {
			switch strings.ToLower(h.Name) {
			case "content-type", "content-transfer-encoding", "mime-version":
				continue // the body below is not the original's
			}
			b.WriteString(h.Name + ": " + strings.NewReplacer("\r", " ", "\n", " ").Replace(h.Value) + "\r\n")
		}
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(html.UnescapeString(msg.Snippet))
	b.WriteString("\r\n")
	return []byte(b.String()), nil
}

// userQuota is the per-user budget of one Gmail account, shared by the
// syncs of its mailbox (one at a time per process).
type userQuota struct {
	limiter *rate.Limiter
	// pausedUntil (unix nanoseconds) holds every call back after a rate
	// limit answer, so that concurrent calls do not hammer on.
	pausedUntil atomic.Int64
}

func (g *Gmail) quota(key string) *userQuota {
	if q, ok := g.quotas.Load(key); ok {
		return q.(*userQuota)
	}
	perSecond := float64(g.cfg.Quota.PerMinute) / 60
	// A burst of two seconds' worth: the budget is per minute, but
	// Google also polices short windows.
	burst := max(int(perSecond*2), g.cfg.Quota.Get, g.cfg.Quota.List)
	q, _ := g.quotas.LoadOrStore(key, &userQuota{limiter: rate.NewLimiter(rate.Limit(perSecond), burst)})
	return q.(*userQuota)
}

// call runs one API call, cost quota units, retrying rate limits and server
// errors with exponential backoff. A revoked grant is a DisconnectError.
func (s *session) call(ctx context.Context, cost int, what string, do func() error) error {
	for attempt := 1; ; attempt++ {
		if until := time.Unix(0, s.quota.pausedUntil.Load()); time.Now().Before(until) {
			if err := sleep(ctx, time.Until(until)); err != nil {
				return err
			}
		}
		if err := s.quota.limiter.WaitN(ctx, min(cost, s.quota.limiter.Burst())); err != nil {
			return err
		}
		err := do()
		s.g.metrics.call(ctx, cost, err != nil && rateLimited(err))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		retry, wait, ferr := s.classify(err, what)
		if !retry {
			return ferr
		}
		if attempt >= s.g.cfg.MaxAttempts {
			return apierror.Unavailablef(err, "Gmail's %s kept failing (%s) after %d attempts", what, short(err), attempt)
		}
		if wait == 0 {
			d := min(s.g.cfg.Backoff<<(attempt-1), s.g.cfg.MaxBackoff)
			wait = d/2 + rand.N(d/2+1)
		}
		if rateLimited(err) {
			s.quota.pausedUntil.Store(time.Now().Add(wait).UnixNano())
		}
		s.run.Logger.InfoContext(ctx, "gmail call retried", "call", what, "attempt", attempt, "reason", short(err), "wait_ms", wait.Milliseconds())
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// classify tells whether err is worth another try, how long to wait when
// the server said, and otherwise the error to return.
func (s *session) classify(err error, what string) (retry bool, wait time.Duration, final error) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch {
		case re.ErrorCode == "invalid_grant":
			return false, 0, &mailbox.DisconnectError{
				Reason: "Google refused the stored authorization (invalid_grant): access was revoked or expired; reconnect the mailbox (POST …/mailboxes/{mailbox}:reconnect)",
				Err:    err,
			}
		case re.Response != nil && (re.Response.StatusCode >= 500 || re.Response.StatusCode == http.StatusTooManyRequests):
			return true, retryAfter(re.Response.Header), nil
		}
		return false, 0, apierror.Unavailablef(err, "Google's token endpoint refused the refresh (%s): the operator checks GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET", safeCode(re.ErrorCode))
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch {
		case rateLimited(err), ge.Code >= 500:
			return true, retryAfter(ge.Header), nil
		case ge.Code == http.StatusUnauthorized:
			// The access token was revoked or expired early: refresh it.
			if rerr := s.renew(); rerr != nil {
				return false, 0, rerr
			}
			return true, 10 * time.Millisecond, nil
		case ge.Code == http.StatusForbidden:
			return false, 0, apierror.Unavailablef(err, "Gmail refused %s (%d %s)", what, ge.Code, reasonOf(ge))
		}
		return false, 0, apierror.Unavailablef(err, "Gmail answered %s with %d %s", what, ge.Code, reasonOf(ge))
	}
	// Transport errors: the network, a timeout, a reset connection.
	return true, 0, nil
}

// rateLimited reports a 429 or a 403 whose reason is a rate limit.
func rateLimited(err error) bool {
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return false
	}
	if ge.Code == http.StatusTooManyRequests {
		return true
	}
	if ge.Code == http.StatusForbidden {
		for _, e := range ge.Errors {
			if e.Reason == "rateLimitExceeded" || e.Reason == "userRateLimitExceeded" {
				return true
			}
		}
	}
	return false
}

func isStatus(err error, code int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == code
}

func reasonOf(ge *googleapi.Error) string {
	for _, e := range ge.Errors {
		if e.Reason != "" {
			return safeCode(e.Reason)
		}
	}
	return http.StatusText(ge.Code)
}

// short names an error for logs and job errors without its text, which
// could carry what a server chose to echo.
func short(err error) string {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return strconv.Itoa(ge.Code) + " " + reasonOf(ge)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return "token endpoint " + safeCode(re.ErrorCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "transport error"
}

func safeCode(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// retryAfter reads a Retry-After header in seconds (zero when absent).
func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && n > 0 {
		return min(time.Duration(n)*time.Second, 5*time.Minute)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// decodeBase64URL decodes Gmail's raw field: base64url, padded or not.
func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
