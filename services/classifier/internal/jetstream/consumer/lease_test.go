package consumer_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"mailroom.dev/fakes/fakeopenai"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/jetstream/consumer"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
)

// gated holds the first delivery of each mail (as the limiter's queue
// holds mail of a busy replica) until the test releases it, then asks
// the model tier; later deliveries go to the model at once.
type gated struct {
	next classify.Tier

	mu       sync.Mutex
	arrivals map[string]int
	arrived  map[string]chan struct{} // closed at the first arrival
	release  map[string]chan struct{}
	results  map[string][]error // by mail, in the order the tier answered
}

func newGated(next classify.Tier) *gated {
	return &gated{next: next, arrivals: map[string]int{}, arrived: map[string]chan struct{}{},
		release: map[string]chan struct{}{}, results: map[string][]error{}}
}

func (g *gated) chans(id string) (arrived, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.arrived[id] == nil {
		g.arrived[id], g.release[id] = make(chan struct{}), make(chan struct{})
	}
	return g.arrived[id], g.release[id]
}

func (g *gated) Classify(ctx context.Context, req classify.Request) (classify.Verdict, error) {
	arrived, release := g.chans(req.ID)
	g.mu.Lock()
	g.arrivals[req.ID]++
	first := g.arrivals[req.ID] == 1
	g.mu.Unlock()
	if first {
		close(arrived)
		select {
		case <-release:
		case <-ctx.Done():
			return classify.Verdict{}, ctx.Err()
		}
	}
	v, err := g.next.Classify(ctx, req)
	g.mu.Lock()
	g.results[req.ID] = append(g.results[req.ID], err)
	g.mu.Unlock()
	return v, err
}

func (g *gated) counts(id string) (arrivals int, results []error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.arrivals[id], append([]error(nil), g.results[id]...)
}

func mailEvent(id string) *eventsv1.MailReceived {
	return &eventsv1.MailReceived{
		User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: "users/ada/messages/" + id,
		ProviderMessageId: "p-" + id, Lane: mailv1.Lane_LANE_BACKFILL, IngestTime: timestamppb.Now(),
		Content: &mailv1.NormalizedMessage{
			Subject: "Question " + id, From: "Grace <grace@example.org>", To: []string{"ada@example.com"},
			TextBody: "Could you look at " + id + " before Friday?", ContentHash: strings.Repeat(id[len(id)-1:], 64),
		},
	}
}

// A replica whose keep-alives lapsed past AckWait while it held a mail
// (stopped with SIGSTOP, or starved: here its keep-alives are held back)
// has lost the mail to a redelivery. The redelivered copy is classified
// with the model; the lapsed delivery, when its wait ends, is abandoned
// before the model call, neither acknowledged nor handed back. A replica
// whose keep-alives go out keeps its mail however long it waits.
func TestLapsedDeliveryIsNotSentToTheModel(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for AckWait on a real NATS server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, js, err := eventbus.Connect(testenv.NATS(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{}
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	fake, url, stopFake, err := fakeopenai.Start(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{"sk-test-key-0001": {RPM: 6000, TPM: 1_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stopFake()
	tier, err := llm.New(llm.Config{
		BaseURL: url + "/v1", Model: "gpt-4o-mini",
		Keys:    []llm.Key{{ID: "key-1", Secret: "sk-test-key-0001"}},
		Limiter: limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "key-1", RPM: 6000, TPM: 1_000_000}}}),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	modelCalls := func() int64 { return fake.Stats().Keys["sk-test-key-0001"].Requests }
	g := newGated(tier)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	const ackWait = 2 * time.Second
	cfg := consumer.Config{Topology: topo, Lane: "backfill", Workers: 4, AckWait: ackWait, MaxDeliver: 5}

	// Replica A, whose keep-alives the test can hold back.
	var stopped atomic.Bool
	a := consumer.New(js, cfg, g, logger)
	consumer.SetKeepAlive(a, func(m jetstream.Msg) error {
		if stopped.Load() {
			return errors.New("stopped")
		}
		return m.InProgress()
	})
	runCtx, stopRun := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() { stopRun(); running.Wait() }()
	running.Add(1)
	go func() { defer running.Done(); _ = a.Run(runCtx) }()

	publish := func(id string) {
		t.Helper()
		if _, err := eventbus.Publish(ctx, js, topo.ReceivedSubject("backfill", "ada"), id, mailEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s: timed out", what)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: timed out", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Kept: A holds the mail for three AckWaits with its keep-alives going
	// out; it is never redelivered and costs one model call.
	arrived, release := g.chans("users/ada/messages/m-kept1")
	publish("m-kept1")
	wait("the kept mail's delivery", arrived)
	time.Sleep(3 * ackWait)
	close(release)
	waitFor("the kept mail's verdict", func() bool { _, r := g.counts("users/ada/messages/m-kept1"); return len(r) == 1 })
	if n, r := g.counts("users/ada/messages/m-kept1"); n != 1 || r[0] != nil {
		t.Fatalf("kept mail: %d deliveries, results %v; want 1 delivery classified", n, r)
	}
	if got := modelCalls(); got != 1 {
		t.Fatalf("%d model calls for the kept mail, want 1", got)
	}

	// Lost: A takes the mail and sends no keep-alive (stopped). Replica B
	// starts; the server redelivers the mail after AckWait, to B or to A's
	// other workers, and that copy is classified.
	arrived, release = g.chans("users/ada/messages/m-lost2")
	publish("m-lost2")
	wait("the lost mail's first delivery", arrived)
	stopped.Store(true)
	b := consumer.New(js, cfg, g, logger)
	running.Add(1)
	go func() { defer running.Done(); _ = b.Run(runCtx) }()
	waitFor("the redelivered copy's verdict", func() bool { _, r := g.counts("users/ada/messages/m-lost2"); return len(r) == 1 })
	if _, r := g.counts("users/ada/messages/m-lost2"); r[0] != nil {
		t.Fatalf("the redelivered copy: %v, want a verdict", r[0])
	}
	if got := modelCalls(); got != 2 {
		t.Fatalf("%d model calls, want 2 (the kept mail, the redelivered copy)", got)
	}
	// SIGCONT: A's keep-alives would go out again, and its wait ends.
	stopped.Store(false)
	close(release)
	waitFor("the lapsed delivery's end", func() bool { _, r := g.counts("users/ada/messages/m-lost2"); return len(r) == 2 })
	if _, r := g.counts("users/ada/messages/m-lost2"); !errors.Is(r[1], classify.ErrNotOwned) {
		t.Errorf("the lapsed delivery ended with %v, want classify.ErrNotOwned", r[1])
	}
	if got := modelCalls(); got != 2 {
		t.Errorf("%d model calls, want 2: the lapsed delivery was sent to the model", got)
	}

	// The mail is done: one classified event, nothing pending, no third
	// delivery (a Nak of the lapsed delivery would make one).
	time.Sleep(ackWait)
	if n, _ := g.counts("users/ada/messages/m-lost2"); n != 2 {
		t.Errorf("the lost mail was delivered %d times, want 2", n)
	}
	cons, err := js.Consumer(ctx, topo.ReceivedStreamName(), "classifier-backfill")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("consumer: %d ack pending, %d pending; want none", info.NumAckPending, info.NumPending)
	}
	s, err := js.Stream(ctx, topo.ClassifiedStreamName())
	if err != nil {
		t.Fatal(err)
	}
	sinfo, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sinfo.State.Msgs != 2 {
		t.Errorf("%d classified events, want 2 (one a mail)", sinfo.State.Msgs)
	}
}
