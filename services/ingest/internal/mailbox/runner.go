package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/services/ingest/internal/mailparse"
)

// SyncRun is one running sync job as a Provider sees it: the mailbox, the
// job, the mailbox's secret, and the calls that deliver messages and count
// progress. Its methods are safe for concurrent use.
type SyncRun struct {
	Mailbox Mailbox
	Job     SyncJob
	// Secret is the mailbox's credential from the vault.
	Secret []byte
	// Logger logs for the job; never log mail content with it.
	Logger *slog.Logger

	svc                                       *Service
	listed, fetched, published, skipped, fail atomic.Int64

	// Records wait here and are written in batches (one transaction
	// each): one per message would serialize every sync on its mailbox's
	// row and a commit.
	mu         sync.Mutex
	pending    []Record
	pendingIDs map[string]bool
	flushMu    sync.Mutex
}

// recordBatch is how many records are written at once.
const recordBatch = 200

func newRun(svc *Service, mb Mailbox, job SyncJob, secret []byte) *SyncRun {
	r := &SyncRun{Mailbox: mb, Job: job, Secret: secret, svc: svc, pendingIDs: map[string]bool{},
		Logger: svc.cfg.Logger.With("mailbox", mb.Name(), "sync_job", job.Name())}
	p := job.Progress
	r.listed.Store(p.Listed)
	r.fetched.Store(p.Fetched)
	r.published.Store(p.Published)
	r.skipped.Store(p.Skipped)
	r.fail.Store(p.Failed)
	return r
}

// Remaining is how many more messages the job may fetch: its cap less what
// it fetched already (a job taken over from a stopped process keeps its count).
func (r *SyncRun) Remaining() int {
	return max(0, r.Job.MaxMessages-int(r.fetched.Load()))
}

// AddListed counts n message ids listed by the provider.
func (r *SyncRun) AddListed(n int) { r.listed.Add(int64(n)) }

// AddSkipped counts n messages not fetched because the mailbox has them.
func (r *SyncRun) AddSkipped(n int) {
	r.skipped.Add(int64(n))
	if r.svc != nil {
		r.svc.metrics.message(context.Background(), r.Mailbox.Kind, ResultSkipped, n)
	}
}

// Known returns which of ids the mailbox has handed over already.
func (r *SyncRun) Known(ctx context.Context, ids []string) (map[string]bool, error) {
	known := map[string]bool{}
	r.mu.Lock()
	for _, id := range ids {
		if r.pendingIDs[id] {
			known[id] = true
		}
	}
	r.mu.Unlock()
	// Bounded chunks keep every backend under its bound-parameter limit.
	for len(ids) > 0 {
		n := min(len(ids), 500)
		k, err := r.svc.repo.KnownMessages(ctx, r.Mailbox.User, r.Mailbox.ID, ids[:n])
		if err != nil {
			return nil, fmt.Errorf("known messages: %w", err)
		}
		for id := range k {
			known[id] = true
		}
		ids = ids[n:]
	}
	return known, nil
}

