package e2e_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"mailroom.dev/fakes/fakegmail"
	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/platform/testenv"
)

// Mail content that must never reach a log line or a span.
const (
	plantedSubject = "Quarterly plan for the zx81 acquisition"
	plantedBody    = "ultramarine-giraffe-4711 is the code word"
	plantedSender  = "planted.sender@example.org"
)

func plantedMail(i int) []byte {
	return []byte(fmt.Sprintf("From: Planted Sender <%s>\r\nTo: ada@example.com\r\nSubject: %s %d\r\n"+
		"Date: %s\r\nMessage-ID: <planted-%d@example.org>\r\n\r\n%s, copy %d.\r\n",
		plantedSender, plantedSubject, i, plantedTime(i).Format(time.RFC1123Z), i, plantedBody, i))
}

// plantedTime is when planted mail i was sent: within the last hour, so
// that it is inside the store's retention whatever the date.
func plantedTime(i int) time.Time {
	return time.Now().Add(-time.Hour).Add(time.Duration(i) * time.Second)
}

// TestNoSecretInLogsSpansOrAnswers runs the whole suite through every path
// that handles a secret — the bootstrap key, users' API keys, an OpenAI key,
// an IMAP password (wrong, then right), a Gmail consent and its tokens, the
// vault's key — and mail whose subject, sender and body are marked. It
// captures every log line of every service and every span, and finds none of
// the secrets nor the mail's content there, in plain text or base64.
func TestNoSecretInLogsSpansOrAnswers(t *testing.T) {
	openaiKey := "sk-planted-" + testenv.RandomID(16)
	fake, fakeURL, stop, err := fakeopenai.Start(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{openaiKey: {RPM: 60000, TPM: 10_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	gmail := fakegmail.New()
	defer gmail.Close()
	acct := gmail.AddAccount("ada@gmail.example")
	for i := range 3 {
		acct.Add(plantedMail(100 + i))
	}

	imapPassword := "imap-planted-" + testenv.RandomID(12)
	imapAddr := startIMAP(t, "ada", imapPassword, plantedMail(200), plantedMail(201))

	e := start(t, options{extra: map[string]string{
		"OPENAI_API_KEY":                  openaiKey,
		"OPENAI_BASE_URL":                 fakeURL + "/v1",
		"OPENAI_RPM":                      "60000",
		"OPENAI_TPM":                      "10000000",
		"GOOGLE_OAUTH_CLIENT_ID":          gmail.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":      gmail.ClientSecret,
		"MAILROOM_GOOGLE_AUTH_URL":        gmail.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":       gmail.TokenURL,
		"MAILROOM_GOOGLE_REVOKE_URL":      gmail.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT":         gmail.URL,
		"MAILROOM_GMAIL_QUOTA_PER_MINUTE": "1000000",
		"MAILROOM_IMAP_ALLOW_HOSTS":       "127.0.0.1",
		"MAILROOM_SYNC_INTERVAL":          "0",
		"MAILROOM_WEBHOOK_ALLOW_HOSTS":    "127.0.0.1",
		"MAILROOM_WEBHOOK_MIN_BACKOFF":    "100ms",
		"MAILROOM_WEBHOOK_MAX_BACKOFF":    "1s",
	}})
	ada := e.user("ada")
	badKey := "mr_planted_" + testenv.RandomID(16)
	e.must(401, "GET", "/v1/users/me/messages", badKey, nil)

	// A webhook: its secret is shown once, kept in auth's vault, and signs
	// every delivery (a delivery before the test knows it is retried).
	var (
		hookMu                   sync.Mutex
		hookSecret               string
		hookSigned, hookUnsigned int
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		defer hookMu.Unlock()
		switch {
		case hookSecret == "":
			w.WriteHeader(http.StatusServiceUnavailable)
		case signedBy(hookSecret, r.Header.Get("Mailroom-Signature"), body):
			hookSigned++
			w.WriteHeader(http.StatusNoContent)
		default:
			hookUnsigned++
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer hook.Close()
	wh := e.must(200, "POST", "/v1/users/ada/webhooks?webhookId=planted", ada, map[string]any{"url": hook.URL + "/hook"})
	whSecret, _ := wh["secret"].(string)
	if !strings.HasPrefix(whSecret, "whsec_") {
		t.Fatalf("CreateWebhook answered %v, want a whsec_ secret", wh)
	}
	hookMu.Lock()
	hookSecret = whSecret
	hookMu.Unlock()

	// Imported mail goes through the model (no rule is sure of it).
	mb := e.mailbox("ada", ada, "inbox")
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{
		{"raw": base64.StdEncoding.EncodeToString(plantedMail(1))},
		{"raw": base64.StdEncoding.EncodeToString(plantedMail(2))},
	}})
	e.must(200, "POST", "/v1/classify", ada, map[string]any{"subject": plantedSubject, "from": plantedSender, "body": plantedBody})

	// IMAP: a wrong password is refused without being repeated; the right one is kept in the vault.
	wrongPassword := "wrong-planted-" + testenv.RandomID(8)
	imapBox := func(pw string) map[string]any {
		host, port, _ := net.SplitHostPort(imapAddr)
		return map[string]any{"provider": "IMAP", "address": "ada@example.com", "imap": map[string]any{
			"host": host, "port": port, "username": "ada", "password": pw, "security": "NONE"}}
	}
	status, body := e.call("POST", "/v1/users/ada/mailboxes?mailboxId=imap", ada, imapBox(wrongPassword))
	if status != 400 {
		t.Errorf("a wrong IMAP password: %d %v, want 400", status, body)
	}
	created := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=imap", ada, imapBox(imapPassword))
	job := e.must(200, "POST", "/v1/users/ada/mailboxes/imap:sync", ada, map[string]any{})
	e.waitJob(ada, job["name"].(string))

	// Gmail: consent through the gateway's callback, then a sync.
	gm := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", ada, map[string]any{"provider": "GMAIL"})
	if status := browse(t, e.url, gm["authorizationUrl"].(string), nil); status != 200 {
		t.Fatalf("callback: %d", status)
	}
	job = e.must(200, "POST", "/v1/users/ada/mailboxes/gmail:sync", ada, map[string]any{})
	e.waitJob(ada, job["name"].(string))
	e.classified(ada, "ada", 2+2+3)

	// Answers: the IMAP password is input only.
	for _, got := range []map[string]any{created, e.must(200, "GET", "/v1/users/ada/mailboxes/imap", ada, nil), e.must(200, "GET", "/v1/users/ada/mailboxes", ada, nil)} {
		if s := fmt.Sprint(got); strings.Contains(s, imapPassword) {
			t.Errorf("an answer carries the IMAP password: %s", s)
		}
	}

	// The webhook: deliveries signed with the secret from the vault; the
	// secret is in no later answer.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		hookMu.Lock()
		n, bad := hookSigned, hookUnsigned
		hookMu.Unlock()
		if bad > 0 {
			t.Fatalf("%d webhook deliveries were not signed with the webhook's secret", bad)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no signed webhook delivery within 30s")
		}
	}
	for _, got := range []map[string]any{e.must(200, "GET", "/v1/users/ada/webhooks/planted", ada, nil), e.must(200, "GET", "/v1/users/ada/webhooks", ada, nil)} {
		if s := fmt.Sprint(got); strings.Contains(s, whSecret) {
			t.Errorf("an answer carries the webhook secret: %s", s)
		}
	}

	vaultKey, err := os.ReadFile(filepath.Join(e.dir, "vault-key"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"bootstrap admin key":      e.admin,
		"ada's API key":            ada,
		"a refused API key":        badKey,
		"the OpenAI key":           openaiKey,
		"the IMAP password":        imapPassword,
		"a wrong password":         wrongPassword,
		"the vault key":            strings.TrimSpace(string(vaultKey)),
		"the mail's subject":       plantedSubject,
		"the mail's body":          plantedBody,
		"the mail's sender":        plantedSender,
		"the Google client secret": gmail.ClientSecret,
		"the webhook secret":       whSecret,
	}
	for i, s := range gmail.Secrets() {
		secrets[fmt.Sprintf("Google token #%d", i)] = s
	}
	if len(gmail.Secrets()) < 2 || fake.Stats().Keys[openaiKey].Requests == 0 {
		t.Fatalf("the run did not exercise Google's tokens or the model (%d tokens, %d model requests)", len(gmail.Secrets()), fake.Stats().Keys[openaiKey].Requests)
	}

	time.Sleep(200 * time.Millisecond) // the last spans end
	logs := e.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatal("the captured logs lack debug lines: the scan would miss them")
	}
	var spanText strings.Builder
	for _, s := range spans.GetSpans() {
		writeSpan(&spanText, s)
	}
	for what, secret := range secrets {
		for _, form := range forms(secret) {
			if strings.Contains(logs, form) {
				t.Errorf("%s is in the logs", what)
			}
			if strings.Contains(spanText.String(), form) {
				t.Errorf("%s is in a span", what)
			}
		}
	}
	t.Logf("scanned %d bytes of logs and %d spans for %d secrets", len(logs), len(spans.GetSpans()), len(secrets))
}

// forms are the ways a secret can be written: plain, and base64 of each
// alphabet (with and without padding).
func forms(s string) []string {
	out := []string{s}
	if len(s) >= 8 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			e := enc.EncodeToString([]byte(s))
			out = append(out, e[:len(e)*3/4]) // a prefix: the tail depends on what follows
		}
	}
	return out
}

