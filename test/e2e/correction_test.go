package e2e_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// senderMail is a mail from one sender, different each time.
func senderMail(from string, i int) string {
	m := fmt.Sprintf("From: %s\r\nTo: Ada Lovelace <ada@example.com>\r\n"+
		"Subject: Notes %d\r\nDate: %s\r\nMessage-ID: <correction-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Some notes, number %d.\r\n",
		from, i, time.Now().Add(-time.Duration(i)*time.Minute).Format(time.RFC1123Z), i, i)
	return base64.StdEncoding.EncodeToString([]byte(m))
}

// TestCorrectionThroughTheGateway corrects a message's category with PATCH
// through the gateway: the correction is stored (source USER), bad
// corrections get precise errors, and the sender is learned at once — the
// next mail from it is classified without the model (source LEARNED).
func TestCorrectionThroughTheGateway(t *testing.T) {
	const openaiKey = "sk-correction-test-key-0000000000"
	fake, fakeURL, stop, err := fakeopenai.Start(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{openaiKey: {RPM: 60000, TPM: 10_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	e := start(t, options{extra: map[string]string{
		"OPENAI_API_KEY":  openaiKey,
		"OPENAI_BASE_URL": fakeURL + "/v1",
		"OPENAI_RPM":      "60000",
		"OPENAI_TPM":      "10000000",
	}})
	ada := e.user("ada")
	bob := e.user("bob")
	mb := e.mailbox("ada", ada, "inbox")
	const from = "Lab Notes <notes@lab.example>"
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": senderMail(from, 1)}}})
	msgs := e.classified(ada, "ada", 1)
	name := msgs[0]["name"].(string)
	before := msgs[0]["classification"].(map[string]any)
	if before["source"] != "CLASSIFICATION_SOURCE_LLM" {
		t.Fatalf("first verdict = %v, want the model's", before)
	}
	want := "work"
	if before["category"] == "work" {
		want = "personal"
	}

	// Bad corrections, each with a precise error.
	for _, tc := range []struct {
		path, body, wantMsg string
		code                int
	}{
		{"/v1/" + name, `{"classification":{"category":"vacation"}}`, `category "vacation" is not in the user's taxonomy`, 400},
		{"/v1/" + name + "?updateMask=subject", `{"subject":"x"}`, `only classification.category may be changed (a correction); "subject" may not`, 400},
		{"/v1/" + name, `{"classification":{"category":""}}`, "is required: the category the message belongs in", 400},
		{"/v1/users/ada/messages/nope", `{"classification":{"category":"work"}}`, "does not exist", 404},
	} {
		code, body := e.call("PATCH", tc.path, ada, tc.body)
		if code != tc.code || !strings.Contains(fmt.Sprint(body["message"]), tc.wantMsg) {
			t.Errorf("PATCH %s %s = %d %v; want %d saying %q", tc.path, tc.body, code, body, tc.code, tc.wantMsg)
		}
	}
	// Bob cannot correct Ada's mail.
	if code, _ := e.call("PATCH", "/v1/"+name, bob, map[string]any{"classification": map[string]any{"category": want}}); code != 403 && code != 404 {
		t.Errorf("bob's PATCH of ada's message = %d, want 403 or 404", code)
	}

	got := e.must(200, "PATCH", "/v1/"+name, ada, map[string]any{"classification": map[string]any{"category": want}})
	c := got["classification"].(map[string]any)
	if c["category"] != want || c["source"] != "CLASSIFICATION_SOURCE_USER" {
		t.Fatalf("PATCH answered %v; want %s from the user", c, want)
	}
	stored := e.must(200, "GET", "/v1/"+name, ada, nil)["classification"].(map[string]any)
	if stored["category"] != want || stored["source"] != "CLASSIFICATION_SOURCE_USER" {
		t.Fatalf("stored classification = %v", stored)
	}

	// The sender is learned at once: the next mail from it costs no model call.
	calls := fake.Stats().Keys[openaiKey].Requests
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": senderMail(from, 2)}}})
	var next map[string]any
	waitFor(t, 20*time.Second, "the second mail", func() bool {
		for _, m := range e.classified(ada, "ada", 2) {
			if m["name"] != name {
				next = m["classification"].(map[string]any)
				return true
			}
		}
		return false
	})
	if next["category"] != want || next["source"] != "CLASSIFICATION_SOURCE_LEARNED" {
		t.Errorf("next mail from the corrected sender = %v; want %s, learned", next, want)
	}
	if n := fake.Stats().Keys[openaiKey].Requests; n != calls {
		t.Errorf("model calls went from %d to %d; want none for a learned sender", calls, n)
	}
	u := e.must(200, "GET", "/v1/users/ada/usage", ada, nil)
	if u["userClassifications"] != "1" || u["learnedClassifications"] != "1" {
		t.Errorf("usage = %v; want one correction and one learned classification", u)
	}
	// The spend is split by model: the one model call, on gpt-4o-mini.
	models, _ := u["models"].([]any)
	if len(models) != 1 || models[0].(map[string]any)["model"] != "gpt-4o-mini" || models[0].(map[string]any)["requests"] != "1" ||
		models[0].(map[string]any)["costMicros"] != u["costMicros"] {
		t.Errorf("usage by model = %v (total cost %v); want gpt-4o-mini with the one request and the whole cost", models, u["costMicros"])
	}
}