// Deliver parses a fetched message, publishes it on lane and records it.
// A message that can never be published (over the size limit, not mail) is
// recorded as failed and counted, and is no error. An error means the
// message was not handed over: the provider must stop and not advance its
// cursor past it.
func (r *SyncRun) Deliver(ctx context.Context, f Fetched, lane Lane) error {
	r.fetched.Add(1)
	now := r.svc.now()
	rec := Record{
		User: r.Mailbox.User, MailboxID: r.Mailbox.ID, ProviderMessageID: f.ProviderMessageID,
		MessageID: MessageID(r.Mailbox.Name(), f.ProviderMessageID), SyncJobID: r.Job.ID,
		Status: RecordPublished, CreateTime: now,
	}
	var content *mailparse.Message
	var reason error
	if len(f.Raw) > r.svc.cfg.MaxMessageBytes {
		reason = r.svc.tooLarge("message", len(f.Raw))
	} else {
		content, reason = mailparse.Parse(f.Raw, mailparse.Options{Now: now, Limits: r.svc.cfg.Limits})
	}
	if reason != nil {
		rec.Status = RecordFailed
		if err := r.record(ctx, rec); err != nil {
			return err
		}
		r.fail.Add(1)
		r.svc.metrics.message(ctx, r.Mailbox.Kind, ResultFailed, 1)
		msg := reason.Error()
		if e, ok := apierror.As(reason); ok {
			msg = e.Message
		}
		r.Logger.WarnContext(ctx, "message not published", "provider_message_id", f.ProviderMessageID, "size_bytes", len(f.Raw), "reason", msg)
		return nil
	}
	content.Date = receivedTime(content, f.ReceivedTime, now)
	if maxAge := r.svc.cfg.MaxMessageAge; maxAge > 0 && content.Date.Before(now.Add(-maxAge)) {
		rec.Status = RecordExpired
		if err := r.record(ctx, rec); err != nil {
			return err
		}
		r.skipped.Add(1)
		r.svc.metrics.message(ctx, r.Mailbox.Kind, ResultExpired, 1)
		return nil
	}
	if err := r.svc.checkDeleted(ctx, r.Mailbox); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	_, err := r.svc.pub.PublishReceived(ctx, Received{
		User: r.Mailbox.User, MailboxID: r.Mailbox.ID, MessageID: rec.MessageID,
		ProviderMessageID: f.ProviderMessageID, Lane: lane, Content: content,
		IngestTime: now, SyncJobID: r.Job.ID,
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	r.published.Add(1)
	r.svc.metrics.message(ctx, r.Mailbox.Kind, ResultPublished, 1)
	// Published but not yet recorded: should the process stop before the
	// record is written, the next sync publishes it again, and JetStream
	// (within its window) and the store de-duplicate.
	return r.record(ctx, rec)
}

// record queues rec and writes the queue when it is full.
func (r *SyncRun) record(ctx context.Context, rec Record) error {
	r.mu.Lock()
	r.pending = append(r.pending, rec)
	r.pendingIDs[rec.ProviderMessageID] = true
	full := len(r.pending) >= recordBatch
	r.mu.Unlock()
	if full {
		return r.Flush(ctx)
	}
	return nil
}

// Flush writes the queued records. Providers need not call it: the runner
// does before it stores the cursor.
func (r *SyncRun) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	recs := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	if _, err := r.svc.repo.RecordMessages(ctx, recs); err != nil {
		r.mu.Lock()
		r.pending = append(recs, r.pending...)
		r.mu.Unlock()
		return fmt.Errorf("record messages: %w", err)
	}
	r.mu.Lock()
	for _, rec := range recs {
		delete(r.pendingIDs, rec.ProviderMessageID)
	}
	r.mu.Unlock()
	return nil
}

// DeliverTooLarge records a message the provider did not download because
// its size is over the limit: counted as fetched and failed, and never
// tried again.
func (r *SyncRun) DeliverTooLarge(ctx context.Context, providerMessageID string, size int64) error {
	r.fetched.Add(1)
	err := r.record(ctx, Record{
		User: r.Mailbox.User, MailboxID: r.Mailbox.ID, ProviderMessageID: providerMessageID,
		MessageID: MessageID(r.Mailbox.Name(), providerMessageID), SyncJobID: r.Job.ID,
		Status: RecordFailed, CreateTime: r.svc.now(),
	})
	if err != nil {
		return err
	}
	r.fail.Add(1)
	r.svc.metrics.message(ctx, r.Mailbox.Kind, ResultFailed, 1)
	r.Logger.WarnContext(ctx, "message not published: over the size limit", "provider_message_id", providerMessageID,
		"size_bytes", size, "limit_bytes", r.svc.cfg.MaxMessageBytes)
	return nil
}

// Progress is what the run has done so far.
func (r *SyncRun) Progress() Progress {
	return Progress{
		Listed: r.listed.Load(), Fetched: r.fetched.Load(), Published: r.published.Load(),
		Skipped: r.skipped.Load(), Failed: r.fail.Load(),
	}
}

// poke wakes the runner to look for jobs now.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// RunJobs runs sync jobs until ctx is done: those this process creates at
// once, and every Poll those other replicas created or gave up. At most
// MaxJobs run at a time. When ctx is done, running jobs stop and are handed
// back (PENDING, their progress kept) for the next process to continue.
func (s *Service) RunJobs(ctx context.Context) error {
	sem := make(chan struct{}, s.cfg.MaxJobs)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			now := s.now()
			job, ok, err := s.repo.ClaimSyncJob(ctx, s.cfg.Owner, now, now.Add(s.cfg.Lease))
			if err != nil || !ok {
				<-sem
				if err != nil && ctx.Err() == nil {
					s.cfg.Logger.WarnContext(ctx, "claiming sync jobs failed", "error", err.Error())
				}
				break
			}
			wg.Go(func() {
				defer func() { <-sem }()
				s.runJob(ctx, job)
			})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

func runKey(user, mailboxID string) string { return user + "/" + mailboxID }

func (s *Service) cancelRunning(user, mailboxID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel, ok := s.running[runKey(user, mailboxID)]; ok {
		cancel()
	}
}

// errLost is the cause of a job's cancellation when its row went away
// (mailbox deleted) or another process took it over.
var errLost = errors.New("mailbox: sync job lost")

// runJob runs a claimed job to its end, renewing its lease meanwhile.
func (s *Service) runJob(parent context.Context, job SyncJob) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	key := runKey(job.User, job.MailboxID)
	s.mu.Lock()
	s.running[key] = func() { cancel(errLost) }
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, key)
		s.mu.Unlock()
	}()
	logger := s.cfg.Logger.With("sync_job", job.Name())
	// Writes after the run still happen when the process is stopping.
	bg := context.WithoutCancel(parent)

	kind := Kind("")
	finish := func(state JobState, msg string, p Progress) {
		if state.Ended() {
			s.metrics.jobEnded(bg, kind, state)
		}
		job.State, job.Error = state, msg
		job.Progress.Listed, job.Progress.Fetched, job.Progress.Published = p.Listed, p.Fetched, p.Published
		job.Progress.Skipped, job.Progress.Failed = p.Skipped, p.Failed
		now := s.now()
		job.UpdateTime = now
		owner := job.Owner
		if state.Ended() {
			job.EndTime = now
		} else {
			job.Owner, job.LeaseUntil = "", time.Time{} // handed back
		}
		if err := s.repo.UpdateSyncJob(bg, job, owner); err != nil && !errors.Is(err, ErrNotFound) {
			logger.ErrorContext(bg, "sync job not updated", "state", string(state), "error", err.Error())
		}
	}

	mb, err := s.repo.GetMailbox(ctx, job.User, job.MailboxID)
	kind = mb.Kind
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			finish(JobFailed, "the mailbox could not be read; the next sync tries again", job.Progress)
		}
		return
	}
	if mb.State != StateActive {
		finish(JobFailed, fmt.Sprintf("the mailbox is %s: %s", mb.State, mb.StateReason), job.Progress)
		return
	}
	prov := s.cfg.Providers[mb.Kind]
	if prov == nil || s.cfg.Vault == nil {
		finish(JobFailed, fmt.Sprintf("%s is not configured on this server", mb.Kind), job.Progress)
		return
	}
	secret, err := s.cfg.Vault.GetCredential(ctx, mb)
	if errors.Is(err, ErrNotFound) {
		s.disconnectRun(bg, mb, "the mailbox's credential is missing from the vault; delete the mailbox and connect it again")
		finish(JobFailed, "the mailbox's credential is missing from the vault", job.Progress)
		return
	}
	if err != nil {
		if parent.Err() != nil {
			finish(JobPending, "", job.Progress)
			return
		}
		logger.WarnContext(ctx, "vault unavailable", "error", err.Error())
		finish(JobFailed, "the credential vault is unavailable; the next sync tries again", job.Progress)
		return
	}

	s.metrics.running(ctx, mb.Kind, 1)
	defer s.metrics.running(bg, mb.Kind, -1)
	run := newRun(s, mb, job, secret)
	done := make(chan struct{})
	var hb sync.WaitGroup
	hb.Go(func() { s.heartbeat(ctx, cancel, &job, run, done) })
	started := time.Now()
	cursor, err := prov.Sync(ctx, run)
	close(done)
	hb.Wait()
	p := run.Progress()
	if context.Cause(ctx) != errLost {
		// What was published is recorded whatever happened next, so that
		// the next sync skips it.
		if ferr := run.Flush(bg); ferr != nil {
			logger.ErrorContext(bg, "records not written", "error", ferr.Error())
			if err == nil {
				err = apierror.Unavailablef(ferr, "the records of the published messages could not be written")
			}
		}
	}

	var disc *DisconnectError
	switch {
	case context.Cause(ctx) == errLost:
		logger.InfoContext(bg, "sync job stopped: its mailbox was deleted or another process took it")
		return
	case parent.Err() != nil:
		logger.InfoContext(bg, "sync job handed back at shutdown", "fetched", p.Fetched)
		finish(JobPending, "", p)
		return
	case err == nil:
		if rerr := s.repo.RecordSync(bg, mb.User, mb.ID, cursor, s.now()); rerr != nil {
			logger.ErrorContext(bg, "sync cursor not recorded", "error", rerr.Error())
			finish(JobFailed, "the sync's position could not be recorded; the next sync repeats its work", p)
			return
		}
		logger.InfoContext(bg, "sync job succeeded", "listed", p.Listed, "fetched", p.Fetched, "published", p.Published,
			"skipped", p.Skipped, "failed", p.Failed, "duration_ms", time.Since(started).Milliseconds())
		finish(JobSucceeded, "", p)
	case errors.As(err, &disc):
		logger.WarnContext(bg, "mailbox disconnected", "reason", disc.Reason)
		s.disconnectRun(bg, mb, disc.Reason)
		_ = s.repo.RecordSync(bg, mb.User, mb.ID, mb.Cursor, s.now())
		finish(JobFailed, disc.Reason, p)
	default:
		msg := "the sync failed; the next sync continues where this one stopped"
		if e, ok := apierror.As(err); ok {
			msg = e.Message + "; the next sync continues where this one stopped"
		}
		logger.WarnContext(bg, "sync job failed", "error", err.Error())
		_ = s.repo.RecordSync(bg, mb.User, mb.ID, mb.Cursor, s.now())
		finish(JobFailed, msg, p)
	}
}

