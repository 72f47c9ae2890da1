package mailbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"mailroom.dev/platform/apierror"
)

// Gmail push notifications. The gateway verifies a Pub/Sub push and calls
// NotifyGmailPush with the address; each ACTIVE Gmail mailbox of that
// address gets an incremental sync. Pushes are coalesced: while a job of
// the mailbox is PENDING, the push needs nothing (the job reads the history
// when it runs); while one is RUNNING, the mailbox is marked, and one more
// sync starts when the running one ends, however many pushes came.

// AddressFinder finds the mailboxes of an address; the SQL repository
// implements it. (An interface of its own, so that the Repository, which
// other work extends, keeps its shape.)
type AddressFinder interface {
	MailboxesByAddress(ctx context.Context, kind Kind, address string) ([]Mailbox, error)
}

// pushState is the coalescing of pushes in this process.
type pushState struct {
	mu    sync.Mutex
	again map[string]Mailbox // runKey → a mailbox that wants one more sync
	last  time.Time          // when the last push arrived
}

func (s *Service) pushes() *pushState {
	s.pushOnce.Do(func() { s.push = &pushState{again: map[string]Mailbox{}} })
	return s.push
}

// NotifyGmailPush starts (or joins) an incremental sync of every ACTIVE
// Gmail mailbox of address and returns how many there are.
func (s *Service) NotifyGmailPush(ctx context.Context, address string) (int, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	if address == "" || len(address) > 320 {
		return 0, apierror.Invalid("email_address", "must be an email address")
	}
	f, ok := s.repo.(AddressFinder)
	if !ok || s.cfg.Providers[KindGmail] == nil {
		return 0, apierror.Preconditionf("Gmail is not configured on this server")
	}
	mbs, err := f.MailboxesByAddress(ctx, KindGmail, address)
	if err != nil {
		return 0, err
	}
	p := s.pushes()
	p.mu.Lock()
	p.last = time.Now()
	p.mu.Unlock()
	n := 0
	for _, mb := range mbs {
		if mb.State != StateActive {
			continue
		}
		n++
		s.pushSync(ctx, mb)
	}
	return n, nil
}

// pushSync starts a sync of mb, or marks it for one more after the running one.
func (s *Service) pushSync(ctx context.Context, mb Mailbox) {
	_, err := s.startJob(ctx, mb, "", DefaultSyncMessages)
	if err == nil {
		return
	}
	if e, ok := apierror.As(err); ok && e.Kind == apierror.Aborted {
		job, aerr := s.repo.ActiveSyncJob(ctx, mb.User, mb.ID)
		if aerr == nil && job.State == JobPending {
			return // the queued job will read the new history
		}
		p := s.pushes()
		p.mu.Lock()
		p.again[runKey(mb.User, mb.ID)] = mb
		p.mu.Unlock()
		return
	}
	s.cfg.Logger.WarnContext(ctx, "gmail push: sync not started", "mailbox", mb.Name(), "error", err.Error())
}

// RunPushes starts the syncs that pushes asked for while another ran, as
// soon as it has ended, until ctx ends.
func (s *Service) RunPushes(ctx context.Context) error {
	t := time.NewTicker(max(s.cfg.Poll/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p := s.pushes()
		p.mu.Lock()
		due := make([]Mailbox, 0, len(p.again))
		for k, mb := range p.again {
			due = append(due, mb)
			delete(p.again, k)
		}
		p.mu.Unlock()
		for _, mb := range due {
			if _, err := s.repo.ActiveSyncJob(ctx, mb.User, mb.ID); err == nil {
				p.mu.Lock()
				p.again[runKey(mb.User, mb.ID)] = mb // still running: later
				p.mu.Unlock()
				continue
			} else if !errors.Is(err, ErrNotFound) {
				continue
			}
			s.pushSync(ctx, mb)
		}
	}
}

// pushHealthy reports whether pushes have arrived recently: the scheduler
// then syncs Gmail mailboxes less often (PushSyncFactor times the interval).
func (s *Service) pushHealthy() bool {
	if s.cfg.PushSyncFactor <= 1 {
		return false
	}
	p := s.pushes()
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.last.IsZero() && time.Since(p.last) < PushHealthyWindow
}

// PushHealthyWindow is how recent a push must be for push to count as working.
const PushHealthyWindow = 24 * time.Hour
