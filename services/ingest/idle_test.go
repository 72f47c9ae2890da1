package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/nats-io/nats.go/jetstream"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
	"mailroom.dev/services/ingest/internal/idlelease"
)

// idleServer is go-imap's in-memory server (plain IMAP on loopback) with
// one user per mailbox, counting for each user the open connections that
// have issued IDLE: what a mail server sees of ingest's IDLE.
type idleServer struct {
	addr  *net.TCPAddr
	users map[string]*imapmemserver.User
	mu    sync.Mutex
	idle  map[string]int
}

type countingSession struct {
	imapserver.SessionIMAP4rev2
	s     *idleServer
	user  string
	idled bool
}

func (c *countingSession) Login(user, password string) error {
	err := c.SessionIMAP4rev2.Login(user, password)
	if err == nil {
		c.user = user
	}
	return err
}

func (c *countingSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if !c.idled {
		c.idled = true
		c.s.mu.Lock()
		c.s.idle[c.user]++
		c.s.mu.Unlock()
	}
	return c.SessionIMAP4rev2.Idle(w, stop)
}

func (c *countingSession) Close() error {
	if c.idled {
		c.s.mu.Lock()
		c.s.idle[c.user]--
		c.s.mu.Unlock()
	}
	return c.SessionIMAP4rev2.Close()
}

func startIdleServer(t *testing.T, users []string) *idleServer {
	t.Helper()
	s := &idleServer{users: map[string]*imapmemserver.User{}, idle: map[string]int{}}
	mem := imapmemserver.New()
	for _, u := range users {
		user := imapmemserver.NewUser(u, "pw-"+u)
		if err := user.Create("INBOX", nil); err != nil {
			t.Fatal(err)
		}
		mem.AddUser(user)
		s.users[u] = user
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &countingSession{SessionIMAP4rev2: mem.NewSession().(imapserver.SessionIMAP4rev2), s: s}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.addr = lis.Addr().(*net.TCPAddr)
	return s
}

// idling returns each user's count of IDLE connections.
func (s *idleServer) idling() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for u := range s.users {
		out[u] = s.idle[u]
	}
	return out
}

