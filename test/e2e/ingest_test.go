package e2e_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
)

// TestGmailThroughTheGateway connects a Gmail mailbox (a fake Google) the
// way a browser does, through the gateway's OAuth callback, syncs it, watches
// the job's progress stream over REST, and finds the mail classified.
func TestGmailThroughTheGateway(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	acct.AddMessages(12)
	e := start(t, options{extra: map[string]string{
		"GOOGLE_OAUTH_CLIENT_ID":          fake.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":      fake.ClientSecret,
		"MAILROOM_PUBLIC_URL":             "http://mailroom.invalid",
		"MAILROOM_GOOGLE_AUTH_URL":        fake.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":       fake.TokenURL,
		"MAILROOM_GOOGLE_REVOKE_URL":      fake.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT":         fake.URL,
		"MAILROOM_GMAIL_QUOTA_PER_MINUTE": "1000000",
		"MAILROOM_SYNC_INTERVAL":          "0",
		// The fake's mail is dated 2024: keep it all.
		"MAILROOM_RETENTION_DAYS": "0",
	}})
	key := e.user("ada")

	mb := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", key, map[string]any{"provider": "GMAIL"})
	authURL, _ := mb["authorizationUrl"].(string)
	if mb["state"] != "MAILBOX_STATE_PENDING_AUTHORIZATION" || authURL == "" {
		t.Fatalf("created mailbox = %v", mb)
	}
	// The browser: the gateway's start binds it and sends it to Google,
	// whose consent page redirects to the callback, which is the gateway's
	// (the public URL names where it is published).
	if status := browse(t, e.url, authURL, nil); status != http.StatusOK {
		t.Fatalf("callback answered %d", status)
	}
	got := e.must(200, "GET", "/v1/users/ada/mailboxes/gmail", key, nil)
	if got["state"] != "MAILBOX_STATE_ACTIVE" || got["address"] != "ada@gmail.example" {
		t.Fatalf("mailbox after consent = %v", got)
	}

	job := e.must(200, "POST", "/v1/users/ada/mailboxes/gmail:sync", key, map[string]any{"maxMessages": 50})
	name, _ := job["name"].(string)
	last := e.watch(key, name)
	if last["state"] != "SYNC_JOB_STATE_SUCCEEDED" {
		t.Fatalf("job ended %v", last)
	}
	if p, _ := last["progress"].(map[string]any); p["published"] != "12" {
		t.Errorf("progress = %v, want 12 published", last["progress"])
	}
	e.classified(key, "ada", 12)

	// The classifier's verdicts count in the job.
	deadline := time.Now().Add(20 * time.Second)
	for {
		j := e.must(200, "GET", "/v1/"+name, key, nil)
		if p, _ := j["progress"].(map[string]any); p["classified"] == "12" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job progress = %v, want 12 classified", j["progress"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watch reads GET …:watch (newline-delimited JSON) to its end and returns
// the last sync job it carried.
func (e *env) watch(key, name string) map[string]any {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+"/v1/"+name+":watch", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("watch answered %d", resp.StatusCode)
	}
	var last map[string]any
	updates := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var msg struct {
			Result map[string]any `json:"result"`
			Error  map[string]any `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			e.t.Fatalf("watch line %q: %v", line, err)
		}
		if msg.Error != nil {
			e.t.Fatalf("watch error: %v", msg.Error)
		}
		last = msg.Result
		updates++
	}
	if updates == 0 {
		e.t.Fatal("watch sent nothing")
	}
	return last
}
