package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/breaker"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest/internal/jetstream/consumer"
)

// counter is an in-memory Counter whose failures the test switches on
// and off (the database down and up again).
type counter struct {
	mu         sync.Mutex
	down       bool
	calls      int
	classified map[string]int
	batched    []string // "user/message entered"
}

func (c *counter) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

func (c *counter) CountClassified(_ context.Context, user, mailboxID, providerMessageID, job string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.down {
		return errors.New("connection refused")
	}
	c.classified[user+"/"+mailboxID+"/"+providerMessageID+"@"+job]++
	return nil
}

func (c *counter) CountBatched(_ context.Context, user string, ids []string, entered bool, _ time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.down {
		return errors.New("connection refused")
	}
	for _, id := range ids {
		c.batched = append(c.batched, fmt.Sprintf("%s/%s %v", user, id, entered))
	}
	return nil
}

func (c *counter) snapshot() (map[string]int, []string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.classified {
		out[k] = v
	}
	return out, slices.Clone(c.batched), c.calls
}

func start(t *testing.T, opts consumer.Options) (*counter, jetstream.JetStream, eventbus.Topology) {
	t.Helper()
	url, prefix := testenv.ExternalNATS(t)
	nc, js, err := eventbus.Connect(url, "ingest-consumer-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	topo := eventbus.Topology{Prefix: prefix}
	ctx, cancel := context.WithCancel(context.Background())
	if err := eventbus.EnsureStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	cnt := &counter{classified: map[string]int{}}
	c, err := consumer.New(ctx, js, topo, cnt, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return cnt, js, topo
}

func publishClassified(t *testing.T, js jetstream.JetStream, topo eventbus.Topology, n int) []string {
	t.Helper()
	var keys []string
	for i := range n {
		ev := &eventsv1.MailClassified{User: "ada", Mailbox: "users/ada/mailboxes/inbox", Message: fmt.Sprintf("users/ada/messages/m%d", i),
			ProviderMessageId: fmt.Sprintf("p%d", i), SyncJob: "users/ada/syncJobs/job1"}
		if _, err := eventbus.Publish(context.Background(), js, topo.ClassifiedSubject("ada"), fmt.Sprint("c", i), ev); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, fmt.Sprintf("ada/inbox/p%d@job1", i))
	}
	return keys
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBreakerHoldsEventsWhileTheDatabaseIsDown: while every write fails,
// the breaker opens and the events are held (kept alive, their deliveries
// unspent) instead of being redelivered until MaxDeliver drops them; once
// the database is back every event counts exactly once. Without a breaker
// that opens, the same outage loses counts (the control).
func TestBreakerHoldsEventsWhileTheDatabaseIsDown(t *testing.T) {
	const events = 20
	outage := func(t *testing.T, br *breaker.Breaker) (counted map[string]int, calls int) {
		cnt, js, topo := start(t, consumer.Options{Breaker: br, NakDelay: 10 * time.Millisecond})
		cnt.setDown(true)
		keys := publishClassified(t, js, topo, events)
		// Long enough for ten deliveries of every event at a 10 ms delay.
		time.Sleep(3 * time.Second)
		_, _, calls = cnt.snapshot()
		cnt.setDown(false)
		time.Sleep(3 * time.Second)
		got, _, _ := cnt.snapshot()
		for _, k := range keys {
			if got[k] > 1 {
				t.Errorf("%s counted %d times", k, got[k])
			}
		}
		return got, calls
	}
	t.Run("breaker", func(t *testing.T) {
		br := breaker.New(breaker.Config{Threshold: 3, Cooldown: 100 * time.Millisecond, MaxCooldown: 200 * time.Millisecond})
		got, calls := outage(t, br)
		t.Logf("with the breaker: %d writes tried during the outage, %d of %d events counted", calls, len(got), events)
		if len(got) != events {
			t.Errorf("%d of %d events counted after the outage; want all", len(got), events)
		}
		// Three failures open it; then one probe per cooldown (≤ 200 ms) in 3 s.
		if calls > 40 {
			t.Errorf("%d writes tried during the outage; want the breaker to hold them (a probe at a time)", calls)
		}
		if br.Open() {
			t.Error("the breaker is still open after the database came back")
		}
	})
	t.Run("no breaker opens", func(t *testing.T) {
		got, calls := outage(t, breaker.New(breaker.Config{Threshold: 1 << 30}))
		t.Logf("without: %d writes tried during the outage, %d of %d events counted", calls, len(got), events)
		if len(got) == events {
			t.Errorf("all %d events counted although each was redelivered past MaxDeliver: the control shows nothing", events)
		}
	})
}

// TestBatchEvents: MailBatched events reach the counter with their
// message ids, only the event's user's messages, and a bad event is
// terminated without holding the others.
func TestBatchEvents(t *testing.T) {
	cnt, js, topo := start(t, consumer.Options{})
	ctx := context.Background()
	now := timestamppb.Now()
	for i, ev := range []*eventsv1.MailBatched{
		{User: "ada", Messages: []string{"users/ada/messages/m1", "users/ada/messages/m2", "users/bob/messages/m9", "nonsense"}, State: eventsv1.MailBatched_STATE_ENTERED, EventTime: now},
		{User: "ada", Messages: []string{"users/ada/messages/m3"}, EventTime: now},                                         // no state: terminated
		{User: "ada", Messages: []string{"users/ada/messages/m4"}, State: eventsv1.MailBatched_STATE_LEFT},                 // no time: terminated
		{User: "ada", Messages: []string{"users/ada/messages/m1"}, State: eventsv1.MailBatched_STATE_LEFT, EventTime: now}, // applied
	} {
		if _, err := eventbus.Publish(ctx, js, topo.BatchSubject(ev.GetUser()), fmt.Sprint("b", i), ev); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"ada/m1 true", "ada/m2 true", "ada/m1 false"}
	waitFor(t, "the batch events", func() bool { _, b, _ := cnt.snapshot(); return len(b) >= len(want) })
	time.Sleep(300 * time.Millisecond)
	if _, got, _ := cnt.snapshot(); !slices.Equal(got, want) {
		t.Errorf("batched moves = %q, want %q", got, want)
	}
	cons, err := js.Consumer(ctx, topo.BatchStreamName(), consumer.BatchDurable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("batch consumer info %+v, %v; want everything acked or terminated", info, err)
	}
}
