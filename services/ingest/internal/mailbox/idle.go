package mailbox

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sync"
	"time"
)

// IMAP IDLE: for IMAP mailboxes whose server supports it, one replica
// holds an IDLE connection and syncs the mailbox, coalesced as pushes are,
// when the server announces new mail. Which replica is decided by leases
// (IdleLeases, a NATS key-value bucket): each mailbox's lease is held by
// one replica at a time, and each replica takes leases up to its fair
// share of the mailboxes (and never more than Config.MaxIdle). A
// connection that fails is re-established with back-off; a server without
// IDLE is left to the scheduled polling and asked again an hour later (the
// lease stays with the replica that asked).

// ErrNoIdle is what an Idler returns for a server without IDLE.
var ErrNoIdle = errors.New("mailbox: the server does not support IDLE")

// Idler holds IDLE on a mailbox (package imapsync).
type Idler interface {
	Idle(ctx context.Context, mb Mailbox, password string, reissue time.Duration, changed func()) error
}

// IdleLeases are the leases that spread IDLE across replicas (package
// idlelease). Leases last TTL unless renewed.
type IdleLeases interface {
	// ID is this replica's id; TTL how long a lease lasts unrenewed.
	ID() string
	TTL() time.Duration
	// Key is the lease key of a user's mailbox.
	Key(user, mailbox string) string
	// Beat says that this replica lives (and its cap); Leave that it stops.
	Beat(ctx context.Context) error
	Leave(ctx context.Context)
	// View returns the live replicas' caps by id, and the leased keys'
	// holders.
	View(ctx context.Context) (caps map[string]int, holders map[string]string, err error)
	// Acquire takes a lease (false: another replica holds it); Renew keeps
	// it (lost: it is not this replica's any more); Release gives it up.
	Acquire(ctx context.Context, key string) (bool, error)
	Renew(ctx context.Context, key string) (lost bool, err error)
	Release(ctx context.Context, key string)
}

// KindFinder lists the mailboxes of a kind; the SQL repository implements it.
type KindFinder interface {
	MailboxesByKind(ctx context.Context, kind Kind, state State, limit int) ([]Mailbox, error)
}

// noIdleRetry is how long a server that lacks IDLE is left to polling.
const noIdleRetry = time.Hour

