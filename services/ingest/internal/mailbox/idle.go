package mailbox

import (
	"context"
	"errors"
	"sync"
	"time"
)

// IMAP IDLE: for IMAP mailboxes whose server supports it, this process
// holds an IDLE connection (at most Config.MaxIdle of them) and syncs the
// mailbox, coalesced as pushes are, when the server announces new mail.
// A connection that fails is re-established with back-off; a server
// without IDLE is left to the scheduled polling and asked again an hour
// later. Replicas share nothing here: each holds up to MaxIdle connections
// (spreading them through leases is not done yet).

// ErrNoIdle is what an Idler returns for a server without IDLE.
var ErrNoIdle = errors.New("mailbox: the server does not support IDLE")

// Idler holds IDLE on a mailbox (package imapsync).
type Idler interface {
	Idle(ctx context.Context, mb Mailbox, password string, reissue time.Duration, changed func()) error
}

// KindFinder lists the mailboxes of a kind; the SQL repository implements it.
type KindFinder interface {
	MailboxesByKind(ctx context.Context, kind Kind, state State, limit int) ([]Mailbox, error)
}

// noIdleRetry is how long a server that lacks IDLE is left to polling.
const noIdleRetry = time.Hour

// RunIdle keeps IDLE connections to the ACTIVE IMAP mailboxes, up to
// Config.MaxIdle, until ctx ends.
func (s *Service) RunIdle(ctx context.Context) error {
	f, ok := s.repo.(KindFinder)
	if s.cfg.Idler == nil || s.cfg.MaxIdle <= 0 || s.cfg.Vault == nil || !ok {
		return nil
	}
	type held struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var mu sync.Mutex
	running := map[string]held{}
	noIdle := map[string]time.Time{}
	var wg sync.WaitGroup
	defer func() {
		mu.Lock()
		for _, h := range running {
			h.cancel()
		}
		mu.Unlock()
		wg.Wait()
	}()
	refresh := func() {
		mbs, err := f.MailboxesByKind(ctx, KindIMAP, StateActive, s.cfg.MaxIdle*2)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.WarnContext(ctx, "imap idle: listing mailboxes failed", "error", err.Error())
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		active := map[string]bool{}
		for _, mb := range mbs {
			active[runKey(mb.User, mb.ID)] = true
		}
		for k, h := range running { // deleted or no longer active
			if !active[k] {
				h.cancel()
				delete(running, k)
			}
		}
		for _, mb := range mbs {
			k := runKey(mb.User, mb.ID)
			if _, ok := running[k]; ok || time.Now().Before(noIdle[k]) || len(running) >= s.cfg.MaxIdle {
				continue
			}
			ictx, cancel := context.WithCancel(ctx)
			h := held{cancel: cancel, done: make(chan struct{})}
			running[k] = h
			wg.Go(func() {
				defer close(h.done)
				err := s.holdIdle(ictx, mb)
				mu.Lock()
				defer mu.Unlock()
				if errors.Is(err, ErrNoIdle) {
					noIdle[k] = time.Now().Add(noIdleRetry)
				}
				if cur, ok := running[k]; ok && cur.done == h.done {
					delete(running, k)
				}
			})
		}
	}
	t := time.NewTicker(max(s.cfg.Poll*10, time.Second))
	defer t.Stop()
	for {
		refresh()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// holdIdle idles on mb, reconnecting with back-off, until ctx ends or the
// server turns out not to support IDLE.
func (s *Service) holdIdle(ctx context.Context, mb Mailbox) error {
	s.cfg.Logger.InfoContext(ctx, "imap idle: holding", "mailbox", mb.Name())
	backoff := time.Second
	for {
		secret, err := s.cfg.Vault.GetCredential(ctx, mb)
		if err == nil {
			start := time.Now()
			// The opening call (for mail that came before the IDLE began)
			// syncs too: nothing between the last sync and the IDLE is left
			// to the scheduler.
			err = s.cfg.Idler.Idle(ctx, mb, string(secret), s.cfg.IdleReissue, func() { s.pushSync(ctx, mb) })
			if time.Since(start) > time.Minute {
				backoff = time.Second // it worked for a while
			}
		}
		if ctx.Err() != nil || errors.Is(err, ErrNoIdle) {
			s.cfg.Logger.InfoContext(ctx, "imap idle: released", "mailbox", mb.Name(), "no_idle", errors.Is(err, ErrNoIdle))
			return err
		}
		if err != nil {
			s.cfg.Logger.InfoContext(ctx, "imap idle ended; reconnecting", "mailbox", mb.Name(), "error", err.Error(), "in", backoff.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
}
