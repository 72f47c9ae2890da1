package e2e_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestQuotas: an admin gives ada a quota of 2 mails a day (ada may read
// hers, not change it); one Classify and one imported mail use it up; the
// next Classify is refused with 429 RESOURCE_EXHAUSTED naming the quota
// and its reset, and the other imported mails wait, stored and neither
// classified, failed nor dead-lettered, while bob's mail goes through.
func TestQuotas(t *testing.T) {
	e := start(t, options{})
	ada := e.user("ada")
	bob := e.user("bob")

	q := e.must(200, "GET", "/v1/users/ada/quota", ada, nil)
	if q["mailsPerDay"] != "0" || q["effectiveMailsPerDay"] != "5000" || q["effectiveModelTokensPerDay"] != "2000000" {
		t.Errorf("ada's default quota = %v, want the README's defaults (5000 mails, 2000000 model tokens)", q)
	}
	e.must(403, "PATCH", "/v1/users/ada/quota", ada, map[string]any{"mailsPerDay": "100000"})
	e.must(403, "GET", "/v1/users/bob/quota", ada, nil)
	e.must(400, "PATCH", "/v1/users/ada/quota", e.admin, map[string]any{"mailsPerDay": "-2"})
	q = e.must(200, "PATCH", "/v1/users/ada/quota", e.admin, map[string]any{"mailsPerDay": "2"})
	if q["mailsPerDay"] != "2" || q["effectiveMailsPerDay"] != "2" {
		t.Fatalf("quota after the update = %v", q)
	}

	e.must(200, "POST", "/v1/classify", ada, map[string]any{"subject": "Lunch?", "from": "grace@example.org", "body": "Are you free?"})
	for user, key := range map[string]string{"ada": ada, "bob": bob} {
		mb := e.mailbox(user, key, "inbox")
		msgs := []map[string]any{{"raw": raw(t, "newsletter.eml")}, {"raw": raw(t, "personal.eml")}}
		for i := range 2 {
			msgs = append(msgs, map[string]any{"raw": rawMail(fmt.Sprintf("Note %d", i))})
		}
		e.must(200, "POST", "/v1/"+mb+"/messages:import", key, map[string]any{"messages": msgs})
	}
	e.classified(bob, "bob", 4)
	e.classified(ada, "ada", 1)

	code, out := e.call("POST", "/v1/classify", ada, map[string]any{"subject": "Lunch?", "from": "grace@example.org", "body": "Are you free?"})
	msg, _ := out["message"].(string)
	if code != 429 || !strings.Contains(msg, "daily quota of 2 mails") || !strings.Contains(msg, "resets at") {
		t.Errorf("Classify past the quota: %d %v, want 429 naming the quota and its reset", code, out)
	}
	if !strings.Contains(fmt.Sprint(out["details"]), "QUOTA_EXCEEDED") {
		t.Errorf("Classify past the quota: details %v, want the reason QUOTA_EXCEEDED", out["details"])
	}

	// The three other mails are kept, waiting for the reset.
	time.Sleep(time.Second)
	list := e.must(200, "GET", "/v1/users/ada/messages?pageSize=100", ada, nil)
	msgs, _ := list["messages"].([]any)
	var waiting int
	for _, m := range msgs {
		mm := m.(map[string]any)
		if c, _ := mm["classification"].(map[string]any); c == nil || c["category"] == nil || c["category"] == "" {
			if mm["state"] == "MESSAGE_STATE_FAILED" {
				t.Errorf("a mail past the quota failed: %v", mm)
			}
			waiting++
		}
	}
	if len(msgs) != 4 || waiting != 3 {
		t.Errorf("ada has %d messages, %d unclassified; want 4 and 3 waiting", len(msgs), waiting)
	}
	dead := e.must(200, "GET", "/v1/users/ada/deadLetters", ada, nil)
	if d, _ := dead["deadLetters"].([]any); len(d) != 0 {
		t.Errorf("dead letters %v, want none: mail past the quota waits", d)
	}
	q = e.must(200, "GET", "/v1/users/me/quota", ada, nil)
	if q["mailsUsed"] != "2" || q["resetTime"] == nil || q["resetTime"] == "" {
		t.Errorf("ada's quota use = %v, want 2 mails used and the reset time", q)
	}
}

// rawMail is a small plain-text mail with subject, dated now, in base64.
func rawMail(subject string) string {
	m := fmt.Sprintf("From: Grace <grace@example.org>\r\nTo: ada@example.com\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s@example.org>\r\n\r\nHello.\r\n",
		subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "-"))
	return base64.StdEncoding.EncodeToString([]byte(m))
}
