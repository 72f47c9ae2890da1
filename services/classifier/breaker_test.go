package classifier_test

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mailroom.dev/fakes/fakeopenai"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier"
)

// outage is how long the fake answers 503 to everything: longer than the
// retry budget of a mail (OPENAI_MAX_ATTEMPTS=4: three backoffs of at most
// 0.5, 1 and 2 s), which without the breaker dead-letters every mail.
const outage = 10 * time.Second

// While the model API answers nothing but 503s for longer than a mail's
// retry budget, the circuit breaker holds the mail: none is
// dead-lettered, none is redelivered, the model is asked a bounded number
// of times, and all of it is classified once the API is back.
func TestModelOutageHoldsMailWithoutDeadLetters(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{Latency: 5 * time.Millisecond}, func(c *classifier.Config) {
		c.OpenAIMaxAttempts = 4
		c.MaxDeliver = 3
	})
	e := startWith(t, testenv.NATS(t), "", tune)
	fake.Inject(fakeopenai.Overloaded, 1_000_000)
	evs := personal("ada", 20)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	time.Sleep(outage)
	st := fake.Stats().Keys[fakeKey]
	during := st.Faults[fakeopenai.FaultOverloaded]
	fake.Reset() // the API is back
	if during == 0 {
		t.Fatal("the fake answered no 503s")
	}
	if dead := deadLetters(t, e); len(dead) > 0 {
		t.Errorf("%d mails dead-lettered during the outage, want none", len(dead))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var classified int
	for ctx.Err() == nil {
		if classified = len(classifiedNow(t, e)); classified == len(evs) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if classified != len(evs) {
		t.Fatalf("%d of %d mails classified after the outage", classified, len(evs))
	}
	if dead := deadLetters(t, e); len(dead) > 0 {
		t.Errorf("%d mails dead-lettered, want none", len(dead))
	}
	waitSettled(t, e)
	cons, err := e.js.Consumer(ctx, e.topo.ReceivedStreamName(), "classifier-backfill")
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Delivered.Consumer; got != uint64(len(evs)) {
		t.Errorf("%d deliveries of %d mails: the outage used up deliveries", got, len(evs))
	}
	// Each mail was sent once when the outage began; after that only one
	// probe at a time, no more than one a second.
	if limit := int64(len(evs)) + int64(outage/time.Second); during > limit {
		t.Errorf("%d requests during the outage, want at most %d (one per mail, then probes)", during, limit)
	}
	t.Logf("%d requests answered 503 during %v; then %d requests classified %d mails", during, outage, fake.Stats().Keys[fakeKey].Requests, classified)
}

// While NATS refuses every classified event (the stream is gone) for
// longer than the events' deliveries last, the classifier holds them
// instead of dead-lettering them, and publishes them once it is back.
func TestPublishOutageHoldsMailWithoutDeadLetters(t *testing.T) {
	e := startWith(t, testenv.NATS(t), "", func(c *classifier.Config) { c.MaxDeliver = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.js.DeleteStream(ctx, e.topo.ClassifiedStreamName()); err != nil {
		t.Fatal(err)
	}
	evs := personal("ada", 12)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	// Every event has had its deliveries by now, were it not held: the
	// first failures wait 1 s for their second delivery.
	time.Sleep(5 * time.Second)
	if dead := deadLetters(t, e); len(dead) > 0 {
		t.Errorf("%d mails dead-lettered during the outage, want none", len(dead))
	}
	if err := eventbus.EnsureStreams(ctx, e.js, e.topo); err != nil {
		t.Fatal(err)
	}
	got := classifiedInStream(t, e, len(evs))
	if len(got) != len(evs) {
		t.Errorf("%d of %d mails classified after the outage", len(got), len(evs))
	}
	waitSettled(t, e)
	if dead := deadLetters(t, e); len(dead) > 0 {
		t.Errorf("%d mails dead-lettered, want none", len(dead))
	}
}

// When the NATS server stops in the middle of a backlog, the classifier
// says NOT_SERVING until it is back, then finishes the backlog: every
// mail classified, none dead-lettered.
func TestNATSRestartLosesNothing(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, tune := withModel(t, fakeopenai.Config{Latency: 300 * time.Millisecond}, func(c *classifier.Config) { c.MaxDeliver = 2 })
	e := startWith(t, srv.URL, "", tune)
	_, cc := client(t, e)
	health := healthpb.NewHealthClient(cc)
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			resp, err := health.Check(as(t, ""), &healthpb.HealthCheckRequest{Service: classifierv1.ClassifierService_ServiceDesc.ServiceName})
			if err == nil && resp.GetStatus() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health %v (%v), want %v", resp.GetStatus(), err, want)
			}
		}
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING)
	evs := personal("ada", 12)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	// The mail is at the model when the server stops.
	time.Sleep(100 * time.Millisecond)
	srv.Stop()
	waitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	time.Sleep(3 * time.Second)
	srv.Start()
	waitHealth(healthpb.HealthCheckResponse_SERVING)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var classified int
	for ctx.Err() == nil {
		if classified = len(classifiedNow(t, e)); classified == len(evs) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if classified != len(evs) {
		t.Errorf("%d of %d mails classified after the restart", classified, len(evs))
	}
	waitSettled(t, e)
	if dead := deadLetters(t, e); len(dead) > 0 {
		t.Errorf("%d mails dead-lettered, want none", len(dead))
	}
}
