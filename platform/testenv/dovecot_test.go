package testenv_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
)

// TestDovecot starts a private Dovecot and speaks IMAP to it: the user
// logs in with its password (not with another), appends a mail to INBOX
// and finds it there, and the server offers IDLE.
func TestDovecot(t *testing.T) {
	d := testenv.StartDovecot(t, "ada", "s3cret")
	c, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	read := func() string {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v\n%s", err, d.Log())
		}
		return line
	}
	// cmd sends a tagged command and returns its untagged lines and status.
	cmd := func(tag, line string) (untagged []string, status string) {
		fmt.Fprintf(c, "%s %s\r\n", tag, line)
		for {
			l := read()
			if strings.HasPrefix(l, tag+" ") {
				return untagged, strings.TrimSpace(strings.TrimPrefix(l, tag+" "))
			}
			untagged = append(untagged, l)
		}
	}
	if g := read(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	if _, st := cmd("a1", `LOGIN ada wrong`); !strings.HasPrefix(st, "NO") {
		t.Fatalf("a wrong password: %q", st)
	}
	if _, st := cmd("a2", `LOGIN ada s3cret`); !strings.HasPrefix(st, "OK") {
		t.Fatalf("login: %q\n%s", st, d.Log())
	}
	caps, _ := cmd("a3", "CAPABILITY")
	if !strings.Contains(strings.Join(caps, ""), " IDLE") {
		t.Errorf("capabilities %q lack IDLE", caps)
	}
	msg := "Subject: hi\r\n\r\nhello\r\n"
	fmt.Fprintf(c, "a4 APPEND INBOX {%d}\r\n", len(msg))
	if l := read(); !strings.HasPrefix(l, "+") {
		t.Fatalf("append: %q", l)
	}
	fmt.Fprintf(c, "%s\r\n", msg)
	for l := read(); !strings.HasPrefix(l, "a4 "); l = read() {
	}
	sel, st := cmd("a5", "SELECT INBOX")
	if !strings.HasPrefix(st, "OK") || !strings.Contains(strings.Join(sel, ""), "* 1 EXISTS") {
		t.Fatalf("select: %q %q\n%s", sel, st, d.Log())
	}
}
