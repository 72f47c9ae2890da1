package benchmark

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/eventbus"
)

// FairnessResult is the fairness case: user B's mail while user A's
// backfill keeps the limiter saturated.
type FairnessResult struct {
	// Backlog is A's backfill.
	Backlog int
	// Live are the waits (publish → classified) of B's live mails, and
	// Backfill those of B's mails published at the same moments into the
	// backfill lane, behind A's backlog.
	Live, Backfill []time.Duration
	// Saturated is how many of B's live mails were classified while A still
	// had at least the limiter's in-flight worth of mail left.
	Saturated int
	Traffic
	// Completion is from the first publish to the last classified event.
	Completion                       time.Duration
	Lost, Duplicated, ByModel, Mails int
	// Warnings counts the classifier's log records at warning level and
	// above, by message.
	Warnings map[string]int
	Err      error
}

// LiveP50, LiveP95, BackfillP50 and BackfillP95 are the percentiles of the waits.
func (r FairnessResult) LiveP50() time.Duration     { return percentile(r.Live, 0.5) }
func (r FairnessResult) LiveP95() time.Duration     { return percentile(r.Live, 0.95) }
func (r FairnessResult) BackfillP50() time.Duration { return percentile(r.Backfill, 0.5) }
func (r FairnessResult) BackfillP95() time.Duration { return percentile(r.Backfill, 0.95) }

// InLatencies expresses d in median request latencies.
func (r FairnessResult) InLatencies(d time.Duration) float64 {
	if r.MedianLatency <= 0 {
		return 0
	}
	return float64(d) / float64(r.MedianLatency)
}

// RunFairness publishes backlog backfill mails of user A, then, every
// 1–2 s (uniformly) while A's backlog lasts, one live mail of user B and
// one backfill mail of B, and measures each of B's mails from its publish
// to its classified event. One classifier, fresh NATS and fake.
func RunFairness(ctx context.Context, s Setup, backlog int) (*FairnessResult, error) {
	s.defaults()
	dir, err := os.MkdirTemp(s.Dir, "fairness-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ns, err := startNATS(filepath.Join(dir, "nats"))
	if err != nil {
		return nil, err
	}
	defer ns.close()
	fake, err := startFake(s)
	if err != nil {
		return nil, err
	}
	defer fake.close()
	topo := eventbus.Topology{}
	logger, counts := s.logger("fairness")
	rs, err := startClassifiers(s, dir, ns.URL, fake.URL, 1, logger)
	if err != nil {
		return nil, fmt.Errorf("benchmark: fairness: %w", err)
	}
	defer rs.stop()

	const a, b = "user-a", "user-b"
	aMails := Backfill([]string{a}, backlog)
	// B publishes at most one pair a second while A's backlog lasts.
	rate := float64(s.RPM) / 60
	pairs := int(float64(backlog)/rate) + 2
	var bLive, bBack []*eventsv1.MailReceived
	for i := range pairs {
		bLive = append(bLive, Mail(b, fmt.Sprintf("live%04d", i), mailv1.Lane_LANE_LIVE))
		bBack = append(bBack, Mail(b, fmt.Sprintf("back%04d", i), mailv1.Lane_LANE_BACKFILL))
	}
	all := append(append(names(aMails), names(bLive)...), names(bBack)...)
	w, err := watch(ctx, ns.js, topo, all)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}

	res := &FairnessResult{Backlog: backlog}
	fake.reset()
	runCtx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	stopSampling := fake.sampleInFlight(100 * time.Millisecond)
	defer stopSampling()
	at, err := publish(runCtx, ns.js, topo, aMails, 32)
	if err != nil {
		return nil, fmt.Errorf("benchmark: fairness: publish: %w", err)
	}
	t0 := earliest(at)

	// B's mail comes while A's backlog keeps the limiter busy: stop once
	// A has less than its in-flight worth and a second of admissions left.
	inFlight := int(rate * s.MeanLatency().Seconds())
	rng := rand.New(rand.NewPCG(s.Seed, 42))
	type sent struct {
		name string
		at   time.Time
	}
	var liveSent, backSent []sent
	if err := sleep(runCtx, time.Second); err != nil {
		return nil, err
	}
	for i := range pairs {
		aDone := 0
		for _, n := range names(aMails) {
			if _, ok := w.firstClassified(n); ok {
				aDone++
			}
		}
		if backlog-aDone < inFlight+int(rate) {
			break
		}
		t, err := publishOne(runCtx, ns.js, topo, bLive[i])
		if err != nil {
			return nil, err
		}
		liveSent = append(liveSent, sent{bLive[i].GetMessage(), t})
		t, err = publishOne(runCtx, ns.js, topo, bBack[i])
		if err != nil {
			return nil, err
		}
		backSent = append(backSent, sent{bBack[i].GetMessage(), t})
		if err := sleep(runCtx, time.Second+time.Duration(rng.Int64N(int64(time.Second)))); err != nil {
			return nil, err
		}
	}
	published := append(names(aMails), make([]string, 0, 2*len(liveSent))...)
	for _, x := range liveSent {
		published = append(published, x.name)
	}
	for _, x := range backSent {
		published = append(published, x.name)
	}
	// Wait for everything published to finish.
	res.Err = waitPublished(runCtx, w, published)
	if res.Err == nil {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		res.Err = settled(sctx, ns.js, topo)
		scancel()
	}
	stopSampling()
	res.Traffic = traffic(fake, s)
	_ = rs.stop()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	_ = w.caughtUp(cctx, ns.js, topo)
	ccancel()

	res.Warnings = counts.snapshot()
	t := w.tally(published)
	res.Mails, res.Lost, res.Duplicated, res.ByModel = len(published), t.Lost, t.Duplicated, t.ByModel
	if !t.Last.IsZero() {
		res.Completion = t.Last.Sub(t0)
	}
	// A's classified times, to tell whether the limiter was still saturated.
	var aTimes []time.Time
	for _, n := range names(aMails) {
		if ts, ok := w.firstClassified(n); ok {
			aTimes = append(aTimes, ts)
		}
	}
	for _, x := range liveSent {
		if ts, ok := w.firstClassified(x.name); ok {
			res.Live = append(res.Live, ts.Sub(x.at))
			left := 0
			for _, at := range aTimes {
				if at.After(ts) {
					left++
				}
			}
			if left >= inFlight {
				res.Saturated++
			}
		}
	}
	for _, x := range backSent {
		if ts, ok := w.firstClassified(x.name); ok {
			res.Backfill = append(res.Backfill, ts.Sub(x.at))
		}
	}
	return res, nil
}

// waitPublished waits until every named mail is classified or dead-lettered.
func waitPublished(ctx context.Context, w *watcher, names []string) error {
	for {
		t := w.tally(names)
		if t.Lost == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("benchmark: %d of %d mails unfinished: %w", t.Lost, len(names), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
