package benchmark

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"mailroom.dev/fakes/fakeopenai"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
)

// Traffic is what the fake saw during a run.
type Traffic struct {
	// RPM and TPM are the limits.
	RPM, TPM int
	// Requests counts every request; Admitted those the fake's limiter let
	// through and AdmittedTokens their admission cost; RateLimited the 429s.
	Requests, Admitted, AdmittedTokens, RateLimited int64
	// MaxInFlight is the most requests the fake handled at once, and
	// MedianInFlight the median of samples taken every 100 ms while
	// requests were in flight.
	MaxInFlight    int
	MedianInFlight int
	// MedianLatency is the median time of the requests answered 200.
	MedianLatency time.Duration
	// Series is the fake's per-second admissions since the run's start.
	Series []fakeopenai.Second
}

// RateLimitedShare is RateLimited ÷ Requests.
func (t Traffic) RateLimitedShare() float64 {
	if t.Requests == 0 {
		return 0
	}
	return float64(t.RateLimited) / float64(t.Requests)
}

// TokensPerRequest is the mean admission cost of an admitted request.
func (t Traffic) TokensPerRequest() float64 {
	if t.Admitted == 0 {
		return 0
	}
	return float64(t.AdmittedTokens) / float64(t.Admitted)
}

// MinRequests is Admitted ÷ RPM, MinTokens AdmittedTokens ÷ TPM.
func (t Traffic) MinRequests() time.Duration {
	return time.Duration(float64(t.Admitted) / float64(t.RPM) * float64(time.Minute))
}

// MinTokens is AdmittedTokens ÷ TPM.
func (t Traffic) MinTokens() time.Duration {
	return time.Duration(float64(t.AdmittedTokens) / float64(t.TPM) * float64(time.Minute))
}

// Minimum is the theoretical minimum time of what was admitted:
// max(requests ÷ RPM, admitted tokens ÷ TPM).
func (t Traffic) Minimum() time.Duration { return max(t.MinRequests(), t.MinTokens()) }

func traffic(f *fakeAPI, s Setup) Traffic {
	st := f.Stats()
	ks := st.Keys[APIKey]
	return Traffic{
		RPM: s.RPM, TPM: s.TPM,
		Requests: ks.Requests, Admitted: ks.Admitted, AdmittedTokens: ks.AdmittedTokens, RateLimited: ks.RateLimited,
		MaxInFlight:    st.MaxInFlight,
		MedianInFlight: f.medianInFlight(),
		MedianLatency:  f.medianLatency(),
		Series:         ks.Series,
	}
}

// PipelineResult is one run of the real classifier over a backfill.
type PipelineResult struct {
	Name     string
	Replicas int
	Mails    int
	// Completion is from the first publish to the last classified event in
	// the classified stream.
	Completion time.Duration
	// Publishing is how long publishing every mail took.
	Publishing time.Duration
	// FirstAnswered and LastAnswered are when (after the first publish) the
	// first and the last request answered 200 reached the fake; Tail is from
	// the last to the last classified event.
	FirstAnswered, LastAnswered, Tail time.Duration
	Traffic
	// Classified, DeadLettered and Lost partition the published mails;
	// Duplicated counts mails with more than one classified (or dead-letter)
	// event; ByModel those the model classified.
	Classified, DeadLettered, Lost, Duplicated, ByModel int
	// Warnings counts the classifiers' log records at warning level and
	// above, by message.
	Warnings map[string]int
	// Err is why the run did not finish, if it did not.
	Err error

	// modelLast is, with per-model limits, when (after the first publish)
	// each model's last answer was sent.
	modelLast map[string]time.Duration
}

// Ratio is Completion ÷ Minimum.
func (r PipelineResult) Ratio() float64 {
	if r.Minimum() <= 0 {
		return 0
	}
	return float64(r.Completion) / float64(r.Minimum())
}

// ModelCallsPerMail is the requests answered 200 per mail: above 1 when
// a mail went to the model twice (even if the stream's de-duplication hid
// the second classified event).
func (r PipelineResult) ModelCallsPerMail() float64 {
	if r.Mails == 0 {
		return 0
	}
	return float64(r.Admitted) / float64(r.Mails)
}

// RunPipeline publishes mails to a fresh JetStream server and has replicas
// classifiers (sharing one key) classify them against a fresh fake OpenAI.
// It returns when every mail is classified or dead-lettered and the
// consumers hold nothing, or when s.Timeout runs out (the result then says
// so in Err and counts the mails lost).
func RunPipeline(ctx context.Context, s Setup, name string, mails []*eventsv1.MailReceived, replicas int) (*PipelineResult, error) {
	return runPipeline(ctx, s, name, mails, replicas, nil)
}

// runPipeline is RunPipeline; after, if set, sees the fake when the run
// ends, before the classifiers stop.
func runPipeline(ctx context.Context, s Setup, name string, mails []*eventsv1.MailReceived, replicas int, after func(*fakeAPI)) (*PipelineResult, error) {
	s.defaults()
	dir, err := os.MkdirTemp(s.Dir, "run-*")
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
	logger, counts := s.logger(name)

	rs, err := startClassifiers(s, dir, ns.URL, fake.URL, replicas, logger)
	if err != nil {
		return nil, fmt.Errorf("benchmark: %s: %w", name, err)
	}
	defer rs.stop()
	ns2 := names(mails)
	w, err := watch(ctx, ns.js, topo, ns2)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	// Let the replicas count each other and the consumers start pulling.
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}

	res := &PipelineResult{Name: name, Replicas: replicas, Mails: len(mails)}
	fake.reset()
	runCtx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	stopSampling := fake.sampleInFlight(100 * time.Millisecond)
	at, err := publish(runCtx, ns.js, topo, mails, 32)
	if err != nil {
		return nil, fmt.Errorf("benchmark: %s: publish: %w", name, err)
	}
	t0 := earliest(at)
	res.Publishing = time.Since(t0)

	res.Err = waitFinished(runCtx, w, len(mails))
	if res.Err == nil {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		res.Err = settled(sctx, ns.js, topo)
		scancel()
	}
	stopSampling()
	res.Traffic = traffic(fake, s)
	if after != nil {
		after(fake)
	}
	if fake.perModel {
		res.modelLast = map[string]time.Duration{}
		for m := range s.ModelLimits {
			if at := fake.lastAnswered(m); !at.IsZero() {
				res.modelLast[m] = at.Sub(t0)
			}
		}
	}
	if err := rs.stop(); err != nil {
		logger.Warn("stopping the classifiers", "error", err.Error())
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	if err := w.caughtUp(cctx, ns.js, topo); err != nil && res.Err == nil {
		res.Err = err
	}
	ccancel()

	res.Warnings = counts.snapshot()
	t := w.tally(ns2)
	res.Classified, res.DeadLettered, res.Lost, res.Duplicated, res.ByModel = t.Classified, t.DeadLettered, t.Lost, t.Duplicated, t.ByModel
	if !t.Last.IsZero() {
		res.Completion = t.Last.Sub(t0)
	}
	if first, last := fake.okSpan(); !last.IsZero() {
		res.FirstAnswered, res.LastAnswered = first.Sub(t0), last.Sub(t0)
		res.Tail = t.Last.Sub(last)
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
