package e2e_test

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// adminMail is the i-th mail of the admin test's backfill: each its own
// content, so that every one goes to the model.
func adminMail(i int) string {
	m := fmt.Sprintf("From: Client %d <client%d@studio.example>\r\nTo: Ada Lovelace <ada@example.com>\r\n"+
		"Subject: Drawings for site %d\r\nDate: %s\r\nMessage-ID: <console-admin-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Hello Ada,\r\n\r\ncould you send the revised drawings for site %d by Thursday?\r\n",
		i, i, i, time.Now().Add(-time.Duration(i)*time.Minute).Format(time.RFC1123Z), i, i)
	return base64.StdEncoding.EncodeToString([]byte(m))
}

// TestConsoleAdmin drives the web console's admin pages in Debian's
// chromium, signed in with the suite's bootstrap admin key, during a
// backfill that the fake OpenAI answers with some 429s: the limiter's
// charts move and a 429 is counted; the spend page shows the red flags
// (credit below $5, a dead letter waiting); sync jobs of two users are
// listed; the dead letter is replayed; a key of ada's is created, shown
// once, used and deleted; every page fits a phone's width.
// test/console/admin.mjs holds the browser's side; it saves a screenshot
// of each page in $MAILROOM_SCREENSHOTS.
func TestConsoleAdmin(t *testing.T) {
	node := browserTools(t)
	const openaiKey = "sk-console-admin-test-key-0000000000"
	// Generous limits at the fake: the 429s are its faults, one answer in
	// twenty, each asking for a wait of 300 ms.
	fake, openaiURL, stop, err := fakeopenai.Start(fakeopenai.Config{
		Keys:    map[string]fakeopenai.Limits{openaiKey: {RPM: 60000, TPM: 10_000_000}},
		Latency: 50 * time.Millisecond,
		Seed:    18,
		Faults:  fakeopenai.FaultRates{RateLimit: 0.05, RateLimitRetryAfter: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	e := start(t, options{extra: map[string]string{
		"OPENAI_API_KEY":  openaiKey,
		"OPENAI_BASE_URL": openaiURL + "/v1",
		// The classifier's own pace, ten mails a second: the backfill
		// lasts while the browser watches.
		"OPENAI_RPM": "600",
		"OPENAI_TPM": "10000000",
		// A failed model call gives up at once: the dead letter to replay.
		"OPENAI_MAX_ATTEMPTS":    "1",
		"OPENAI_BATCH":           "off",
		"MAILROOM_LEARN_SENDERS": "false",
		// A snapshot a second, so that the charts move within the test.
		"MAILROOM_LIMITS_HISTORY_INTERVAL": "1s",
		// Credit below $5: a red flag.
		"MAILROOM_DAILY_BUDGET_USD": "5",
		"MAILROOM_CREDIT_USD":       "4",
		"MAILROOM_SYNC_INTERVAL":    "0",
	}})
	ada := e.user("ada")
	bob := e.user("bob")
	mb := e.mailbox("ada", ada, "archive")
	bobBox := e.mailbox("bob", bob, "archive")
	for _, s := range []struct{ key, box string }{{ada, mb}, {bob, bobBox}} {
		e.must(200, "POST", "/v1/"+s.box+":sync", s.key, map[string]any{})
	}

	// The first model call fails: that mail goes to the dead letters.
	fake.Inject(fakeopenai.ServerError, 1)
	first := e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": adminMail(0)}}})
	deadMessage, _ := first["messages"].([]any)[0].(map[string]any)["message"].(string)
	waitFor(t, 30*time.Second, "the dead letter", func() bool {
		out := e.must(200, "GET", "/v1/users/ada/deadLetters", ada, nil)
		dl, _ := out["deadLetters"].([]any)
		return len(dl) == 1
	})

	// The backfill: 300 mails, classified at ten a second.
	const backfill = 300
	for start := 1; start <= backfill; start += 100 {
		var msgs []map[string]any
		for i := start; i < start+100; i++ {
			msgs = append(msgs, map[string]any{"raw": adminMail(i)})
		}
		e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": msgs})
	}

	runBrowserScript(t, node, "admin.mjs", map[string]string{
		"MAILROOM_URL":         e.url,
		"MAILROOM_ADMIN_KEY":   e.admin,
		"MAILROOM_USERS":       "ada,bob",
		"MAILROOM_DEAD_LETTER": deadMessage,
		"MAILROOM_SCREENSHOTS": screenshotDir(t),
	}, 4*time.Minute)

	// The 429s the page counted are the fake's: GetLimits' history holds
	// no more of them than the fake answered, and at least one.
	limits := e.must(200, "GET", "/v1/limits?historySince=1970-01-01T00:00:00Z", e.admin, nil)
	var counted int64
	for _, s := range limits["history"].([]any) {
		keys, _ := s.(map[string]any)["keys"].([]any)
		for _, k := range keys {
			n, _ := strconv.ParseInt(k.(map[string]any)["rateLimited"].(string), 10, 64)
			counted += n
		}
	}
	st := fake.Stats().Keys[openaiKey]
	answered := st.RateLimited + st.Faults[fakeopenai.FaultRateLimit]
	if counted < 1 || counted > answered {
		t.Errorf("the history counts %d 429s; the fake answered %d", counted, answered)
	}
	// The replayed mail is classified after all, behind the backfill (it
	// goes back to its lane, backfill).
	waitFor(t, 3*time.Minute, "the replayed mail classified", func() bool {
		m := e.must(200, "GET", "/v1/"+deadMessage, ada, nil)
		c, _ := m["classification"].(map[string]any)
		return c != nil && c["category"] != nil && c["category"] != ""
	})
	if found := secretsIn(e.logs.String(), e.admin, openaiKey); len(found) > 0 {
		t.Errorf("secrets in the services' logs: %v", found)
	}
	if strings.Contains(e.logs.String(), "Drawings for site") {
		t.Error("mail content in the services' logs")
	}
}
