package e2e_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// TestBadInput sends what a careless or hostile client sends. Each request
// gets a precise status and message, nothing is lost, and the suite stays up.
func TestBadInput(t *testing.T) {
	e := start(t, options{})
	ada := e.user("ada")
	bob := e.user("bob")
	mb := e.mailbox("ada", ada, "inbox")
	e.mailbox("bob", bob, "inbox")
	imp := "/v1/" + mb + "/messages:import"

	// Just over the 25 MiB default limit per message: the gateway lets its
	// base64 through (one message of the limit plus framing), ingest
	// refuses it naming the field.
	big := bytes.Repeat([]byte("x"), 25<<20)
	bigMail := base64.StdEncoding.EncodeToString(append([]byte("From: a@example.com\r\nSubject: big\r\n\r\n"), big...))
	// 30 MB of mail: its body is over the gateway's cap, refused unread.
	hugeMail := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 30<<20))

	tests := []struct {
		name   string
		method string
		path   string
		key    string
		body   any
		status int
		msg    string // a part of the error message
	}{
		{"no credential", "GET", "/v1/users/me/messages", "", nil, 401, "credential"},
		{"wrong key", "GET", "/v1/users/me/messages", "mr_not_a_key", nil, 401, "API key"},
		{"undecodable base64", "POST", imp, ada, `{"messages":[{"raw":"%%% not base64 %%%"}]}`, 400, "raw"},
		{"not JSON", "POST", imp, ada, `{"messages": [`, 400, ""},
		{"wrong type", "POST", imp, ada, `{"messages": "mail"}`, 400, "messages"},
		{"empty message", "POST", imp, ada, map[string]any{"messages": []map[string]any{{"raw": ""}}}, 400, "messages[0].raw"},
		{"no messages", "POST", imp, ada, map[string]any{"messages": []any{}}, 400, "messages"},
		{"message over 25 MiB", "POST", imp, ada, `{"messages":[{"raw":"` + bigMail + `"}]}`, 413, "messages[0].raw"},
		{"30 MB message", "POST", imp, ada, `{"messages":[{"raw":"` + hugeMail + `"}]}`, 413, "request body exceeds the limit of"},
		{"unknown mailbox", "POST", "/v1/users/ada/mailboxes/nope/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": raw(t, "personal.eml")}}}, 404, "nope"},
		{"another user's mailbox", "POST", "/v1/users/bob/mailboxes/inbox/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": raw(t, "personal.eml")}}}, 403, ""},
		{"another user's messages", "GET", "/v1/users/bob/messages", ada, nil, 403, ""},
		{"bad resource id", "GET", "/v1/users/ADA!/messages", ada, nil, 400, "not a valid id"},
		{"unknown message", "GET", "/v1/users/ada/messages/0123456789abcdef", ada, nil, 404, ""},
		{"user may not create users", "POST", "/v1/users?userId=eve", ada, map[string]any{}, 403, "admin"},
		{"unknown provider", "POST", "/v1/users/ada/mailboxes", ada, map[string]any{"provider": "CARRIER_PIGEON"}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := e.call(tt.method, tt.path, tt.key, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, out)
			}
			msg, _ := out["message"].(string)
			if msg == "" {
				t.Errorf("error body has no message: %v", out)
			}
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not mention %q", msg, tt.msg)
			}
			if _, ok := out["code"]; !ok {
				t.Errorf("error body is not a google.rpc.Status: %v", out)
			}
			if strings.Contains(msg, "xxxxxxxxxx") || strings.Contains(msg, "Dinner") {
				t.Errorf("error message repeats mail content: %.100s", msg)
			}
		})
	}

	// The suite is still up and nothing was published for the refused batches:
	// a good import is the only mail that arrives.
	e.must(200, "GET", "/readyz", "", nil)
	e.must(200, "POST", imp, ada, map[string]any{"messages": []map[string]any{{"raw": raw(t, "personal.eml")}}})
	msgs := e.classified(ada, "ada", 1)
	stats := e.must(200, "GET", "/v1/users/ada/stats", ada, nil)
	if fmt.Sprint(stats["total"]) != "1" || len(msgs) != 1 {
		t.Errorf("stats = %v, want exactly the one good message", stats)
	}
}