func (s *idleServer) deliver(t *testing.T, user, subject string) {
	t.Helper()
	raw := fmt.Sprintf("From: News <news@idle.example>\r\nTo: %s@example.com\r\nSubject: %s\r\nDate: %s\r\n"+
		"Message-ID: <%s@idle.example>\r\n\r\nHello.\r\n", user, subject, time.Now().Format(time.RFC1123Z), strings.ReplaceAll(subject, " ", "-"))
	if _, err := s.users[user].Append("INBOX", literal{bytes.NewReader([]byte(raw))}, &imap.AppendOptions{Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// holders reads the lease bucket: each mailbox lease's holder.
func holders(t *testing.T, h *harness) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := h.js.KeyValue(ctx, h.topo.BucketName(idlelease.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if !strings.HasPrefix(k, "lease.") {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err == nil {
			out[strings.TrimPrefix(k, "lease.")] = string(e.Value())
		} else if err != jetstream.ErrKeyNotFound {
			t.Fatal(err)
		}
	}
	return out
}

// TestIMAPIdleLeases runs two ingest replicas (one database, one NATS)
// against an IMAP server with six mailboxes: each mailbox is idled on by
// exactly one replica, three each; new mail on each is synced through
// IDLE alone (no scheduler, no sync asked); when one replica stops, the
// other takes its mailboxes over and their new mail is synced too. On an
// embedded NATS server, and on the shared one on :4222 (NATS 2.9).
func TestIMAPIdleLeases(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testIMAPIdleLeases(t, newWorld(t)) })
	t.Run("shared", func(t *testing.T) {
		url, prefix := testenv.ExternalNATS(t)
		w := newWorld(t)
		w.natsURL, w.topo = url, eventbus.Topology{Prefix: prefix, Replicas: 1}
		testIMAPIdleLeases(t, w)
	})
}

func testIMAPIdleLeases(t *testing.T, w *world) {
	const n = 6
	var users []string
	for i := range n {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	srv := startIdleServer(t, users)
	db := testenv.PostgresURL(t)
	const lease = 1500 * time.Millisecond
	replica := func(id string) *harness {
		return w.start(t, db, func(c *ingest.Config) {
			c.IMAPAllowHosts = []string{"127.0.0.1"}
			c.IMAPIdleMax, c.IMAPIdleLease, c.ReplicaID = 100, lease, id
			c.IMAPIdleReissue = 200 * time.Millisecond // go-imap's server can miss a mail at an IDLE's start; the next NOOP tells it
		})
	}
	a := replica("a")
	ada := a.as(t, "ada", "user")
	keys := map[string]string{} // lease key → IMAP user
	for _, u := range users {
		if _, err := a.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: u, Mailbox: &ingestv1.Mailbox{
			Provider: ingestv1.Provider_PROVIDER_IMAP, Address: u + "@example.com", Imap: &ingestv1.ImapSettings{
				Host: "127.0.0.1", Port: int32(srv.addr.Port), Username: u, Password: "pw-" + u, Security: ingestv1.ImapSecurity_IMAP_SECURITY_NONE}}}); err != nil {
			t.Fatalf("CreateMailbox %s: %v", u, err)
		}
		keys[idlelease.Key("ada", u)] = u
	}
	b := replica("b")

	// settled waits until the leases are spread as want says (holder →
	// count) and the server sees exactly one IDLE connection per mailbox,
	// and then checks that it stays so for a while.
	settled := func(want map[string]int) time.Duration {
		t.Helper()
		start := time.Now()
		var last string
		for time.Since(start) < time.Minute {
			hs, idle := holders(t, b), srv.idling()
			per := map[string]int{}
			for k, h := range hs {
				if _, ok := keys[k]; ok {
					per[h]++
				}
			}
			ok := fmt.Sprint(per) == fmt.Sprint(want)
			for _, c := range idle {
				ok = ok && c == 1
			}
			last = fmt.Sprintf("leases per replica %v, IDLE connections per mailbox %v", per, idle)
			if ok {
				took := time.Since(start)
				for range 10 {
					time.Sleep(100 * time.Millisecond)
					for u, c := range srv.idling() {
						if c != 1 {
							t.Fatalf("mailbox %s has %d IDLE connections after the spread settled", u, c)
						}
					}
				}
				return took
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the IDLE spread did not settle at %v within a minute: %s", want, last)
		return 0
	}
	settled(map[string]int{"a": n / 2, "b": n / 2})

	subjects := func() []string {
		var out []string
		for _, e := range a.events(t) {
			out = append(out, e.e.GetContent().GetSubject())
		}
		sort.Strings(out)
		return out
	}
	synced := func(want []string) {
		t.Helper()
		sort.Strings(want)
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if got := subjects(); fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("synced %q, want %q", subjects(), want)
	}
	var want []string
	for _, u := range users {
		srv.deliver(t, u, "first to "+u)
		want = append(want, "first to "+u)
	}
	synced(want)

	// a stops (and releases its leases as it drains): b idles on all six.
	stopped := time.Now()
	a.stop()
	settled(map[string]int{"b": n})
	t.Logf("after a replica began to stop, the other held IDLE on all %d mailboxes within %s (lease %s)", n, time.Since(stopped).Round(time.Millisecond), lease)
	for _, u := range users {
		srv.deliver(t, u, "second to "+u)
		want = append(want, "second to "+u)
	}
	synced(want)
}

// TestIMAPIdleTakeover has a replica die holding half the leases: a ghost
// that wrote its heartbeat and three leases into the bucket and never
// renews them. The live replica leaves the ghost's mailboxes alone while
// its leases last and idles on all six once they expire, within 4/3 of
// the lease time after the ghost's last write.
func TestIMAPIdleTakeover(t *testing.T) {
	const n = 6
	var users []string
	for i := range n {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	srv := startIdleServer(t, users)
	w := newWorld(t)
	const lease = 3 * time.Second
	h := w.start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		c.IMAPAllowHosts = []string{"127.0.0.1"}
		c.IMAPIdleMax, c.IMAPIdleLease, c.ReplicaID = 100, lease, "live"
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := h.js.KeyValue(ctx, h.topo.BucketName(idlelease.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "replica.ghost", []byte("100")); err != nil {
		t.Fatal(err)
	}
	ghost := map[string]bool{}
	for _, u := range users[:n/2] {
		if _, err := kv.Create(ctx, "lease."+idlelease.Key("ada", u), []byte("ghost")); err != nil {
			t.Fatal(err)
		}
		ghost[u] = true
	}
	lastWrite := time.Now()
	ada := h.as(t, "ada", "user")
	for _, u := range users {
		if _, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: u, Mailbox: &ingestv1.Mailbox{
			Provider: ingestv1.Provider_PROVIDER_IMAP, Address: u + "@example.com", Imap: &ingestv1.ImapSettings{
				Host: "127.0.0.1", Port: int32(srv.addr.Port), Username: u, Password: "pw-" + u, Security: ingestv1.ImapSecurity_IMAP_SECURITY_NONE}}}); err != nil {
			t.Fatalf("CreateMailbox %s: %v", u, err)
		}
	}
	var took time.Duration
	sawHalf := false
	for took == 0 && time.Since(lastWrite) < time.Minute {
		idle := srv.idling()
		all, half := true, true
		for u, c := range idle {
			if c > 1 {
				t.Fatalf("mailbox %s has %d IDLE connections", u, c)
			}
			all = all && c == 1
			half = half && c == map[bool]int{true: 0, false: 1}[ghost[u]]
		}
		if half && time.Since(lastWrite) < lease {
			sawHalf = true // the ghost's leases still hold
		}
		if all {
			took = time.Since(lastWrite)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took == 0 {
		t.Fatalf("the ghost's mailboxes were not taken over within a minute: %v", srv.idling())
	}
	if !sawHalf {
		t.Error("the live replica never held its half alone while the ghost's leases lasted")
	}
	if took < lease {
		t.Errorf("the ghost's mailboxes were taken after %s, before its leases (%s) expired", took, lease)
	}
	t.Logf("a dead replica's mailboxes were idled on by the other %s after its last write (lease %s, bound 4/3 of it plus the connection)", took.Round(time.Millisecond), lease)
	if took > 4*lease {
		t.Errorf("takeover after %s: far over 4/3 of the lease %s", took, lease)
	}
}

// TestIMAPIdleWithoutNATS takes NATS away from a replica holding IDLE: it
// cannot renew its leases, so it closes its IDLE connections before the
// leases could expire and another replica take them. When NATS is back
// (without the bucket, kept in memory) it makes the bucket again, takes
// the leases, and idles again: new mail is synced by IDLE.
func TestIMAPIdleWithoutNATS(t *testing.T) {
	users := []string{"u0", "u1"}
	srv := startIdleServer(t, users)
	n := testenv.StartNATS(t)
	w := newWorld(t)
	w.natsURL = n.URL
	const lease = 4 * time.Second
	h := w.start(t, testenv.SQLiteURL(t), func(c *ingest.Config) {
		c.IMAPAllowHosts = []string{"127.0.0.1"}
		c.IMAPIdleMax, c.IMAPIdleLease = 100, lease
		c.IMAPIdleReissue = 200 * time.Millisecond // go-imap's server can miss a mail at an IDLE's start; the next NOOP tells it
	})
	ada := h.as(t, "ada", "user")
	for _, u := range users {
		if _, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: u, Mailbox: &ingestv1.Mailbox{
			Provider: ingestv1.Provider_PROVIDER_IMAP, Address: u + "@example.com", Imap: &ingestv1.ImapSettings{
				Host: "127.0.0.1", Port: int32(srv.addr.Port), Username: u, Password: "pw-" + u, Security: ingestv1.ImapSecurity_IMAP_SECURITY_NONE}}}); err != nil {
			t.Fatalf("CreateMailbox %s: %v", u, err)
		}
	}
	idleAll := func(want int) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < time.Minute {
			ok := true
			for _, c := range srv.idling() {
				ok = ok && c == want
			}
			if ok {
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("IDLE connections per mailbox %v, want %d each", srv.idling(), want)
		return 0
	}
	idleAll(1)

	n.Stop()
	closed := idleAll(0)
	t.Logf("without NATS, the replica closed its IDLE connections after %s (lease %s)", closed.Round(time.Millisecond), lease)
	if closed >= lease {
		t.Errorf("IDLE closed %s after NATS went, not before its leases (%s) could expire", closed, lease)
	}
	n.Start()
	idleAll(1)
	for _, u := range users {
		srv.deliver(t, u, "back to "+u)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got := 0
		for _, e := range h.events(t) {
			if strings.HasPrefix(e.e.GetContent().GetSubject(), "back to ") {
				got++
			}
		}
		if got == len(users) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d mails synced by IDLE after NATS came back", got, len(users))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
