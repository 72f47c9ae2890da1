package e2e_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
)

// TestGmailPush connects a Gmail mailbox with push on: its first sync
// makes Gmail watch it, and from then on mail delivered at the fake Gmail
// is pushed (a Pub/Sub envelope with an OIDC token signed by the fake's
// "Google" key) to the gateway's /push/gmail, which starts an incremental
// sync; no scheduled sync runs. The mail reaches a messages:watch client and
// a webhook classified. Pushes with a bad token are refused, pushes during
// a sync are coalesced, and deleting the mailbox stops the watch.
func TestGmailPush(t *testing.T) {
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	const (
		audience = "https://mailroom.example/push/gmail"
		pusher   = "gmail-push@mailroom-test.iam.gserviceaccount.com"
		topic    = "projects/mailroom-test/topics/gmail"
	)
	e := start(t, options{extra: map[string]string{
		"GOOGLE_OAUTH_CLIENT_ID":              fake.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":          fake.ClientSecret,
		"MAILROOM_PUBLIC_URL":                 "http://mailroom.invalid",
		"MAILROOM_GOOGLE_AUTH_URL":            fake.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":           fake.TokenURL,
		"MAILROOM_GOOGLE_REVOKE_URL":          fake.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT":             fake.URL,
		"MAILROOM_GMAIL_QUOTA_PER_MINUTE":     "1000000",
		"MAILROOM_SYNC_INTERVAL":              "0",
		"MAILROOM_GMAIL_PUBSUB_TOPIC":         topic,
		"MAILROOM_GMAIL_PUSH_AUDIENCE":        audience,
		"MAILROOM_GMAIL_PUSH_SERVICE_ACCOUNT": pusher,
		"MAILROOM_GOOGLE_JWKS_URL":            fake.JWKSURL,
		"MAILROOM_WEBHOOK_ALLOW_HOSTS":        "127.0.0.1",
	}})
	fake.SetPush(e.url+"/push/gmail", audience, pusher, topic)
	key := e.user("ada")

	// Connect, as a browser does, and sync once: the sync starts the watch.
	mb := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", key, map[string]any{"provider": "GMAIL"})
	// As a browser does: the gateway binds the consent to it with a cookie.
	if code := browse(t, e.url, mb["authorizationUrl"].(string), nil); code != http.StatusOK {
		t.Fatalf("consent: the callback answered %d", code)
	}
	job := e.must(200, "POST", "/v1/users/ada/mailboxes/gmail:sync", key, map[string]any{})
	if last := e.watch(key, job["name"].(string)); last["state"] != "SYNC_JOB_STATE_SUCCEEDED" {
		t.Fatalf("first sync ended %v", last)
	}
	if !fake.Watching("ada@gmail.example") {
		t.Fatal("Gmail does not watch the mailbox after its first sync")
	}

	// Pushes without a valid token are refused.
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"another audience", fake.Token("https://elsewhere.example/", pusher, time.Now()), http.StatusForbidden},
		{"another service account", fake.Token(audience, "someone@else.iam.gserviceaccount.com", time.Now()), http.StatusForbidden},
		{"expired", fake.Token(audience, pusher, time.Now().Add(-3*time.Hour)), http.StatusForbidden},
		{"another key", fakegmail.New().Token(audience, pusher, time.Now()), http.StatusForbidden},
	} {
		req, _ := http.NewRequest("POST", e.url+"/push/gmail", bytes.NewReader(fakegmail.Envelope("ada@gmail.example", 1)))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("push with %s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}

	// Mail delivered at Gmail reaches a watching client and a webhook.
	hook := newHookReceiver(t)
	created := e.must(200, "POST", "/v1/users/ada/webhooks", key, map[string]any{"url": hook.url()})
	hook.secret = created["secret"].(string)
	events := openWatch(t, e.url, key, "", false)
	if ev := <-events; !ev.Heartbeat || ev.Cursor == "" {
		t.Fatalf("first watch event = %+v", ev)
	}
	jobsBefore := len(e.must(200, "GET", "/v1/users/ada/syncJobs", key, nil)["syncJobs"].([]any))
	// The history is slow to answer, so that the pushes of five mails
	// arrive while a sync runs: they make one more sync, not five.
	fake.SetLatency(fakegmail.EndpointHistory, 300*time.Millisecond)
	for i := range 5 {
		acct.Add([]byte(fmt.Sprintf("From: \"Push Weekly\" <news@push.example>\r\nTo: ada@gmail.example\r\nSubject: Push Weekly #%d\r\n"+
			"Date: %s\r\nMessage-ID: <pw%d@push.example>\r\nList-Unsubscribe: <https://push.example/u>\r\n\r\nIssue %d.\r\n",
			i, time.Now().Format(time.RFC1123Z), i, i)))
	}
	classified := map[string]bool{}
	deadline := time.After(time.Minute)
	for len(classified) < 5 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the watch ended")
			}
			if s, _ := ev.Message["subject"].(string); strings.HasPrefix(s, "Push Weekly") && ev.Message["state"] == "MESSAGE_STATE_CLASSIFIED" {
				classified[s] = true
			}
		case <-deadline:
			t.Fatalf("pushed mail not classified within a minute: %v (pushes accepted: %d)", classified, fake.Pushes())
		}
	}
	hook.waitFor(t, 5)
	jobs := len(e.must(200, "GET", "/v1/users/ada/syncJobs", key, nil)["syncJobs"].([]any)) - jobsBefore
	if jobs < 1 || jobs > 3 {
		t.Errorf("five pushes during a sync made %d sync jobs, want 1 to 3", jobs)
	}
	t.Logf("5 mails, %d pushes accepted, %d sync jobs", fake.Pushes(), jobs)

	// Deleting the mailbox stops the watch.
	e.must(200, "DELETE", "/v1/users/ada/mailboxes/gmail", key, nil)
	if fake.Watching("ada@gmail.example") {
		t.Error("Gmail still watches the deleted mailbox")
	}
}
