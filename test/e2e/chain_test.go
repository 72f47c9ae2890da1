package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"mailroom.dev/platform/testenv"
)

// TestImportClassifyList is the walking skeleton: mail imported over REST
// goes ingest → JetStream → classifier → JetStream → store and is listed
// classified, on each database backend.
func TestImportClassifyList(t *testing.T) {
	for name, dbURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			e := start(t, options{databaseURL: dbURL(t)})
			chain(t, e)
		})
	}
}

// TestChainOnSharedNATS runs the chain on the NATS server on :4222 (Debian's
// 2.9, the oldest server mailroom supports), with streams of its own.
func TestChainOnSharedNATS(t *testing.T) {
	url, prefix := testenv.ExternalNATS(t)
	e := start(t, options{natsURL: url, natsPrefix: prefix})
	chain(t, e)
}

func chain(t *testing.T, e *env) {
	ada := e.user("ada")
	mb := e.mailbox("ada", ada, "inbox")

	out := e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{
		"messages": []map[string]any{{"raw": raw(t, "newsletter.eml")}, {"raw": raw(t, "personal.eml")}},
	})
	imported, _ := out["messages"].([]any)
	if len(imported) != 2 {
		t.Fatalf("import answered %v, want 2 messages", out)
	}

	msgs := e.classified(ada, "me", 2)
	got := map[string]string{}
	for _, m := range msgs {
		c := m["classification"].(map[string]any)
		got[fmt.Sprint(m["subject"])] = fmt.Sprint(c["category"])
		for _, field := range []string{"name", "subject", "from", "receivedTime"} {
			if m[field] == nil || m[field] == "" {
				t.Errorf("listed message lacks %s: %v", field, m)
			}
		}
		if conf, _ := c["confidence"].(float64); conf <= 0 || conf > 1 {
			t.Errorf("confidence = %v, want in (0, 1]", c["confidence"])
		}
		if !strings.HasPrefix(fmt.Sprint(m["name"]), "users/ada/messages/") {
			t.Errorf("name = %v", m["name"])
		}
	}
	if got["Gopher Weekly #412: generics in practice"] != "newsletters" {
		t.Errorf("newsletter classified %q, want newsletters (all: %v)", got["Gopher Weekly #412: generics in practice"], got)
	}
	if c := got["Dinner on Friday?"]; c == "" || c == "newsletters" {
		t.Errorf("personal mail classified %q", c)
	}
	// Newest first: the personal mail is a day younger.
	if msgs[0]["subject"] != "Dinner on Friday?" {
		t.Errorf("first listed = %v, want the newest mail first", msgs[0]["subject"])
	}

	// GetMessage by name, through users/me.
	name := fmt.Sprint(msgs[0]["name"])
	one := e.must(200, "GET", "/v1/"+strings.Replace(name, "users/ada/", "users/me/", 1), ada, nil)
	if one["name"] != name {
		t.Errorf("GetMessage name = %v, want %v", one["name"], name)
	}

	// Importing the same mail again changes nothing: no new message, no reclassification.
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": raw(t, "newsletter.eml")}}})
	stats := e.must(200, "GET", "/v1/users/ada/stats", ada, nil)
	if fmt.Sprint(stats["total"]) != "2" || fmt.Sprint(stats["classified"]) != "2" {
		t.Errorf("stats after re-import = %v, want total 2, classified 2", stats)
	}

	// Another user sees none of it.
	bob := e.user("bob")
	e.must(403, "GET", "/v1/users/ada/messages", bob, nil)
	list := e.must(200, "GET", "/v1/users/me/messages", bob, nil)
	if msgs, _ := list["messages"].([]any); len(msgs) != 0 {
		t.Errorf("bob lists %d messages, want 0", len(msgs))
	}
	e.must(403, "GET", "/v1/"+name, bob, nil)
}

// TestChainWithTheDeploymentsNATSUsers runs the chain with each service
// (and the gateway) connected to NATS as its own user, with the subject
// permissions of deploy/k8s, then deletes the user (revocations).
func TestChainWithTheDeploymentsNATSUsers(t *testing.T) {
	n := testenv.NATSWithDeployAuth(t, "../../deploy/k8s/components/nats/nats.yaml")
	extra := map[string]string{}
	for _, name := range []string{"auth", "ingest", "classifier", "store", "gateway"} {
		extra["NATS_URL_"+strings.ToUpper(name)] = n.URL(name)
	}
	e := start(t, options{natsURL: n.URL("store"), extra: extra})
	chain(t, e)
	e.must(200, "DELETE", "/v1/users/ada", e.admin, nil)
	for _, bad := range []string{"revocations are not watched", "ermissions", "not authorized"} {
		if strings.Contains(e.logs.String(), bad) {
			t.Errorf("the services' logs say %q", bad)
		}
	}
}