// RunIdle keeps IDLE connections to this replica's share of the ACTIVE
// IMAP mailboxes until ctx ends, then releases their leases. Every TTL/3
// it renews its leases, gives up those it lost or could not renew (NATS
// did not answer within TTL/6: closed within TTL/2 of the last renewal,
// before the lease can expire and another replica take it), and takes or
// releases leases to hold its fair share.
func (s *Service) RunIdle(ctx context.Context) error {
	f, ok := s.repo.(KindFinder)
	if s.cfg.Idler == nil || s.cfg.MaxIdle <= 0 || s.cfg.Vault == nil || !ok {
		return nil
	}
	leases := s.cfg.IdleLeases
	if leases == nil {
		leases = newLocalLeases(s.cfg.MaxIdle, 3*max(s.cfg.Poll*10, time.Second))
	}
	self := leases.ID()
	type held struct {
		mb      Mailbox
		cancel  context.CancelFunc
		renewed time.Time
	}
	running := map[string]*held{} // by lease key; only this loop touches it
	var wg sync.WaitGroup
	defer func() {
		for _, h := range running {
			h.cancel()
		}
		wg.Wait() // each hold releases its lease as it ends
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		leases.Leave(lctx)
		cancel()
	}()
	drop := func(k, why string) {
		h := running[k]
		h.cancel()
		delete(running, k)
		s.cfg.Logger.InfoContext(ctx, "imap idle: lease given up", "mailbox", h.mb.Name(), "why", why)
	}
	hold := func(k string, mb Mailbox) {
		ictx, cancel := context.WithCancel(ctx)
		running[k] = &held{mb: mb, cancel: cancel, renewed: time.Now()}
		wg.Go(func() {
			defer func() {
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				leases.Release(rctx, k)
				rcancel()
			}()
			s.holdIdle(ictx, mb)
		})
	}
	ttl := leases.TTL()
	// Each call to NATS waits a sixth of the lease at most: a round whose
	// NATS does not answer still ends (and closes the IDLEs it could not
	// renew) within half a lease of their last renewal.
	op := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, max(ttl/6, 50*time.Millisecond))
	}
	round := func() {
		octx, cancel := op()
		unanswered := leases.Beat(octx)
		cancel()
		if unanswered != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "imap idle: heartbeat failed", "error", unanswered.Error())
		}
		for k, h := range running {
			if unanswered == nil { // NATS answers: renew
				octx, cancel := op()
				lost, err := leases.Renew(octx, k)
				cancel()
				if lost {
					drop(k, "lost")
					continue
				}
				if err == nil {
					h.renewed = time.Now()
					continue
				}
				unanswered = err // and not asked again this round
			}
			// Not renewed at this round: the next would come too late.
			if time.Since(h.renewed) >= ttl/3 {
				drop(k, "not renewed")
			}
		}
		if unanswered != nil {
			return
		}
		octx, cancel = op()
		caps, holders, err := leases.View(octx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.WarnContext(ctx, "imap idle: reading the leases failed", "error", err.Error())
			}
			return
		}
		caps[self] = s.cfg.MaxIdle
		capacity := 0
		for _, c := range caps {
			capacity += max(c, 0)
		}
		mbs, err := f.MailboxesByKind(ctx, KindIMAP, StateActive, min(capacity, 1_000_000))
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.WarnContext(ctx, "imap idle: listing mailboxes failed", "error", err.Error())
			}
			return
		}
		active := map[string]Mailbox{}
		for _, mb := range mbs {
			active[leases.Key(mb.User, mb.ID)] = mb
		}
		for k := range running { // deleted or no longer active
			if _, ok := active[k]; !ok {
				drop(k, "mailbox not active")
			}
		}
		target := fairShare(caps, self, len(mbs))
		if n := len(running) - target; n > 0 { // others have room: hand over those this replica wants least
			mine := make([]string, 0, len(running))
			for k := range running {
				mine = append(mine, k)
			}
			slices.SortFunc(mine, func(a, b string) int { return cmpScore(self, a, b) })
			for _, k := range mine[:n] {
				drop(k, "over fair share")
			}
		}
		if len(running) >= target {
			return
		}
		var free []string
		for k := range active {
			if _, ok := running[k]; !ok && holders[k] == "" {
				free = append(free, k)
			}
		}
		slices.SortFunc(free, func(a, b string) int { return cmpScore(self, b, a) }) // most wanted first
		for _, k := range free {
			if len(running) >= target || ctx.Err() != nil {
				break
			}
			octx, cancel := op()
			ok, err := leases.Acquire(octx, k)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					s.cfg.Logger.WarnContext(ctx, "imap idle: taking a lease failed", "error", err.Error())
				}
				return
			}
			if ok {
				hold(k, active[k])
			}
		}
	}
	t := time.NewTicker(max(ttl/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		round()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// fairShare is how many of total mailboxes the replica self holds when
// they are spread evenly across the live replicas, none above its cap:
// the water level at which the capped shares hold them all (rounded up),
// or self's cap when all the caps together hold fewer.
func fairShare(caps map[string]int, self string, total int) int {
	cs := make([]int, 0, len(caps))
	for _, c := range caps {
		cs = append(cs, max(c, 0))
	}
	slices.Sort(cs)
	mine := max(caps[self], 0)
	remaining := total
	for i, c := range cs {
		k := len(cs) - i
		if c*k >= remaining {
			level := (remaining + k - 1) / k
			return min(mine, level)
		}
		remaining -= c
	}
	return mine
}

// score is how much replica self wants lease key (rendezvous hashing: the
// replicas' preferences differ, so that they seldom race for one lease).
func score(self, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(self))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum64()
}

func cmpScore(self, a, b string) int {
	sa, sb := score(self, a), score(self, b)
	switch {
	case sa < sb:
		return -1
	case sa > sb:
		return 1
	}
	return 0
}

// localLeases are the leases of a process alone: every lease is its own.
type localLeases struct {
	cap int
	ttl time.Duration
	mu  sync.Mutex
	own map[string]bool
}

func newLocalLeases(cap int, ttl time.Duration) *localLeases {
	return &localLeases{cap: cap, ttl: ttl, own: map[string]bool{}}
}

func (l *localLeases) ID() string                      { return "local" }
func (l *localLeases) TTL() time.Duration              { return l.ttl }
func (l *localLeases) Key(user, mailbox string) string { return runKey(user, mailbox) }
func (l *localLeases) Beat(context.Context) error      { return nil }
func (l *localLeases) Leave(context.Context)           {}
func (l *localLeases) View(context.Context) (map[string]int, map[string]string, error) {
	return map[string]int{"local": l.cap}, map[string]string{}, nil
}
func (l *localLeases) Acquire(_ context.Context, key string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.own[key] = true
	return true, nil
}
func (l *localLeases) Renew(_ context.Context, key string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.own[key], nil
}
func (l *localLeases) Release(_ context.Context, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.own, key)
}

// holdIdle idles on mb, reconnecting with back-off, until ctx ends; a
// server without IDLE is asked again after noIdleRetry.
func (s *Service) holdIdle(ctx context.Context, mb Mailbox) {
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
		if ctx.Err() != nil {
			s.cfg.Logger.InfoContext(ctx, "imap idle: released", "mailbox", mb.Name())
			return
		}
		wait := backoff
		if errors.Is(err, ErrNoIdle) {
			s.cfg.Logger.InfoContext(ctx, "imap idle: the server does not support IDLE; polling", "mailbox", mb.Name(), "again_in", noIdleRetry.String())
			wait = noIdleRetry
		} else if err != nil {
			s.cfg.Logger.InfoContext(ctx, "imap idle ended; reconnecting", "mailbox", mb.Name(), "error", err.Error(), "in", backoff.String())
			backoff = min(2*backoff, 5*time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