// writeSpan writes everything a span carries: its name, attributes, events,
// links and status.
func writeSpan(w *strings.Builder, s tracetest.SpanStub) {
	fmt.Fprintf(w, "%s %s\n", s.Name, s.Status.Description)
	for _, a := range s.Attributes {
		fmt.Fprintf(w, "%s=%s\n", a.Key, a.Value.Emit())
	}
	for _, e := range s.Events {
		fmt.Fprintf(w, "event %s\n", e.Name)
		for _, a := range e.Attributes {
			fmt.Fprintf(w, "%s=%s\n", a.Key, a.Value.Emit())
		}
	}
	for _, l := range s.Links {
		for _, a := range l.Attributes {
			fmt.Fprintf(w, "%s=%s\n", a.Key, a.Value.Emit())
		}
	}
	for _, a := range s.Resource.Attributes() {
		fmt.Fprintf(w, "%s=%s\n", a.Key, a.Value.Emit())
	}
}

// waitJob waits until a sync job ends and fails the test unless it succeeded.
func (e *env) waitJob(key, name string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j := e.must(200, "GET", "/v1/"+name, key, nil)
		switch j["state"] {
		case "SYNC_JOB_STATE_SUCCEEDED":
			return
		case "SYNC_JOB_STATE_FAILED":
			e.t.Fatalf("sync job %s failed: %v", name, j["error"])
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sync job %s still %v after 30s", name, j["state"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startIMAP serves an in-memory IMAP server in plain text on loopback (the
// suite allows 127.0.0.1 by MAILROOM_IMAP_ALLOW_HOSTS) with one user whose
// INBOX holds mails.
func startIMAP(t *testing.T, user, password string, mails ...[]byte) string {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for i, m := range mails {
		if _, err := u.Append("INBOX", literal{bytes.NewReader(m)}, &imap.AppendOptions{Time: plantedTime(i)}); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// signedBy says whether header (Mailroom-Signature: t=…,v1=…) is the
// HMAC-SHA256 under secret of t, a period and body, as the README tells a
// receiver to check.
func signedBy(secret, header string, body []byte) bool {
	var ts, v1 string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return ts != "" && hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(v1))
}
