package e2e_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
)

// browse plays a browser that opens a Gmail mailbox's authorization URL:
// the gateway's /oauth/google/start (whatever host the public URL names:
// it is sent to gateway, http://host:port) binds it with a cookie and
// sends it to the fake Google, whose consent page sends it back to the
// gateway's callback. jar is the browser's cookies (nil: a new browser).
// It returns the callback's status.
func browse(t *testing.T, gateway, authURL string, jar http.CookieJar) int {
	t.Helper()
	if jar == nil {
		jar, _ = cookiejar.New(nil)
	}
	gw, err := url.Parse(gateway)
	if err != nil {
		t.Fatal(err)
	}
	toGateway := func(u *url.URL) {
		if strings.HasPrefix(u.Path, "/oauth/google/") {
			u.Scheme, u.Host = gw.Scheme, gw.Host
		}
	}
	start, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	toGateway(start)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		toGateway(req.URL)
		req.Host = req.URL.Host
		return nil
	}}
	resp, err := client.Get(start.String())
	if err != nil {
		t.Fatalf("browsing the authorization URL: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGmailConsentBoundToTheBrowser: eve creates a Gmail mailbox and her
// browser opens its authorization URL (bound to her browser by a cookie);
// she has ada's browser come back from Google with ada's consent (she
// sends ada the consent link Google gives, or the callback URL): the
// gateway refuses it, and ada's mailbox is not attached to eve's account.
// ada's own consent, in her own browser, works.
func TestGmailConsentBoundToTheBrowser(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	fake.AddAccount("ada@gmail.example")
	e := start(t, options{extra: map[string]string{
		"GOOGLE_OAUTH_CLIENT_ID":     fake.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET": fake.ClientSecret,
		"MAILROOM_PUBLIC_URL":        "http://mailroom.invalid",
		"MAILROOM_GOOGLE_AUTH_URL":   fake.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":  fake.TokenURL,
		"MAILROOM_GMAIL_ENDPOINT":    fake.URL,
		"MAILROOM_SYNC_INTERVAL":     "0",
	}})
	eve := e.user("eve")
	ada := e.user("ada")
	mb := e.must(200, "POST", "/v1/users/eve/mailboxes?mailboxId=gmail", eve, map[string]any{"provider": "GMAIL"})
	authURL, _ := mb["authorizationUrl"].(string)
	if !strings.HasPrefix(authURL, "http://mailroom.invalid/oauth/google/start?state=") {
		t.Fatalf("authorization URL %q, want the gateway's /oauth/google/start", authURL)
	}

	// eve's browser starts; it stops before Google (eve keeps the link).
	eveJar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: eveJar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, _ := url.Parse(authURL)
	resp, err := noFollow.Get(e.url + u.Path + "?" + u.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	googleURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(googleURL, fake.AuthURL) {
		t.Fatalf("start: %d to %q", resp.StatusCode, googleURL)
	}
	// ada's browser (no cookie of eve's) consents at Google and comes back.
	if got := browse(t, e.url, googleURL, nil); got != http.StatusForbidden {
		t.Errorf("ada's browser back from Google with eve's state: %d, want 403", got)
	}
	// Nor does the start link, opened again in ada's browser, bind it.
	if got := browse(t, e.url, authURL, nil); got == http.StatusOK {
		t.Errorf("ada's browser opening eve's start link again: %d, want a refusal", got)
	}
	got := e.must(200, "GET", "/v1/users/eve/mailboxes/gmail", eve, nil)
	if got["state"] == "MAILBOX_STATE_ACTIVE" || got["address"] == "ada@gmail.example" {
		t.Errorf("eve's mailbox = %v: ada's Gmail is attached to eve's account", got)
	}

	// ada connects her own mailbox in her own browser.
	mine := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", ada, map[string]any{"provider": "GMAIL"})
	if got := browse(t, e.url, mine["authorizationUrl"].(string), nil); got != http.StatusOK {
		t.Fatalf("ada's own consent: %d", got)
	}
	got = e.must(200, "GET", "/v1/users/ada/mailboxes/gmail", ada, nil)
	if got["state"] != "MAILBOX_STATE_ACTIVE" || got["address"] != "ada@gmail.example" {
		t.Errorf("ada's mailbox after her consent = %v", got)
	}
}
