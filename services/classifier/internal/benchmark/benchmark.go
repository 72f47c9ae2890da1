// Package benchmark measures the classifier's language-model path against
// the project's fake OpenAI, as issue 3's Benchmark section asks: the real
// classifier (classifier.New and Run, SQLite, an embedded JetStream server)
// classifies a backfill published to mail.received, while the fake enforces
// an account's RPM and TPM the way OpenAI does and counts what it admitted,
// second by second.
//
// A run reports how long the mail took against the theoretical minimum
// (max(requests ÷ RPM, admitted tokens ÷ TPM), from the fake's own counts),
// the share of requests answered 429, the mails lost (neither classified
// nor dead-lettered) and classified twice, and the most requests the fake
// saw in flight. The comparisons are the seed's approach (a fixed semaphore
// of 10 with exponential backoff, RunBaseline), several replicas sharing one
// key (RunPipeline with Replicas > 1) and the fairness case (RunFairness:
// another user's live mail while one user's backfill saturates the limiter).
// Issue 9's runs (Scenarios, RunRealWorld) put one classifier against a fake
// whose limits are not what it was told: enforced over 1 s windows, 4× lower
// than configured, not configured at all, changing mid-run, shared with
// another client, per model, under latency steps; each is measured against
// the floor at the fake's real limits.
// Report gathers the results, checks the issues' targets and writes the
// report; cmd run (./run) is `make bench-classifier`, and writes the
// traffic.json that bench/cmd/charts draws.
package benchmark

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"mailroom.dev/fakes/fakeopenai"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/services/classifier"
)

// APIKey is the API key the fake accepts and the classifier sends.
const APIKey = "sk-bench-0000000000000001"

// Setup is what every run of one benchmark shares: the account's limits,
// the fake's latency and the classifier's tuning.
type Setup struct {
	// RPM and TPM are the key's limits, enforced by the fake and configured
	// in the classifier (OPENAI_RPM, OPENAI_TPM).
	RPM, TPM int
	// Latency is the fake's base response time and Jitter the most added
	// to it (uniform).
	Latency, Jitter time.Duration
	// Window is the fake's enforcement window (default 6 s).
	Window time.Duration
	// Burst is the classifier's OPENAI_BURST (0: the classifier's default).
	Burst time.Duration
	// MaxAckPending and Workers tune each lane's consumer (0: the
	// classifier's defaults).
	MaxAckPending, Workers int
	// Timeout bounds the wait for a run to finish (default 5 minutes).
	Timeout time.Duration
	// Dir holds the NATS store and the SQLite files; each run makes its
	// own directory inside it.
	Dir string
	// Logs, when set, receives the services' logs (JSON, info and above);
	// LogsFor may name a file per run instead.
	Logs io.Writer
	// LogsFor returns the writer for the logs of the named run; nil: Logs.
	LogsFor func(run string) io.Writer
	// Seed seeds the fake's jitter.
	Seed uint64

	// The real world of issue 9, all off by default. RemainingPerMinute,
	// Changes (on APIKey; their Key is filled in), Other (on APIKey),
	// LatencySteps: as in fakeopenai.Config. ModelLimits gives models
	// limits of their own on APIKey.
	RemainingPerMinute bool
	Changes            []fakeopenai.LimitChange
	Other              fakeopenai.OtherClient
	ModelLimits        map[string]fakeopenai.Limits
	LatencySteps       []fakeopenai.LatencyStep
	// Configured is what the classifier is told (OPENAI_RPM, OPENAI_TPM):
	// nil, the real limits RPM and TPM; zero limits, none (the classifier
	// learns them from the fake's headers).
	Configured *fakeopenai.Limits
	// Model is the classifier's OPENAI_MODEL ("": its default), and
	// EscalateModel and EscalateCategories its OPENAI_ESCALATE_MODEL and
	// OPENAI_ESCALATE_CATEGORIES.
	Model              string
	EscalateModel      string
	EscalateCategories []string
}

// ConfiguredLimits is what the classifier is told.
func (s Setup) ConfiguredLimits() fakeopenai.Limits {
	if s.Configured != nil {
		return *s.Configured
	}
	return fakeopenai.Limits{RPM: s.RPM, TPM: s.TPM}
}

func (s *Setup) defaults() {
	if s.Window <= 0 {
		s.Window = 6 * time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Minute
	}
	if s.Dir == "" {
		s.Dir = os.TempDir()
	}
}

// MeanLatency is the fake's mean response time: Latency + Jitter/2.
func (s Setup) MeanLatency() time.Duration { return s.Latency + s.Jitter/2 }

