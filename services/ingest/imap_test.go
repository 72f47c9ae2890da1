package ingest_test

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"google.golang.org/grpc/codes"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
)

// imapServer is go-imap's in-memory server on loopback, over implicit TLS
// with httptest's certificate (valid for 127.0.0.1).
type imapServer struct {
	user   *imapmemserver.User
	addr   *net.TCPAddr
	caFile string
}

func startIMAP(t *testing.T) *imapServer {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cert := hs.TLS.Certificates[0]
	hs.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	mem := imapmemserver.New()
	user := imapmemserver.NewUser("ada", "s3cret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &imapServer{user: user, addr: lis.Addr().(*net.TCPAddr), caFile: caFile}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// appendMails appends mails numbered from..to-1 to INBOX, each with a
// fixed internal date, as a server keeps them.
func (s *imapServer) appendMails(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		raw := fmt.Sprintf("From: Sender <s%d@example.com>\r\nTo: ada@example.com\r\nSubject: IMAP %d\r\n"+
			"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <imap-%d@example.com>\r\n\r\nBody %d.\r\n", i, i, i, i)
		_, err := s.user.Append("INBOX", literal{bytes.NewReader([]byte(raw))}, &imap.AppendOptions{
			Time: time.Date(2025, 6, 2, 10, 0, i, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestIMAP syncs an IMAP mailbox over TLS in capped steps, incrementally,
// and through a UIDVALIDITY change, with every message published once.
func TestIMAP(t *testing.T) {
	srv := startIMAP(t)
	srv.appendMails(t, 0, 30)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		c.IMAPAllowHosts = []string{"127.0.0.1"}
		c.IMAPCAFile = srv.caFile
	})
	ada := h.as(t, "ada", "user")
	settings := func(password string) *ingestv1.Mailbox {
		return &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMAP, Address: "ada@example.com", Imap: &ingestv1.ImapSettings{
			Host: "127.0.0.1", Port: int32(srv.addr.Port), Username: "ada", Password: password, Security: ingestv1.ImapSecurity_IMAP_SECURITY_TLS}}
	}

	_, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "imap", Mailbox: settings("wrong")})
	wantStatus(t, err, codes.InvalidArgument, "mailbox.imap: the IMAP server refused the login of ada: check the username and the password")
	created, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "imap", Mailbox: settings("s3cret")})
	if err != nil {
		t.Fatalf("CreateMailbox IMAP: %v", err)
	}
	mb := created.GetMailbox()
	if mb.GetState() != ingestv1.MailboxState_MAILBOX_STATE_ACTIVE || mb.GetImap().GetPassword() != "" || mb.GetImap().GetHost() != "127.0.0.1" {
		t.Errorf("created = %v", mb)
	}
	if secret, ok := h.auth.Secret(mb.GetName() + "/credential"); !ok || string(secret) != "s3cret" {
		t.Errorf("vault holds %q, %v", secret, ok)
	}

	// The backfill in two capped steps, newest first.
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 20)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 20)
	evs := h.events(t)
	if len(evs) != 20 || evs[0].e.GetContent().GetSubject() != "IMAP 29" && evs[0].e.GetContent().GetSubject() != "IMAP 28" {
		t.Fatalf("first step: %d events, first %q", len(evs), evs[0].e.GetContent().GetSubject())
	}
	for _, e := range evs {
		if e.e.GetLane() != mailv1.Lane_LANE_BACKFILL {
			t.Errorf("backfill event on %v", e.e.GetLane())
		}
	}
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 20)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 10)

	// New mail: incremental, on the live lane.
	srv.appendMails(t, 30, 35)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 20)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 5)
	if j.GetProgress().GetListed() != 5 {
		t.Errorf("the incremental sync listed %d messages, want the 5 new", j.GetProgress().GetListed())
	}
	evs = h.events(t)
	if len(evs) != 35 {
		t.Fatalf("%d events, want 35", len(evs))
	}
	for _, e := range evs[30:] {
		if e.e.GetLane() != mailv1.Lane_LANE_LIVE {
			t.Errorf("incremental event on %v", e.e.GetLane())
		}
	}

	// The server renumbers INBOX (new UIDVALIDITY) and 2 mails arrive.
	if err := srv.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv.appendMails(t, 0, 37)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 2)
	if j.GetProgress().GetSkipped() != 35 {
		t.Errorf("resync skipped %d, want the 35 known", j.GetProgress().GetSkipped())
	}
	evs = h.events(t)
	if len(evs) != 37 {
		t.Fatalf("%d events after the renumbering, want 37", len(evs))
	}
	checkUnique(t, evs)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 0)
	if j.GetProgress().GetListed() != 0 {
		t.Errorf("a sync with nothing new listed %d", j.GetProgress().GetListed())
	}
}

