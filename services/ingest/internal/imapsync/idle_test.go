package imapsync_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailroom.dev/services/ingest/internal/imapsync"
	"mailroom.dev/services/ingest/internal/mailbox"
)

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// idleServer is go-imap's in-memory server on loopback, in plain text, with
// or without IDLE.
func idleServer(t *testing.T, withIdle bool) (*imapmemserver.User, mailbox.IMAPSettings) {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("ada", "hunter2")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	if withIdle {
		caps[imap.CapIdle] = struct{}{}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	return u, mailbox.IMAPSettings{Host: host, Port: p, Username: "ada", Security: mailbox.IMAPNone}
}

func newIMAP(t *testing.T) *imapsync.IMAP {
	g, err := imapsync.NewGuard([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return imapsync.New(imapsync.Config{Guard: g, CommandTimeout: 10 * time.Second})
}

func TestIdleAnnouncesNewMail(t *testing.T) {
	_, s := idleServer(t, true)
	m := newIMAP(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := make(chan struct{}, 10)
	done := make(chan error, 1)
	mb := mailbox.Mailbox{User: "ada", ID: "work", Kind: mailbox.KindIMAP, IMAP: &s}
	// go-imap's server answers "+ idling" before it listens for changes, so
	// a mail appended in between is only told at the NOOP before the next
	// IDLE: re-issue often enough that the test never waits long for it.
	go func() { done <- m.Idle(ctx, mb, "hunter2", 50*time.Millisecond, func() { calls <- struct{}{} }) }()
	select {
	case <-calls: // the first, for what came before the IDLE
	case err := <-done:
		t.Fatalf("Idle ended: %v", err)
	}
	for i := range 3 {
		raw := []byte("From: a@example.com\r\nSubject: new " + strconv.Itoa(i) + "\r\n\r\nhello\r\n")
		deliver(t, s, raw)
		select {
		case <-calls:
		case err := <-done:
			t.Fatalf("Idle ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("no call after new mail %d", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Idle after cancel: %v", err)
	}
}

func TestIdleReissued(t *testing.T) {
	_, s := idleServer(t, true)
	m := newIMAP(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := make(chan struct{}, 10)
	done := make(chan error, 1)
	mb := mailbox.Mailbox{User: "ada", ID: "work", Kind: mailbox.KindIMAP, IMAP: &s}
	// An IDLE re-issued every few milliseconds still hears of new mail,
	// even of mail that arrives between two IDLEs.
	go func() { done <- m.Idle(ctx, mb, "hunter2", 20*time.Millisecond, func() { calls <- struct{}{} }) }()
	<-calls
	time.Sleep(50 * time.Millisecond) // several re-issues
	deliver(t, s, []byte("Subject: x\r\n\r\nx\r\n"))
	select {
	case <-calls:
	case err := <-done:
		t.Fatalf("Idle ended: %v", err)
	case <-ctx.Done():
		t.Fatal("no call after new mail")
	}
	cancel()
	<-done
}

// deliver appends raw to INBOX through a session of its own, as a mail
// server's delivery agent does.
func deliver(t *testing.T, s mailbox.IMAPSettings, raw []byte) {
	t.Helper()
	c, err := imapclient.DialInsecure(net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("ada", "hunter2").Wait(); err != nil {
		t.Fatal(err)
	}
	cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: time.Now()})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	_ = c.Logout().Wait()
}
