package e2e_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestIMAPIdle connects an IMAP mailbox on go-imap's server (which
// supports IDLE) with no scheduled syncs: after the first sync, mail
// appended to INBOX by another session is announced to ingest's IDLE and
// synced and classified without anyone asking.
func TestIMAPIdle(t *testing.T) {
	addr := startIMAP(t, "ada", "hunter2")
	e := start(t, options{extra: map[string]string{
		"MAILROOM_IMAP_ALLOW_HOSTS":  "127.0.0.1",
		"MAILROOM_SYNC_INTERVAL":     "0",
		"MAILROOM_IMAP_IDLE_REISSUE": "200ms", // go-imap's server can miss a mail at an IDLE's start; the next NOOP tells it
	}})
	key := e.user("ada")
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=work", key, map[string]any{
		"provider": "IMAP", "address": "ada@example.com",
		"imap": map[string]any{"host": host, "port": p, "username": "ada", "password": "hunter2", "security": "NONE"},
	})
	job := e.must(200, "POST", "/v1/users/ada/mailboxes/work:sync", key, map[string]any{})
	e.watch(key, job["name"].(string))

	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("ada", "hunter2").Wait(); err != nil {
		t.Fatal(err)
	}
	raw := "From: \"Idle Weekly\" <news@idle.example>\r\nTo: ada@example.com\r\nSubject: Idle Weekly #1\r\nDate: " +
		time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <iw1@idle.example>\r\nList-Unsubscribe: <https://idle.example/u>\r\n\r\nHello.\r\n"
	// Give ingest's IDLE a moment to be there; were it not, the mail would
	// wait for a sync that never comes (scheduled syncs are off).
	deadline := time.Now().Add(time.Minute)
	appended := false
	for time.Now().Before(deadline) {
		if !appended {
			time.Sleep(500 * time.Millisecond)
			cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: time.Now()})
			if _, err := cmd.Write([]byte(raw)); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			appended = true
		}
		out := e.must(200, "GET", "/v1/users/ada/messages", key, nil)
		for _, m := range out["messages"].([]any) {
			mm := m.(map[string]any)
			if strings.Contains(mm["subject"].(string), "Idle Weekly #1") && mm["state"] == "MESSAGE_STATE_CLASSIFIED" {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("mail appended over IMAP was not synced by IDLE within a minute")
}