// TestIMAPRefusals checks the SSRF guard and the plain-text refusal.
func TestIMAPRefusals(t *testing.T) {
	srv := startIMAP(t)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), nil)
	ada := h.as(t, "ada", "user")
	create := func(host string, port int32, sec ingestv1.ImapSecurity) error {
		_, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", Mailbox: &ingestv1.Mailbox{
			Provider: ingestv1.Provider_PROVIDER_IMAP, Imap: &ingestv1.ImapSettings{Host: host, Port: port, Username: "ada", Password: "s3cret", Security: sec}}})
		return err
	}
	for host, why := range map[string]string{
		"127.0.0.1":       "loopback",
		"169.254.169.254": "link-local",
		"10.1.2.3":        "private",
		"::1":             "loopback",
		"0.0.0.0":         "unspecified",
		"localhost":       "loopback",
		"::ffff:10.0.0.1": "private",
	} {
		err := create(host, int32(srv.addr.Port), ingestv1.ImapSecurity_IMAP_SECURITY_TLS)
		if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "MAILROOM_IMAP_ALLOW_HOSTS") {
			t.Errorf("host %s: %v, want InvalidArgument saying %s", host, err, why)
		}
	}
	err := create("93.184.215.14", 143, ingestv1.ImapSecurity_IMAP_SECURITY_NONE)
	if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "NONE sends the password in the clear") {
		t.Errorf("NONE to a host not allow-listed: %v", err)
	}
	if _, ok := h.auth.Secret("users/ada/mailboxes/x/credential"); ok {
		t.Error("a refused mailbox left a credential")
	}
	list, err := h.client.ListMailboxes(ada, &ingestv1.ListMailboxesRequest{Parent: "users/ada"})
	if err != nil || len(list.GetMailboxes()) != 0 {
		t.Errorf("refused mailboxes were created: %v, %v", list.GetMailboxes(), err)
	}
}

