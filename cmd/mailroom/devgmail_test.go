package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestDevGmailDeliver: the delivery door of mailroom dev --fake-gmail puts
// an RFC 822 mail into the fake account (a new historyId) and refuses what
// is not one.
func TestDevGmailDeliver(t *testing.T) {
	g, err := startDevGmail("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	base := "http://" + g.Addr
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(base+"/deliver", "message/rfc822", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	before := g.acct.HistoryID()
	code, out := post("From: a@example.com\r\nTo: " + devGmailAccount + "\r\nSubject: hi\r\n\r\nhello\r\n")
	if code != http.StatusOK || out["id"] == "" || out["to"] != devGmailAccount || g.acct.HistoryID() <= before || len(g.acct.IDs()) != 1 {
		t.Errorf("deliver = %d %v (history %d → %d, %d messages)", code, out, before, g.acct.HistoryID(), len(g.acct.IDs()))
	}
	if code, _ := post("not a mail at all"); code != http.StatusBadRequest {
		t.Errorf("deliver of a non-mail = %d, want 400", code)
	}
	if len(g.acct.IDs()) != 1 {
		t.Errorf("the refused body was delivered: %d messages", len(g.acct.IDs()))
	}
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st["account"] != devGmailAccount || st["watching"] != false || st["pushes"] != float64(0) {
		t.Errorf("status = %v, %v", st, err)
	}
}
