// Package fakegmail is a stand-in for Google's OAuth 2.0 endpoints and the
// parts of the Gmail API that ingest uses, over HTTP, for tests: the
// consent page (which consents at once) and the token endpoint with PKCE
// and refresh tokens; users.getProfile, messages.list (newest first, paged),
// messages.get (formats raw and metadata), and history.list (messageAdded,
// paged, 404 once the history expired), users.watch and users.stop with
// pushes signed like Google's (push.go). Faults can be injected: 403
// rateLimitExceeded / userRateLimitExceeded, 429, 5xx, revoked grants.
//
// Point ingest's MAILROOM_GOOGLE_AUTH_URL at AuthURL, MAILROOM_GOOGLE_TOKEN_URL
// at TokenURL and MAILROOM_GMAIL_ENDPOINT at URL. It is a test double,
// not a product: it keeps everything in memory.
package fakegmail

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scopes the fake knows; under ScopeMetadata, bodies are refused as Google does.
const (
	ScopeReadonly = "https://www.googleapis.com/auth/gmail.readonly"
	ScopeMetadata = "https://www.googleapis.com/auth/gmail.metadata"
)

// Server is a running fake.
type Server struct {
	// URL is the Gmail API endpoint (MAILROOM_GMAIL_ENDPOINT).
	URL string
	// AuthURL, TokenURL and RevokeURL are the OAuth endpoints.
	AuthURL, TokenURL, RevokeURL string
	// ClientID and ClientSecret are the OAuth client the fake accepts.
	ClientID, ClientSecret string

	srv *httptest.Server

	mu       sync.Mutex
	accounts map[string]*Account
	consent  string // the account that consents on the auth page
	codes    map[string]grant
	refresh  map[string]grant
	access   map[string]grant
	faults   map[string][]Fault
	calls    map[string]int
	latency  map[string]time.Duration

	// Push (push.go).
	push    pushConfig
	pushed  int
	keyOnce sync.Once
	key     *rsa.PrivateKey
	// JWKSURL serves the public key of the push tokens (Google's certs).
	JWKSURL string
}

type grant struct {
	account   *Account
	scope     string
	challenge string
	redirect  string
}

// Fault is an error answer injected into an endpoint.
type Fault struct {
	// Status is the HTTP status (403, 429, 500, …).
	Status int
	// Reason is the errors[].reason ("rateLimitExceeded", "userRateLimitExceeded", …).
	Reason string
	// RetryAfter, when set, is sent as a Retry-After header (seconds).
	RetryAfter int
}

// Endpoint names for Fail and Calls.
const (
	EndpointToken    = "token"
	EndpointProfile  = "users.getProfile"
	EndpointList     = "messages.list"
	EndpointGet      = "messages.get"
	EndpointHistory  = "history.list"
	EndpointAuthPage = "auth"
	EndpointRevoke   = "revoke"
)

// New starts a fake on a loopback port. Close stops it.
func New() *Server {
	s := &Server{
		ClientID:     "fake-client-id.apps.googleusercontent.com",
		ClientSecret: "fake-client-secret",
		accounts:     map[string]*Account{},
		codes:        map[string]grant{},
		refresh:      map[string]grant{},
		access:       map[string]grant{},
		faults:       map[string][]Fault{},
		calls:        map[string]int{},
		latency:      map[string]time.Duration{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /o/oauth2/auth", s.authPage)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /revoke", s.revoke)
	mux.HandleFunc("GET /gmail/v1/users/{user}/profile", s.api(EndpointProfile, s.profile))
	mux.HandleFunc("GET /gmail/v1/users/{user}/messages", s.api(EndpointList, s.list))
	mux.HandleFunc("GET /gmail/v1/users/{user}/messages/{id}", s.api(EndpointGet, s.get))
	mux.HandleFunc("GET /gmail/v1/users/{user}/history", s.api(EndpointHistory, s.history))
	mux.HandleFunc("POST /gmail/v1/users/{user}/watch", s.api(EndpointWatch, s.watch))
	mux.HandleFunc("POST /gmail/v1/users/{user}/stop", s.api(EndpointStop, s.stop))
	mux.HandleFunc("GET /oauth2/v3/certs", s.jwks)
	s.srv = httptest.NewServer(mux)
	s.JWKSURL = s.srv.URL + "/oauth2/v3/certs"
	s.URL = s.srv.URL + "/"
	s.AuthURL = s.srv.URL + "/o/oauth2/auth"
	s.TokenURL = s.srv.URL + "/token"
	s.RevokeURL = s.srv.URL + "/revoke"
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddAccount adds a Gmail account; the first one added consents on the auth page.
func (s *Server) AddAccount(email string) *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &Account{Email: email, server: s, byID: map[string]*message{}, historyID: 1000}
	s.accounts[email] = a
	if s.consent == "" {
		s.consent = email
	}
	return a
}

// Consent makes email the account that consents on the auth page.
func (s *Server) Consent(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consent = email
}

// Revoke revokes every grant of email: refreshing answers invalid_grant,
// and the access tokens stop working.
func (s *Server) Revoke(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[string]grant{s.refresh, s.access, s.codes} {
		for k, g := range m {
			if g.account.Email == email {
				delete(m, k)
			}
		}
	}
}

// Fail makes the next n requests to endpoint answer f.
func (s *Server) Fail(endpoint string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[endpoint] = append(s.faults[endpoint], f)
	}
}

