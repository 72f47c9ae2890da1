package e2e_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/platform/testenv"
)

// consoleMail is a mail from sender about subject, dated ago before now.
func consoleMail(sender, subject, text string, ago time.Duration, i int) string {
	m := fmt.Sprintf("From: %s\r\nTo: Ada Lovelace <ada@example.com>\r\n"+
		"Subject: %s\r\nDate: %s\r\nMessage-ID: <console-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		sender, subject, time.Now().Add(-ago).Format(time.RFC1123Z), i, text)
	return base64.StdEncoding.EncodeToString([]byte(m))
}

// TestConsoleUser drives the web console in Debian's chromium, as a user:
// sign in with an API key, see imported mail grouped by category, open a
// message and correct its category (it moves at once, and the API has the
// correction), connect a Gmail mailbox through Google's (fake) consent in
// a second tab, start its sync and watch it finish, connect an IMAP
// mailbox and sync it, see mail imported
// meanwhile appear without a reload, edit the taxonomy, and use the pages
// at a phone's width. test/console/user.mjs holds the browser's side; it
// saves a screenshot of each page.
func TestConsoleUser(t *testing.T) {
	node := browserTools(t)
	const gmailMessages = 30

	gmail := fakegmail.New()
	defer gmail.Close()
	acct := gmail.AddAccount("ada@gmail.example")
	acct.AddMessages(gmailMessages)
	// Slow enough that the sync's progress is seen moving, with an estimate.
	gmail.SetLatency(fakegmail.EndpointGet, 300*time.Millisecond)

	const openaiKey = "sk-console-test-key-00000000000000"
	_, openaiURL, stop, err := fakeopenai.Start(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{openaiKey: {RPM: 60000, TPM: 10_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	imapPassword := "imap-console-" + testenv.RandomID(12)
	imapAddr := startIMAP(t, "ada", imapPassword, plantedMail(300), plantedMail(301))
	imapHost, imapPort, _ := net.SplitHostPort(imapAddr)

	// The consent sends the browser back to the gateway's public URL: it
	// must be the address the gateway listens on.
	addr := freeAddr(t)
	e := start(t, options{extra: map[string]string{
		"MAILROOM_HTTP_ADDR":  addr,
		"MAILROOM_PUBLIC_URL": "http://" + addr,
		"OPENAI_API_KEY":      openaiKey,
		"OPENAI_BASE_URL":     openaiURL + "/v1",
		// The classifier's own pace, two mails a second: the sync's
		// classification takes a while, so its estimate is seen.
		"OPENAI_RPM":                      "120",
		"OPENAI_TPM":                      "10000000",
		"GOOGLE_OAUTH_CLIENT_ID":          gmail.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":      gmail.ClientSecret,
		"MAILROOM_GOOGLE_AUTH_URL":        gmail.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":       gmail.TokenURL,
		"MAILROOM_GOOGLE_REVOKE_URL":      gmail.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT":         gmail.URL,
		"MAILROOM_GMAIL_QUOTA_PER_MINUTE": "1000000",
		"MAILROOM_SYNC_INTERVAL":          "0",
		"MAILROOM_IMAP_ALLOW_HOSTS":       "127.0.0.1",
		// Tokens short enough that the console renews its token, with the
		// key it holds in memory, during the test.
		"MAILROOM_TOKEN_TTL": "25s",
		// The fake Gmail's mail is dated 2024: keep it all.
		"MAILROOM_RETENTION_DAYS": "0",
	}})
	key := e.user("ada")
	mb := e.mailbox("ada", key, "inbox")

	// Mail in several categories, imported through the API.
	msgs := []map[string]any{{"raw": raw(t, "newsletter.eml")}, {"raw": raw(t, "personal.eml")}}
	for i, m := range []struct{ from, subject, text string }{
		{"Billing <billing@utility.example>", "Invoice 2291", "Your invoice is ready; the payment is due on the 30th."},
		{"Grace Hopper <grace@navy.example>", "Project meeting moved", "The project meeting agenda is attached; see you at the standup."},
		{"Shop <orders@shop.example>", "Your order has shipped", "Your order #5521 has shipped; the tracking number is 1Z999."},
		{"Charles <charles@engine.example>", "Dinner this weekend?", "Shall we have dinner with the family this weekend?"},
		{"Bank <alerts@bank.example>", "Payment received", "We received your payment of $120. This is a receipt."},
	} {
		msgs = append(msgs, map[string]any{"raw": consoleMail(m.from, m.subject, m.text, time.Duration(i+1)*time.Hour, i)})
	}
	e.must(200, "POST", "/v1/"+mb+"/messages:import", key, map[string]any{"messages": msgs})
	e.classified(key, "ada", len(msgs))

	runBrowserScript(t, node, "user.mjs", map[string]string{
		"MAILROOM_URL":            e.url,
		"MAILROOM_API_KEY":        key,
		"MAILROOM_IMPORT_MAILBOX": mb,
		"MAILROOM_GMAIL_MESSAGES": strconv.Itoa(gmailMessages),
		"MAILROOM_SCREENSHOTS":    screenshotDir(t),
		"MAILROOM_IMAP_HOST":      imapHost,
		"MAILROOM_IMAP_PORT":      imapPort,
		"MAILROOM_IMAP_USER":      "ada",
		"MAILROOM_IMAP_PASSWORD":  imapPassword,
	}, 4*time.Minute)

	// What the browser did is in the API's answers too.
	boxes := e.must(200, "GET", "/v1/users/ada/mailboxes", key, nil)
	var gmailBox, imapBox map[string]any
	for _, b := range boxes["mailboxes"].([]any) {
		switch m := b.(map[string]any); m["provider"] {
		case "PROVIDER_GMAIL":
			gmailBox = m
		case "PROVIDER_IMAP":
			imapBox = m
		}
	}
	if imapBox == nil || imapBox["state"] != "MAILBOX_STATE_ACTIVE" || imapBox["messageCount"] != "2" {
		t.Errorf("the IMAP mailbox the browser connected and synced = %v", imapBox)
	}
	if gmailBox == nil || gmailBox["state"] != "MAILBOX_STATE_ACTIVE" || gmailBox["address"] != "ada@gmail.example" || gmailBox["messageCount"] != strconv.Itoa(gmailMessages) {
		t.Errorf("the Gmail mailbox the browser connected and synced = %v", gmailBox)
	}
	corrected := 0
	out := e.must(200, "GET", "/v1/users/ada/messages?pageSize=100&filter="+strings.ReplaceAll(`classified = true`, " ", "%20"), key, nil)
	for _, m := range out["messages"].([]any) {
		if c, _ := m.(map[string]any)["classification"].(map[string]any); c["source"] == "CLASSIFICATION_SOURCE_USER" {
			corrected++
		}
	}
	if corrected != 1 {
		t.Errorf("%d messages carry a user's correction, want the 1 the browser made", corrected)
	}
	// The console renewed its token (25 s) before it expired, more than once.
	if n := strings.Count(e.logs.String(), `"route":"/v1/apiKeys:exchange","status":200`); n < 3 {
		t.Errorf("the console exchanged its key %d times in the test, want a sign-in and renewals", n)
	}
	if strings.Contains(e.logs.String(), `"route":"/v1/apiKeys:exchange","status":401`) {
		t.Error("an exchange was refused")
	}
	if found := secretsIn(e.logs.String(), key, imapPassword); len(found) > 0 {
		t.Errorf("secrets the browser sent are in the services' logs: %v", found)
	}
}
