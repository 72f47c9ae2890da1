package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// startIMAP serves, on loopback, one IMAP account per user of the
// scenario, each INBOX holding that user's mails of the backfill (the
// first user's, the poison mail too), and returns its address and the
// accounts' password.
func startIMAP(t *testing.T, scenario string, users, mails int) (addr, password string) {
	t.Helper()
	password = "imap-" + scenario
	mem := imapmemserver.New()
	for u := range users {
		acct := imapmemserver.NewUser(userID(scenario, u), password)
		if err := acct.Create("INBOX", nil); err != nil {
			t.Fatal(err)
		}
		n := mails
		if u == 0 {
			n++ // the poison mail
		}
		for i := range n {
			poison := ""
			if i == mails {
				poison = poisonMarker
			}
			m := mail(scenario, u, i, poison)
			if _, err := acct.Append("INBOX", literal{bytes.NewReader(m)}, &imap.AppendOptions{Time: time.Now().Add(-time.Duration(i+1) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		mem.AddUser(acct)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String(), password
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// startSyncBackfill is the backfill through IMAP syncs: each user's
// mailbox is synced 25 mails at a time, again after a failed job (a
// replica killed under it), until a sync finds nothing new. imported
// counts what succeeded jobs published; once every mailbox is caught up
// it is every mail on the server, which must then all be classified.
func (h *harness) startSyncBackfill(ctx context.Context, t *testing.T, scenario string, users, mails int) *backfill {
	addr, password := startIMAP(t, scenario, users, mails)
	host, port, _ := net.SplitHostPort(addr)
	bf := &backfill{scenario: scenario, users: users, mails: mails, done: make(chan struct{})}
	for u := range users {
		uid := userID(scenario, u)
		if code, out, err := h.api(ctx, "POST", "/v1/users?userId="+uid, map[string]any{"displayName": "Chaos " + uid, "email": uid + "@example.com"}); err != nil || code != 200 {
			t.Fatalf("create user %s: %d %s %v", uid, code, out, err)
		}
		if code, out, err := h.api(ctx, "POST", "/v1/users/"+uid+"/mailboxes?mailboxId=inbox", map[string]any{"provider": "IMAP", "address": uid + "@example.com",
			"imap": map[string]any{"host": host, "port": port, "username": uid, "password": password, "security": "NONE"}}); err != nil || code != 200 {
			t.Fatalf("create the IMAP mailbox of %s: %d %s %v", uid, code, out, err)
		}
	}
	go func() {
		defer close(bf.done)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []string
		for u := range users {
			wg.Go(func() {
				if err := h.syncUntilCaughtUp(ctx, bf, userID(scenario, u)); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			bf.err = fmt.Errorf("syncs: %s", strings.Join(errs, "; "))
			return
		}
		// Caught up: every mail on the server was published, some
		// perhaps by a job that failed afterwards (which the count of
		// succeeded jobs misses).
		bf.imported.Store(int64(users*mails + 1))
	}()
	return bf
}

func (h *harness) syncUntilCaughtUp(ctx context.Context, bf *backfill, uid string) error {
	for round := 0; round < 40; round++ {
		code, out, err := h.api(ctx, "POST", "/v1/users/"+uid+"/mailboxes/inbox:sync", map[string]any{"maxMessages": 25})
		if err != nil {
			return err
		}
		if code != 200 {
			// One job at a time per mailbox: the last one (on a killed
			// replica) may still hold the mailbox until its lease ends.
			time.Sleep(time.Second)
			continue
		}
		var started struct{ Name string }
		_ = json.Unmarshal(out, &started)
		job, err := h.waitJob(ctx, started.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", uid, err)
		}
		if !strings.HasSuffix(job.State, "SUCCEEDED") {
			continue // a replica died under it: sync again, as the next scheduled sync would
		}
		published := job.Progress.Published
		bf.imported.Add(published)
		if published == 0 && job.Progress.Failed == 0 {
			return nil
		}
	}
	return fmt.Errorf("%s: not caught up after 40 syncs", uid)
}

type syncJob struct {
	Name     string
	State    string
	Error    string
	Progress struct {
		Listed, Fetched, Published, Skipped, Failed int64 `json:",string"`
	}
}

func (h *harness) waitJob(ctx context.Context, name string) (syncJob, error) {
	var job syncJob
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		code, out, err := h.api(ctx, "GET", "/v1/"+name, nil)
		if err != nil {
			return job, err
		}
		if code != 200 {
			continue
		}
		job = syncJob{}
		if err := json.Unmarshal(out, &job); err != nil {
			return job, fmt.Errorf("sync job %s: %w: %s", name, err, out)
		}
		if strings.HasSuffix(job.State, "SUCCEEDED") || strings.HasSuffix(job.State, "FAILED") {
			return job, nil
		}
	}
	return job, fmt.Errorf("sync job %s did not end within 3 minutes (last state %s)", name, job.State)
}