// SetLatency makes every request to endpoint take d longer.
func (s *Server) SetLatency(endpoint string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency[endpoint] = d
}

// Calls is the number of requests endpoint received, faults included.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// Consents returns the redirect a browser would follow after the user
// consented at authURL (an authorization URL ingest made), without HTTP.
func (s *Server) Consents(authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	return s.consentRedirect(u.Query())
}

func (s *Server) authPage(w http.ResponseWriter, r *http.Request) {
	s.count(EndpointAuthPage)
	loc, err := s.consentRedirect(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

func (s *Server) consentRedirect(q url.Values) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case q.Get("client_id") != s.ClientID:
		return "", fmt.Errorf("unknown client_id")
	case q.Get("response_type") != "code":
		return "", fmt.Errorf("response_type must be code")
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		return "", fmt.Errorf("PKCE with S256 is required")
	case q.Get("redirect_uri") == "" || q.Get("state") == "":
		return "", fmt.Errorf("redirect_uri and state are required")
	case q.Get("access_type") != "offline":
		return "", fmt.Errorf("access_type=offline is needed for a refresh token")
	}
	acct := s.accounts[s.consent]
	if acct == nil {
		return "", fmt.Errorf("no account consents")
	}
	code := "4/" + randomString()
	s.codes[code] = grant{account: acct, scope: q.Get("scope"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
	ru, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		return "", err
	}
	rq := ru.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	rq.Set("scope", q.Get("scope"))
	ru.RawQuery = rq.Encode()
	return ru.String(), nil
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.fault(w, EndpointToken) {
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.ClientID || secret != s.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var g grant
	resp := map[string]any{"token_type": "Bearer", "expires_in": 3599}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := r.PostForm.Get("code")
		g, ok = s.codes[code]
		delete(s.codes, code)
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || g.redirect != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		rt := "1//" + randomString()
		s.refresh[rt] = g
		resp["refresh_token"] = rt
	case "refresh_token":
		g, ok = s.refresh[r.PostForm.Get("refresh_token")]
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	at := "ya29." + randomString()
	s.access[at] = g
	resp["access_token"] = at
	resp["scope"] = g.scope
	writeJSON(w, http.StatusOK, resp)
}

// revoke is Google's token revocation endpoint (POST token=… as a form):
// revoking a refresh token revokes the whole grant, its access tokens too.
// An unknown token is 400 invalid_token, as Google answers.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if s.fault(w, EndpointRevoke) {
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.refresh[tok]
	if !ok {
		g, ok = s.access[tok]
	}
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_token")
		return
	}
	for _, m := range []map[string]grant{s.refresh, s.access} {
		for k, other := range m {
			if other == g {
				delete(m, k)
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

// Granted reports whether email has a grant that refreshing would accept.
func (s *Server) Granted(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.refresh {
		if g.account.Email == email {
			return true
		}
	}
	return false
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": "fake: " + code})
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	s.calls[endpoint]++
	s.mu.Unlock()
}

// fault counts a request and answers the next injected fault, if any.
func (s *Server) fault(w http.ResponseWriter, endpoint string) bool {
	s.mu.Lock()
	s.calls[endpoint]++
	fs := s.faults[endpoint]
	if len(fs) == 0 {
		s.mu.Unlock()
		return false
	}
	f := fs[0]
	s.faults[endpoint] = fs[1:]
	s.mu.Unlock()
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	if endpoint == EndpointToken {
		oauthError(w, f.Status, f.Reason)
		return true
	}
	apiError(w, f.Status, f.Reason, "fake: injected "+f.Reason)
	return true
}

// apiError writes a Google API error body, which googleapi.CheckResponse reads.
func apiError(w http.ResponseWriter, status int, reason, msg string) {
	domain := "global"
	if strings.Contains(reason, "RateLimit") || strings.Contains(reason, "rateLimit") {
		domain = "usageLimits"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "message": msg,
		"errors": []map[string]string{{"domain": domain, "reason": reason, "message": msg}},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// api authenticates a Gmail API request and hands it its account.
func (s *Server) api(endpoint string, h func(http.ResponseWriter, *http.Request, *Account, grant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		d := s.latency[endpoint]
		s.mu.Unlock()
		if d > 0 {
			time.Sleep(d)
		}
		if s.fault(w, endpoint) {
			return
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		g, ok := s.access[tok]
		s.mu.Unlock()
		if !ok {
			apiError(w, http.StatusUnauthorized, "authError", "Invalid Credentials")
			return
		}
		if u := r.PathValue("user"); u != "me" && u != g.account.Email {
			apiError(w, http.StatusForbidden, "forbidden", "Delegation denied")
			return
		}
		h(w, r, g.account, g)
	}
}

// Account is one Gmail mailbox of the fake.
type Account struct {
	Email  string
	server *Server

	// Guarded by server.mu.
	messages  []*message // oldest first
	byID      map[string]*message
	historyID uint64
	history   []historyRecord
	// minHistory is the oldest startHistoryId history.list still serves.
	minHistory uint64
	// watchExpiry is when users.watch's watch ends (zero: not watched).
	watchExpiry time.Time
}

type message struct {
	id        string
	seq       int
	raw       []byte
	historyID uint64
	labels    []string
	// received is the internalDate: when Gmail received the message.
	received time.Time
}

type historyRecord struct {
	id  uint64
	msg *message
}

// AddMessages adds n generated messages, newer than any before, and returns their ids.
func (a *Account) AddMessages(n int) []string {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = a.addLocked(nil).id
	}
	return ids
}

// Add adds one message with the given RFC 822 bytes and returns its id.
//
// Its internalDate, as Gmail's for mail delivered to the mailbox, is the
// time it was added, whatever its Date header says.
func (a *Account) Add(raw []byte) string {
	return a.AddReceived(raw, time.Now())
}

// AddReceived adds a message received by Gmail at received (its
// internalDate) and returns its id.
func (a *Account) AddReceived(raw []byte, received time.Time) string {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	m := a.addLocked(raw)
	m.received = received
	return m.id
}

func (a *Account) addLocked(raw []byte) *message {
	seq := len(a.messages)
	a.historyID += 1 + uint64(seq%3) // history ids grow, not always by one
	m := &message{id: fmt.Sprintf("%016x", 0x18f0000000000000+uint64(seq)*7919), seq: seq, raw: raw,
		historyID: a.historyID, labels: []string{"INBOX", "UNREAD"}}
	a.messages = append(a.messages, m)
	a.byID[m.id] = m
	a.history = append(a.history, historyRecord{id: a.historyID, msg: m})
	a.server.notifyLocked(a)
	return m
}

// Raw returns the bytes of the message id (generated ones are made on demand).
func (a *Account) Raw(id string) []byte {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	if m := a.byID[id]; m != nil {
		return a.rawLocked(m)
	}
	return nil
}

// IDs returns every message id, newest first.
func (a *Account) IDs() []string {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	out := make([]string, 0, len(a.messages))
	for i := len(a.messages) - 1; i >= 0; i-- {
		out = append(out, a.messages[i].id)
	}
	return out
}

// ExpireHistory makes every historyId up to now too old for history.list (404).
func (a *Account) ExpireHistory() {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	a.minHistory = a.historyID + 1
}

// HistoryID is the account's current historyId.
func (a *Account) HistoryID() uint64 {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	return a.historyID
}

var epoch = time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)

// internalDate is when Gmail received m: for a generated message, the date
// it is made with (2024, a minute apart).
func (m *message) internalDate() time.Time {
	if !m.received.IsZero() {
		return m.received
	}
	return epoch.Add(time.Duration(m.seq) * time.Minute)
}

func (a *Account) rawLocked(m *message) []byte {
	if m.raw != nil {
		return m.raw
	}
	date := epoch.Add(time.Duration(m.seq) * time.Minute)
	return fmt.Appendf(nil, "From: Sender %d <sender%d@example.com>\r\nTo: %s\r\nSubject: Message %d\r\n"+
		"Date: %s\r\nMessage-ID: <%s@fake.gmail>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"This is message %d of the fake mailbox.\r\n",
		m.seq%50, m.seq%50, a.Email, m.seq, date.Format(time.RFC1123Z), m.id, m.seq)
}

func (s *Server) profile(w http.ResponseWriter, _ *http.Request, a *Account, _ grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"emailAddress": a.Email, "messagesTotal": len(a.messages), "threadsTotal": len(a.messages),
		"historyId": strconv.FormatUint(a.historyID, 10),
	})
}

func pageSize(r *http.Request, def int) int {
	n, err := strconv.Atoi(r.URL.Query().Get("maxResults"))
	if err != nil || n <= 0 {
		return def
	}
	return min(n, 500)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, a *Account, _ grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := pageSize(r, 100)
	// The page token is the seq of the last message given: the next page
	// starts below it, so messages added meanwhile do not shift the pages.
	start := len(a.messages) - 1
	if tok := r.URL.Query().Get("pageToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(a.messages) {
			apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid pageToken")
			return
		}
		start = n - 1
	}
	var out []map[string]string
	i := start
	for ; i >= 0 && len(out) < size; i-- {
		m := a.messages[i]
		out = append(out, map[string]string{"id": m.id, "threadId": m.id})
	}
	resp := map[string]any{"resultSizeEstimate": len(out)}
	if len(out) > 0 {
		resp["messages"] = out
	}
	if i >= 0 {
		resp["nextPageToken"] = strconv.Itoa(i + 1)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, a *Account, g grant) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "full"
	}
	if g.scope == ScopeMetadata && format != "metadata" && format != "minimal" {
		apiError(w, http.StatusForbidden, "forbidden", "Metadata scope doesn't allow format "+strings.ToUpper(format))
		return
	}
	s.mu.Lock()
	m := a.byID[r.PathValue("id")]
	var raw []byte
	if m != nil {
		raw = a.rawLocked(m)
	}
	s.mu.Unlock()
	if m == nil {
		apiError(w, http.StatusNotFound, "notFound", "Requested entity was not found.")
		return
	}
	resp := map[string]any{
		"id": m.id, "threadId": m.id, "labelIds": m.labels,
		"historyId":    strconv.FormatUint(m.historyID, 10),
		"internalDate": strconv.FormatInt(m.internalDate().UnixMilli(), 10),
		"sizeEstimate": len(raw),
		"snippet":      snippet(raw),
	}
	switch format {
	case "raw":
		resp["raw"] = base64.URLEncoding.EncodeToString(raw)
	case "metadata", "full":
		var headers []map[string]string
		if msg, err := mail.ReadMessage(strings.NewReader(string(raw))); err == nil {
			keys := make([]string, 0, len(msg.Header))
			for k := range msg.Header {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				for _, v := range msg.Header[k] {
					headers = append(headers, map[string]string{"name": k, "value": v})
				}
			}
		}
		resp["payload"] = map[string]any{"mimeType": "text/plain", "headers": headers}
	}
	writeJSON(w, http.StatusOK, resp)
}

// snippet is the start of the body, HTML-escaped as Gmail sends it.
func snippet(raw []byte) string {
	s := string(raw)
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		s = s[i+4:]
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&#39;", `"`, "&quot;").Replace(s)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, a *Account, _ grant) {
	q := r.URL.Query()
	start, err := strconv.ParseUint(q.Get("startHistoryId"), 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid startHistoryId")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if start < a.minHistory {
		apiError(w, http.StatusNotFound, "notFound", "Requested entity was not found.")
		return
	}
	types := q["historyTypes"]
	wantAdded := len(types) == 0
	for _, t := range types {
		wantAdded = wantAdded || t == "messageAdded"
	}
	size := pageSize(r, 100)
	from := start
	if tok := q.Get("pageToken"); tok != "" {
		if from, err = strconv.ParseUint(tok, 10, 64); err != nil {
			apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid pageToken")
			return
		}
	}
	i := sort.Search(len(a.history), func(i int) bool { return a.history[i].id > from })
	var out []map[string]any
	for ; i < len(a.history) && len(out) < size; i++ {
		h := a.history[i]
		rec := map[string]any{
			"id":       strconv.FormatUint(h.id, 10),
			"messages": []map[string]any{{"id": h.msg.id, "threadId": h.msg.id}},
		}
		if wantAdded {
			rec["messagesAdded"] = []map[string]any{{"message": map[string]any{"id": h.msg.id, "threadId": h.msg.id, "labelIds": h.msg.labels}}}
		}
		out = append(out, rec)
	}
	resp := map[string]any{"historyId": strconv.FormatUint(a.historyID, 10)}
	if len(out) > 0 {
		resp["history"] = out
	}
	if i < len(a.history) {
		resp["nextPageToken"] = out[len(out)-1]["id"]
	}
	writeJSON(w, http.StatusOK, resp)
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Secrets returns every refresh and access token the server has issued, so
// that tests can check that none of them shows up where it must not.
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.refresh {
		out = append(out, t)
	}
	for t := range s.access {
		out = append(out, t)
	}
	return out
}