// logger returns the logger of the named run and the counts of its
// warnings and errors by message.
func (s Setup) logger(run string) (*slog.Logger, *logCounts) {
	w := s.Logs
	if s.LogsFor != nil {
		if lw := s.LogsFor(run); lw != nil {
			w = lw
		}
	}
	if w == nil {
		w = io.Discard
	}
	counts := &logCounts{m: map[string]int{}}
	h := countingHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}), counts: counts}
	return slog.New(h).With("run", run), counts
}

// logCounts counts log records at warning level and above, by message.
type logCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *logCounts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

type countingHandler struct {
	slog.Handler
	counts *logCounts
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.counts.mu.Lock()
		h.counts.m[r.Message]++
		h.counts.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.Handler.Enabled(ctx, l)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{Handler: h.Handler.WithAttrs(as), counts: h.counts}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{Handler: h.Handler.WithGroup(name), counts: h.counts}
}

// fakeAPI is a fake OpenAI served on a loopback port, with a meter in
// front that records how long each answered request took.
type fakeAPI struct {
	*fakeopenai.Server
	URL string
	hs  *http.Server

	mu        sync.Mutex
	latencies []time.Duration // of 200s, arrival to answer
	lastOK    time.Time       // arrival of the last request answered 200
	firstOK   time.Time
	inFlight  []int // samples while requests were in flight
	// byModel, with perModel set, is when the last answer (200) of each
	// model was sent.
	perModel bool
	byModel  map[string]time.Time
}

func startFake(s Setup) (*fakeAPI, error) {
	other := s.Other
	if other.Share > 0 {
		other.Key = APIKey
	}
	var changes []fakeopenai.LimitChange
	for _, c := range s.Changes {
		c.Key = APIKey
		changes = append(changes, c)
	}
	var models map[string]map[string]fakeopenai.Limits
	if len(s.ModelLimits) > 0 {
		models = map[string]map[string]fakeopenai.Limits{APIKey: s.ModelLimits}
	}
	srv := fakeopenai.New(fakeopenai.Config{
		Keys:               map[string]fakeopenai.Limits{APIKey: {RPM: s.RPM, TPM: s.TPM}},
		ModelLimits:        models,
		Window:             s.Window,
		RemainingPerMinute: s.RemainingPerMinute,
		Changes:            changes,
		Other:              other,
		Latency:            s.Latency,
		Jitter:             s.Jitter,
		LatencySteps:       s.LatencySteps,
		Seed:               s.Seed,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("benchmark: fake OpenAI: %w", err)
	}
	f := &fakeAPI{Server: srv, URL: "http://" + lis.Addr().String(), perModel: models != nil, byModel: map[string]time.Time{}}
	f.hs = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.hs.Serve(lis) }()
	return f, nil
}

// statusWriter remembers the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	model := ""
	if f.perModel && r.URL.Path == "/v1/chat/completions" {
		model, r.Body = peekModel(r.Body)
	}
	f.Server.ServeHTTP(sw, r)
	if sw.status == http.StatusOK && r.URL.Path == "/v1/chat/completions" {
		d := time.Since(began)
		f.mu.Lock()
		if f.perModel {
			f.byModel[model] = time.Now()
		}
		f.latencies = append(f.latencies, d)
		if began.After(f.lastOK) {
			f.lastOK = began
		}
		if f.firstOK.IsZero() || began.Before(f.firstOK) {
			f.firstOK = began
		}
		f.mu.Unlock()
	}
}

// peekModel reads the model of a chat completion request and returns the
// body to read again.
func peekModel(body io.ReadCloser) (string, io.ReadCloser) {
	b, err := io.ReadAll(body)
	body.Close()
	var req struct {
		Model string `json:"model"`
	}
	if err == nil {
		_ = json.Unmarshal(b, &req)
	}
	return req.Model, io.NopCloser(bytes.NewReader(b))
}

// lastAnswered is when the last 200 of model was sent (zero: none).
func (f *fakeAPI) lastAnswered(model string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byModel[model]
}

// reset starts the fake's statistics (and the meter's) now.
func (f *fakeAPI) reset() {
	f.Server.Reset()
	f.mu.Lock()
	f.latencies, f.lastOK, f.firstOK, f.inFlight = nil, time.Time{}, time.Time{}, nil
	f.byModel = map[string]time.Time{}
	f.mu.Unlock()
}

// sampleInFlight samples the requests in flight every interval until the
// returned function is called (it may be called more than once).
func (f *fakeAPI) sampleInFlight(every time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n := f.Stats().InFlight; n > 0 {
					f.mu.Lock()
					f.inFlight = append(f.inFlight, n)
					f.mu.Unlock()
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-stopped }) }
}