// disconnectRun marks mb DISCONNECTED with reason and deletes its dead
// credential, so that no sync tries it again.
func (s *Service) disconnectRun(ctx context.Context, mb Mailbox, reason string) {
	if err := s.repo.SetMailboxState(ctx, mb.User, mb.ID, StateDisconnected, reason, ""); err != nil && !errors.Is(err, ErrNotFound) {
		s.cfg.Logger.ErrorContext(ctx, "mailbox state not updated", "mailbox", mb.Name(), "error", err.Error())
	}
	if err := s.cfg.Vault.DeleteCredential(ctx, mb); err != nil {
		s.cfg.Logger.WarnContext(ctx, "dead credential not deleted", "mailbox", mb.Name(), "error", err.Error())
	}
}

// heartbeat renews the job's lease and stores its progress every third of
// the lease, until done. When the job is gone or taken, it cancels the run.
func (s *Service) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, job *SyncJob, run *SyncRun, done <-chan struct{}) {
	t := time.NewTicker(max(s.cfg.Lease/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		j := *job
		p := run.Progress()
		j.Progress.Listed, j.Progress.Fetched, j.Progress.Published = p.Listed, p.Fetched, p.Published
		j.Progress.Skipped, j.Progress.Failed = p.Skipped, p.Failed
		now := s.now()
		j.UpdateTime, j.LeaseUntil = now, now.Add(s.cfg.Lease)
		err := s.repo.UpdateSyncJob(ctx, j, j.Owner)
		switch {
		case errors.Is(err, ErrNotFound):
			cancel(errLost)
			return
		case err != nil:
			s.cfg.Logger.WarnContext(ctx, "sync job lease not renewed", "sync_job", j.Name(), "error", err.Error())
		default:
			job.LeaseUntil, job.UpdateTime = j.LeaseUntil, j.UpdateTime
		}
	}
}

// RunScheduler starts a sync of every ACTIVE GMAIL and IMAP mailbox whose
// last sync ended SyncInterval ago or more (or that never synced), until
// ctx is done. It does nothing when SyncInterval is zero. Replicas may all
// run it: a mailbox's second active job is refused by the database.
func (s *Service) RunScheduler(ctx context.Context) error {
	if s.cfg.SyncInterval <= 0 {
		return nil
	}
	tick := min(max(s.cfg.SyncInterval/4, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		s.scheduleDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Service) scheduleDue(ctx context.Context) {
	var kinds []Kind
	for _, k := range []Kind{KindGmail, KindIMAP} {
		if s.cfg.Providers[k] != nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return
	}
	due, err := s.repo.ListDueMailboxes(ctx, kinds, s.now().Add(-s.cfg.SyncInterval), 100)
	if err == nil && s.pushHealthy() {
		// Pushes bring Gmail's new mail; its scheduled syncs are only the
		// safety net, and run PushSyncFactor times less often.
		longer := s.now().Add(-s.cfg.SyncInterval * time.Duration(s.cfg.PushSyncFactor))
		due = slices.DeleteFunc(due, func(mb Mailbox) bool { return mb.Kind == KindGmail && mb.LastSyncTime.After(longer) })
	}
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "scheduler: listing due mailboxes failed", "error", err.Error())
		}
		return
	}
	for _, mb := range due {
		if _, err := s.startJob(ctx, mb, "", DefaultSyncMessages); err != nil {
			if e, ok := apierror.As(err); !ok || e.Kind != apierror.Aborted {
				s.cfg.Logger.WarnContext(ctx, "scheduler: sync not started", "mailbox", mb.Name(), "error", err.Error())
			}
		}
	}
}

// receivedTime is a message's date for retention and the expired check: the
// provider's receipt time when there is one, else the Date header, never
// later than now. A forged Date can neither skip a synced mail (dated
// before the retention window) nor pin one (dated in the future, never
// purged); an imported mail has no provider time, and its future date is
// brought back to the import.
func receivedTime(m *mailparse.Message, provider, now time.Time) time.Time {
	if !provider.IsZero() {
		return provider.UTC()
	}
	if m.Date.After(now) {
		return now
	}
	return m.Date
}