// TestScheduler checks that active mailboxes sync without being asked.
func TestScheduler(t *testing.T) {
	srv := startIMAP(t)
	srv.appendMails(t, 0, 3)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		c.IMAPAllowHosts = []string{"127.0.0.0/8"}
		c.IMAPCAFile = srv.caFile
		c.SyncInterval = 300 * time.Millisecond
	})
	ada := h.as(t, "ada", "user")
	created, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", Mailbox: &ingestv1.Mailbox{
		Provider: ingestv1.Provider_PROVIDER_IMAP, Imap: &ingestv1.ImapSettings{Host: "127.0.0.1", Port: int32(srv.addr.Port), Username: "ada", Password: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		jobs, err := h.client.ListSyncJobs(ada, &ingestv1.ListSyncJobsRequest{Parent: "users/ada"})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs.GetSyncJobs()) >= 2 && len(h.events(t)) == 3 {
			for _, j := range jobs.GetSyncJobs() {
				if j.GetMailbox() != created.GetMailbox().GetName() {
					t.Errorf("job of %s", j.GetMailbox())
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduler made %d jobs and %d events", len(jobs.GetSyncJobs()), len(h.events(t)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appendTo appends mails numbered from..to-1 to folder.
func (s *imapServer) appendTo(t *testing.T, folder string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		raw := fmt.Sprintf("From: Sender <s%d@example.com>\r\nTo: ada@example.com\r\nSubject: %s %d\r\n"+
			"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <%s-%d@example.com>\r\n\r\nBody %d.\r\n", i, folder, i, folder, i, i)
		_, err := s.user.Append(folder, literal{bytes.NewReader([]byte(raw))}, &imap.AppendOptions{
			Time: time.Date(2025, 6, 2, 10, 0, i, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestIMAPFolders syncs INBOX and a second folder chosen on the mailbox,
// each with its own UIDVALIDITY and last UID: in capped steps across both,
// then incrementally, then through a renumbering of one folder alone. A
// folder the server does not have is refused at creation.
func TestIMAPFolders(t *testing.T) {
	srv := startIMAP(t)
	if err := srv.user.Create("Archive", nil); err != nil {
		t.Fatal(err)
	}
	srv.appendMails(t, 0, 10)
	srv.appendTo(t, "Archive", 0, 15)
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		c.IMAPAllowHosts = []string{"127.0.0.1"}
		c.IMAPCAFile = srv.caFile
	})
	ada := h.as(t, "ada", "user")
	settings := func(folders ...string) *ingestv1.Mailbox {
		return &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMAP, Address: "ada@example.com", Imap: &ingestv1.ImapSettings{
			Host: "127.0.0.1", Port: int32(srv.addr.Port), Username: "ada", Password: "s3cret", Security: ingestv1.ImapSecurity_IMAP_SECURITY_TLS,
			Folders: folders}}
	}
	_, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "imap", Mailbox: settings("INBOX", "Nowhere")})
	wantStatus(t, err, codes.InvalidArgument, `mailbox.imap.folders[1]: the IMAP server has no folder "Nowhere" it would open`)
	created, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "imap", Mailbox: settings("inbox", "Archive", "Archive")})
	if err != nil {
		t.Fatalf("CreateMailbox: %v", err)
	}
	mb := created.GetMailbox()
	if got := mb.GetImap().GetFolders(); len(got) != 2 || got[0] != "INBOX" || got[1] != "Archive" {
		t.Errorf("folders = %q, want INBOX and Archive", got)
	}

	// 25 mails in two folders, 20 at a time: the cap spans the folders.
	j := syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 20)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 20)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 20)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 5)
	evs := h.events(t)
	checkUnique(t, evs)
	archived := 0
	for _, e := range evs {
		if strings.HasPrefix(e.e.GetContent().GetSubject(), "Archive ") {
			archived++
		}
	}
	if len(evs) != 25 || archived != 15 {
		t.Fatalf("%d events, %d from Archive; want 25 and 15", len(evs), archived)
	}

	// New mail in Archive only: incremental, on the live lane.
	srv.appendTo(t, "Archive", 15, 18)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 20)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 3)
	if j.GetProgress().GetListed() != 3 {
		t.Errorf("the incremental sync listed %d, want the 3 new", j.GetProgress().GetListed())
	}

	// Archive is renumbered (new UIDVALIDITY) with one more mail; INBOX
	// keeps its cursor.
	if err := srv.user.Delete("Archive"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("Archive", nil); err != nil {
		t.Fatal(err)
	}
	srv.appendTo(t, "Archive", 0, 19)
	j = syncAndWait(t, h, mb.GetName(), ingestv1.SyncMode_SYNC_MODE_UNSPECIFIED, 100)
	wantProgress(t, j, ingestv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 1)
	if j.GetProgress().GetListed() != 19 || j.GetProgress().GetSkipped() != 18 {
		t.Errorf("resync of Archive listed %d, skipped %d; want 19 and 18 (INBOX listed nothing)", j.GetProgress().GetListed(), j.GetProgress().GetSkipped())
	}
	evs = h.events(t)
	if len(evs) != 29 {
		t.Errorf("%d events, want 29", len(evs))
	}
	checkUnique(t, evs)
}