func (f *fakeAPI) medianInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.inFlight) == 0 {
		return 0
	}
	s := slices.Clone(f.inFlight)
	slices.Sort(s)
	return s[len(s)/2]
}

// medianLatency is the median time of the requests answered 200.
func (f *fakeAPI) medianLatency() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return percentile(f.latencies, 0.5)
}

func (f *fakeAPI) okSpan() (first, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstOK, f.lastOK
}

func (f *fakeAPI) close() { _ = f.hs.Close() }

// natsServer is an embedded NATS server with JetStream, storing in dir.
type natsServer struct {
	srv *server.Server
	URL string
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(dir string) (*natsServer, error) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("benchmark: nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("benchmark: nats server not ready")
	}
	nc, js, err := eventbus.Connect(srv.ClientURL(), "mailroom-benchmark")
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return &natsServer{srv: srv, URL: srv.ClientURL(), nc: nc, js: js}, nil
}

func (n *natsServer) close() {
	n.nc.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// replicaSet is classifier services running against one NATS server and
// one fake, each with its own SQLite database.
type replicaSet struct {
	svcs   []*classifier.Service
	cancel context.CancelFunc
	done   chan error
	n      int
}

// startClassifiers builds n classifiers (all of them, so that each counts
// the others when it starts sharing the limits) and then runs them.
func startClassifiers(s Setup, dir, natsURL, fakeURL string, n int, logger *slog.Logger) (*replicaSet, error) {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &replicaSet{cancel: cancel, done: make(chan error, n)}
	for i := range n {
		cfg := classifier.Config{
			OpenAIAPIKey:  APIKey,
			OpenAIBaseURL: fakeURL + "/v1",
			OpenAIRPM:     s.ConfiguredLimits().RPM,
			OpenAITPM:     s.ConfiguredLimits().TPM,
			OpenAIModel:   s.Model,
			OpenAIBurst:   s.Burst,
			MaxAckPending: s.MaxAckPending,
			Workers:       s.Workers,
			ReplicaID:     fmt.Sprintf("bench-replica-%d", i+1),
		}
		cfg.NATS.URL = natsURL
		cfg.Addrs.Auth = "127.0.0.1:1" // the gRPC API is not used; auth is never called
		cfg.DatabaseURL = "sqlite://" + filepath.Join(dir, fmt.Sprintf("classifier-%d.db", i+1))
		escalate(&cfg, s)
		if err := config.Defaults(&cfg); err != nil {
			rs.stop()
			return nil, err
		}
		// This benchmark measures the realtime path and its limiter: every
		// mail goes to the model (no batches, no learned senders).
		cfg.OpenAIBatch, cfg.LearnSenders = "off", false
		svc, err := classifier.New(ctx, cfg, logger.With("replica", i+1))
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs.svcs = append(rs.svcs, svc)
	}
	for _, svc := range rs.svcs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs.n++
		go func() { rs.done <- svc.Run(ctx, lis) }()
	}
	return rs, nil
}

// stop stops every replica and waits for them.
func (rs *replicaSet) stop() error {
	rs.cancel()
	var errs []error
	for range rs.n {
		select {
		case err := <-rs.done:
			errs = append(errs, err)
		case <-time.After(30 * time.Second):
			errs = append(errs, errors.New("benchmark: a classifier did not stop within 30s"))
		}
	}
	rs.n = 0
	for _, svc := range rs.svcs {
		errs = append(errs, svc.Close())
	}
	rs.svcs = nil
	return errors.Join(errs...)
}

// published is one mail as it was published.
type published struct {
	ev *eventsv1.MailReceived
	at time.Time
}

// publish publishes mails to mail.received with parallel publishers,
// each waiting for its PubAck as ingest does, and returns when each was
// published.
func publish(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, mails []*eventsv1.MailReceived, parallel int) ([]time.Time, error) {
	at := make([]time.Time, len(mails))
	next := make(chan int)
	errc := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ev := mails[i]
				at[i] = time.Now()
				if _, err := eventbus.Publish(ctx, js, topo.ReceivedSubject(LaneName(ev), ev.GetUser()), MsgID(ev), ev); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var err error
loop:
	for i := range mails {
		select {
		case next <- i:
		case err = <-errc:
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return at, err
}

// publishOne publishes one mail and returns when it was sent.
func publishOne(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, ev *eventsv1.MailReceived) (time.Time, error) {
	at := time.Now()
	_, err := eventbus.Publish(ctx, js, topo.ReceivedSubject(LaneName(ev), ev.GetUser()), MsgID(ev), ev)
	return at, err
}

// watcher follows the classified and dead-letter streams with ordered
// consumers and keeps, per message name, the stream times of its
// classified events and whether it was dead-lettered.
type watcher struct {
	mu         sync.Mutex
	want       map[string]bool // the published names
	classified map[string][]time.Time
	llm        map[string]bool // classified by the model
	dead       map[string]int
	finished   int // names of want that are classified or dead
	events     int // classified events seen
	cons       []jetstream.ConsumeContext
	errs       []error
}

func watch(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, names []string) (*watcher, error) {
	w := &watcher{want: map[string]bool{}, classified: map[string][]time.Time{}, llm: map[string]bool{}, dead: map[string]int{}}
	for _, n := range names {
		w.want[n] = true
	}
	for _, stream := range []string{topo.ClassifiedStreamName(), topo.DeadLetterStreamName()} {
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("benchmark: watch %s: %w", stream, err)
		}
		isDead := stream == topo.DeadLetterStreamName()
		cc, err := cons.Consume(func(msg jetstream.Msg) { w.take(msg, isDead) })
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("benchmark: watch %s: %w", stream, err)
		}
		w.cons = append(w.cons, cc)
	}
	return w, nil
}

func (w *watcher) take(msg jetstream.Msg, isDead bool) {
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	var name string
	var byModel bool
	if isDead {
		var ev eventsv1.MailDeadLettered
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			w.fail(err)
			return
		}
		name = ev.GetReceived().GetMessage()
	} else {
		var ev eventsv1.MailClassified
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			w.fail(err)
			return
		}
		name = ev.GetMessage()
		byModel = ev.GetClassification().GetSource().String() == "CLASSIFICATION_SOURCE_LLM"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	first := len(w.classified[name]) == 0 && w.dead[name] == 0
	if isDead {
		w.dead[name]++
	} else {
		w.events++
		w.classified[name] = append(w.classified[name], md.Timestamp)
		if byModel {
			w.llm[name] = true
		}
	}
	if first && w.want[name] {
		w.finished++
	}
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

func (w *watcher) progress() (finished, events int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished, w.events
}

// firstClassified returns when name was first classified.
func (w *watcher) firstClassified(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := w.classified[name]
	if len(ts) == 0 {
		return time.Time{}, false
	}
	return earliest(ts), true
}

func (w *watcher) stop() {
	for _, cc := range w.cons {
		cc.Stop()
	}
}

// tally is what a run's streams hold at the end.
type tally struct {
	Classified, DeadLettered, Lost, Duplicated, ByModel int
	// Last is the latest classified event of a published mail.
	Last time.Time
}

func (w *watcher) tally(names []string) tally {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t tally
	for _, n := range names {
		ts := w.classified[n]
		switch {
		case len(ts) > 0:
			t.Classified++
		case w.dead[n] > 0:
			t.DeadLettered++
		default:
			t.Lost++
		}
		if len(ts)+w.dead[n] > 1 {
			t.Duplicated++
		}
		if w.llm[n] {
			t.ByModel++
		}
		for _, at := range ts {
			if at.After(t.Last) {
				t.Last = at
			}
		}
	}
	return t
}

// caughtUp waits until the watcher has read every event the classified
// stream holds.
func (w *watcher) caughtUp(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology) error {
	stream, err := js.Stream(ctx, topo.ClassifiedStreamName())
	if err != nil {
		return err
	}
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if _, events := w.progress(); uint64(events) >= info.State.Msgs {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settled waits until the classifier's consumers hold nothing: every
// received event is acknowledged, so nothing can be redelivered later.
func settled(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology) error {
	for {
		pending := uint64(0)
		for _, lane := range []string{"interactive", "live", "backfill"} {
			cons, err := js.Consumer(ctx, topo.ReceivedStreamName(), "classifier-"+lane)
			if err != nil {
				return err
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return err
			}
			pending += info.NumPending + uint64(info.NumAckPending)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("benchmark: consumers still hold %d events: %w", pending, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitFinished waits until every published mail is classified or
// dead-lettered, or ctx ends.
func waitFinished(ctx context.Context, w *watcher, n int) error {
	for {
		if f, _ := w.progress(); f >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			f, _ := w.progress()
			return fmt.Errorf("benchmark: %d of %d mails finished: %w", f, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// percentile returns the p-th quantile (0..1) of ds by nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func earliest(ts []time.Time) time.Time {
	return slices.MinFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
}
