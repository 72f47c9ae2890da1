// Package consumer is the classifier's JetStream adapter: a durable pull
// consumer on the mail.received stream that classifies each event, publishes
// mail.classified, waits for that publish to be stored, and only then
// acknowledges the received event (DoubleAck). Redelivery is therefore
// normal; the classified event's de-duplication id and the store's unique
// key make it harmless.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/breaker"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/protoconv"
)

// Classifier is what the consumer needs from the domain: a verdict for a
// request, or an error when none can be reached now.
type Classifier interface {
	Classify(ctx context.Context, req classify.Request) (classify.Verdict, error)
}

// Config configures a Consumer. Zero fields take the defaults named.
type Config struct {
	Topology eventbus.Topology
	// Lane is the lane whose events this consumer takes ("live",
	// "backfill", "interactive"); each lane has its own durable consumer,
	// so that a backlog in one lane never holds back delivery in another.
	// Empty takes every lane.
	Lane string
	// Durable is the consumer's name (default "classifier-<lane>").
	Durable string
	// Workers bounds how many events are processed at once (default 8).
	Workers int
	// AckWait is how long the server waits for an ack before redelivering
	// (default 30 s); work in progress is kept alive before it runs out.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one event (default 10).
	MaxDeliver int
	// MaxAckPending bounds the events delivered and not yet acknowledged
	// (default 1000). Delivery stops silently when it is reached.
	MaxAckPending int
	// PublishTimeout bounds the wait for the classified event's PubAck (default 10 s).
	PublishTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight events may finish after the
	// consumer is asked to stop (default 10 s); what is still running is
	// then cancelled and handed back to the server.
	ShutdownTimeout time.Duration
	// Breaker, shared by the lanes, holds events while the database or
	// NATS fails for every event (nil: never).
	Breaker *breaker.Breaker
	// Deleted, when set, is the deletion marker: whether user was deleted
	// at or after since (the mail's ingestion). Such an event is
	// acknowledged and dropped, before it is classified and again before
	// its result is published: nothing of a deleted user is written again.
	Deleted func(ctx context.Context, user string, since time.Time) (bool, error)
	// MeterProvider makes the consumer's instruments
	// (mailroom_classifications_total, mailroom_dead_letters_total); nil
	// means the global one.
	MeterProvider metric.MeterProvider
}

func (c *Config) defaults() {
	if c.Durable == "" {
		c.Durable = "classifier"
		if c.Lane != "" {
			c.Durable += "-" + c.Lane
		}
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1000
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
}

// Consumer consumes mail.received and publishes mail.classified.
type Consumer struct {
	js         jetstream.JetStream
	cfg        Config
	classifier Classifier
	logger     *slog.Logger
	tracer     trace.Tracer
	metrics    *metrics
	// now is the clock of the leases (monotonic: a process stopped with
	// SIGSTOP sees the time it was stopped for).
	now    func() time.Time
	pauses *pauses
	// inProgress sends a keep-alive (msg.InProgress; tests stand in).
	inProgress func(jetstream.Msg) error
}

// New returns a consumer reading through js and classifying with classifier.
func New(js jetstream.JetStream, cfg Config, classifier Classifier, logger *slog.Logger) *Consumer {
	cfg.defaults()
	return &Consumer{
		js:         js,
		cfg:        cfg,
		classifier: classifier,
		logger:     logger.With("component", "consumer", "durable", cfg.Durable),
		tracer:     otel.Tracer(scope),
		metrics:    newMetrics(cfg.MeterProvider),
		now:        time.Now,
		// A pause of a third of AckWait or more, with the keep-alive
		// interval on top, may outlast the AckWait of what was buffered.
		pauses:     newPauses(cfg.AckWait/3, time.Now),
		inProgress: func(m jetstream.Msg) error { return m.InProgress() },
	}
}

// Stream is the stream the consumer reads.
func (c *Consumer) Stream() string { return c.cfg.Topology.ReceivedStreamName() }

// ConsumerConfig is the durable consumer's configuration.
func (c *Consumer) ConsumerConfig() jetstream.ConsumerConfig {
	filter := c.cfg.Topology.ReceivedAll()
	if c.cfg.Lane != "" {
		filter = c.cfg.Topology.ReceivedLane(c.cfg.Lane)
	}
	return jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		Description:   "mailroom classifier: mail.received → mail.classified",
		FilterSubject: filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    c.cfg.MaxDeliver,
		MaxAckPending: c.cfg.MaxAckPending,
	}
}

// Ensure creates the durable consumer, or updates its configuration.
func (c *Consumer) Ensure(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.Stream(), c.ConsumerConfig())
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", c.cfg.Durable, c.Stream(), err)
	}
	return cons, nil
}

// Run consumes until ctx is done, then stops taking events, hands back the
// ones fetched but not started, lets in-flight ones finish for up to the
// shutdown timeout, and returns nil. It returns an error only when it
// cannot consume at all (the connection is closed).
func (c *Consumer) Run(ctx context.Context) error {
	// Work outlives ctx by up to ShutdownTimeout, so that an event being
	// published when the stop comes is finished and acknowledged.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.cfg.Workers)

	beat := make(chan struct{})
	defer close(beat)
	go c.pauses.run(min(time.Second, c.pauses.gap/10), beat)

	err := c.consume(ctx, work, sem, &wg)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.ShutdownTimeout):
		c.logger.Warn("in-flight events did not finish in time; handing them back", "timeout", c.cfg.ShutdownTimeout.String())
		cancelWork()
		<-done
	}
	return err
}

// consume runs message iterators until ctx is done, making a new one (and
// re-creating the consumer) when one ends by itself: the consumer was
// deleted, or the server restarted without its state.
func (c *Consumer) consume(ctx, work context.Context, sem chan struct{}, wg *sync.WaitGroup) error {
	backoff := 100 * time.Millisecond
	for {
		cons, err := c.Ensure(ctx)
		opened := c.pauses.opened()
		if err == nil {
			var it jetstream.MessagesContext
			// Fetching no more than the workers can take keeps events
			// from waiting in this process while another replica is idle.
			//
			// Heartbeats every 2 s let the iterator notice within
			// seconds that the consumer has gone (deleted, or lost with
			// its server) and pull again from the one that replaces it.
			it, err = cons.Messages(jetstream.PullMaxMessages(c.cfg.Workers),
				jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second))
			if err == nil {
				stop := context.AfterFunc(ctx, it.Drain)
				err = c.loop(ctx, work, it, opened, sem, wg)
				stop()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errPaused) {
			continue
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) || c.js.Conn().IsClosed() {
			return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
		}
		c.logger.Warn("consuming stopped; starting again", "error", err.Error(), "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// errPaused ends an iterator that was open while the process paused.
var errPaused = errors.New("the process paused; the iterator's deliveries may belong to another consumer")

// loop takes events from it (opened at opened) and hands each to a worker,
// taking one only when a worker is free. When ctx is done (it is being
// drained) it hands the events left in the buffer back to the server. When
// the process paused since the iterator was opened it ends the iterator
// (errPaused; see dropStale).
func (c *Consumer) loop(ctx, work context.Context, it jetstream.MessagesContext, opened time.Time, sem chan struct{}, wg *sync.WaitGroup) error {
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			c.handBack(it)
			return nil
		}
		msg, err := it.Next()
		if err != nil {
			<-sem
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return err
			}
			// Missed heartbeats and reconnects are repaired by the
			// iterator itself; a terminal error closes it and the next
			// call reports that.
			c.logger.Debug("next event", "error", err.Error())
			continue
		}
		start, paused := c.pauses.start(opened)
		l := newLease(start, c.cfg.AckWait, c.now)
		if paused {
			<-sem
			c.dropStale(it, msg, l)
			return errPaused
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.handle(ctx, work, msg, l)
		}()
	}
}

// dropStale ends an iterator that was open while the process paused
// (stopped, or starved of CPU): the deliveries it buffered, msg first, may
// have outlived their AckWait meanwhile, and the server has given them, or
// will give them, to another consumer. When the pause was short enough for
// them to be still ours (l, the lease of msg, holds) they are handed back
// for a prompt redelivery; otherwise they are left alone, neither acked
// nor naked: a Nak would deliver them yet again, to a third consumer.
func (c *Consumer) dropStale(it jetstream.MessagesContext, msg jetstream.Msg, l *lease) {
	it.Drain()
	msgs := []jetstream.Msg{msg}
	for {
		m, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	ours := l.held()
	if ours {
		for _, m := range msgs {
			_ = m.Nak()
		}
	}
	c.logger.Warn("this process paused while it held deliveries; taking events afresh",
		"deliveries", len(msgs), "handed_back", ours)
}

// handBack Naks every event left in a draining iterator so that it is
// redelivered now (to another replica) rather than after AckWait. The
// delivery was counted when it was made; the Nak adds none.
func (c *Consumer) handBack(it jetstream.MessagesContext) {
	it.Drain()
	n := 0
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break
		}
		_ = msg.Nak()
		n++
	}
	if n > 0 {
		c.logger.Info("handed back unstarted events", "count", n)
	}
}

// handle processes one event. Every path ends in exactly one of: DoubleAck
// (classified and published), Term (the event can never be processed), Nak
// (try again later).
//
// Classification may wait long (for rate-limit capacity or budget); that
// wait ends as soon as the consumer is asked to stop (stop), and the event
// goes back to the server. Publishing and acknowledging run on ctx, which
// outlives the stop by the shutdown timeout, so that finished work is kept.
//
// The delivery is this process's while its lease l holds: once it lapsed
// (the process was stopped or starved past AckWait) the event is another
// consumer's, and this one neither pays the model for it nor hands it
// back (Nak); publishing a verdict it already has stays harmless.
func (c *Consumer) handle(stop, ctx context.Context, msg jetstream.Msg, l *lease) {
	msg = leased{Msg: msg, lease: l}
	var seq, delivered uint64
	if md, err := msg.Metadata(); err == nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	ctx = eventbus.Extract(ctx, msg)
	ctx, span := c.tracer.Start(ctx, "classify mail.received",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(eventbus.Links(ctx)...),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", c.cfg.Topology.ReceivedStreamName()),
			attribute.String("messaging.consumer.group.name", c.cfg.Durable),
			attribute.Int64("messaging.nats.stream_sequence", int64(seq)),
			attribute.Int64("messaging.nats.delivered", int64(delivered)),
		))
	defer span.End()
	log := c.logger.With("stream_seq", seq, "delivered", delivered)

	var ev eventsv1.MailReceived
	if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
		c.term(ctx, span, log, msg, "payload is not a MailReceived event")
		return
	}
	if reason := invalid(&ev); reason != "" {
		c.term(ctx, span, log, msg, reason)
		return
	}
	log = log.With("message", ev.GetMessage())
	if c.dropDeleted(ctx, span, log, msg, &ev, delivered) {
		return
	}

	// A later tier may wait for rate-limit capacity for longer than
	// AckWait; keep the event ours meanwhile, without spending a delivery.
	send := func() error {
		if !c.js.Conn().IsConnected() {
			// Buffered for a reconnect, it may come too late.
			return errNotConnected
		}
		return c.inProgress(msg)
	}
	stopKeepAlive := keepAlive(l, send, c.cfg.AckWait/3)
	defer stopKeepAlive()
	// Asked just before a paid call: still ours? Then keep it ours for a
	// whole AckWait from now, so that the answer, once paid for, has the
	// most time to be recorded before anyone else may take the mail.
	stillOwned := func() bool { return l.renew(send) }

	var (
		v      classify.Verdict
		err    error
		ticket breaker.Ticket
	)
	for {
		// While the database or NATS is down the event waits here, kept
		// alive, without spending a delivery.
		if ticket, err = c.cfg.Breaker.Wait(stop); err != nil {
			_ = msg.Nak()
			return
		}
		cctx, cancel := context.WithCancel(ctx)
		unhook := context.AfterFunc(stop, cancel)
		v, err = c.classifier.Classify(cctx, classify.Request{
			User:       ev.GetUser(),
			ID:         ev.GetMessage(),
			Lane:       protoconv.Lane(ev.GetLane()),
			Message:    protoconv.Message(ev.GetContent()),
			Received:   received(&ev),
			StillOwned: stillOwned,
		})
		unhook()
		cancel()
		if errors.Is(err, classify.ErrNotOwned) {
			// Redelivered to another consumer while this one waited:
			// left to that delivery, unacknowledged.
			ticket.Release()
			span.AddEvent("abandoned: the delivery outlived AckWait")
			log.InfoContext(ctx, "the delivery outlived AckWait (this process was stopped or starved); left to its redelivery")
			return
		}
		if err != nil && stop.Err() != nil {
			// Stopping: hand the event back now, for another replica.
			ticket.Release()
			_ = msg.Nak()
			return
		}
		var giveUp *classify.GiveUpError
		if errors.As(err, &giveUp) {
			ticket.Success()
			break
		}
		if err == nil {
			// The ticket's verdict waits for the publish.
			break
		}
		// Not the mail's fault (the model's own failures are the
		// model breaker's): the database or NATS. Held while they are
		// down, counted as a delivery otherwise.
		if !ticket.Failure() {
			break
		}
		log.WarnContext(ctx, "classification failed while a dependency is down; holding the event", "error", err.Error())
	}
	var giveUp *classify.GiveUpError
	var quota *classify.QuotaError
	switch {
	case errors.As(err, &quota):
		// The user is past a daily quota: the event waits in the stream,
		// not in a worker, until the quota resets (one delivery a day, so
		// MaxDeliver days before it would reach the dead letters).
		span.SetStatus(codes.Error, "over quota")
		log.InfoContext(ctx, "the user is over a daily quota; the event waits for its reset", "quota", quota.Quota, "reset", quota.Reset.UTC().Format(time.RFC3339))
		// Spread the redeliveries a little, so that not all of a user's
		// waiting mail comes back in the same instant.
		jitter := time.Duration(rand.Int64N(int64(min(time.Minute, quota.RetryAfter/10)) + 1))
		if err := msg.NakWithDelay(max(quota.RetryAfter, 0) + jitter); err != nil {
			log.WarnContext(ctx, "nak failed; the event will be redelivered", "error", err.Error())
		}
		return
	case errors.As(err, &giveUp):
		c.deadLetter(ctx, span, log, msg, &ev, delivered, ReasonGaveUp, giveUp.Reason, giveUp.Attempts, giveUp.Usage)
		return
	case err != nil && ctx.Err() == nil && delivered >= uint64(c.cfg.MaxDeliver) && c.cfg.MaxDeliver > 0:
		// The last delivery the server will make: keep the message in the
		// dead letters rather than let it vanish.
		c.deadLetter(ctx, span, log, msg, &ev, delivered, ReasonMaxDeliver, fmt.Sprintf("%d deliveries failed; the last: %v", delivered, err), int(delivered), classify.Usage{})
		return
	case err != nil:
		c.retry(ctx, span, log, msg, delivered, "classify", err)
		return
	}
	span.SetAttributes(
		attribute.String("mailroom.classification.category", v.Category),
		attribute.String("mailroom.classification.rule", v.Rule),
		attribute.Float64("mailroom.classification.confidence", v.Confidence),
	)

	out := &eventsv1.MailClassified{
		User:              ev.GetUser(),
		Mailbox:           ev.GetMailbox(),
		Message:           ev.GetMessage(),
		ProviderMessageId: ev.GetProviderMessageId(),
		Content:           protoconv.WithoutBody(ev.GetContent()),
		Classification:    protoconv.Classification(v),
		Usage:             protoconv.Usage(v.Usage),
		IngestTime:        ev.GetIngestTime(),
		SyncJob:           ev.GetSyncJob(),
	}
	if c.dropDeleted(ctx, span, log, msg, &ev, delivered) {
		return
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
		_, err = eventbus.Publish(pctx, c.js, c.cfg.Topology.ClassifiedSubject(ev.GetUser()), ClassifiedMsgID(ev.GetMessage()), out)
		cancel()
		if err == nil {
			ticket.Success()
			break
		}
		if stop.Err() != nil || !ticket.Failure() {
			c.retry(ctx, span, log, msg, delivered, "publish", err)
			return
		}
		// NATS is down, or the classified stream full: keep the verdict
		// and the event, and publish once it is back.
		log.WarnContext(ctx, "publish failed while NATS is unavailable; holding the event", "error", err.Error())
		if ticket, err = c.cfg.Breaker.Wait(stop); err != nil {
			_ = msg.Nak()
			return
		}
	}
	stopKeepAlive()
	if err := msg.DoubleAck(ctx); err != nil {
		// The classified event is stored; the redelivery that follows
		// publishes a duplicate that the stream and the store absorb.
		log.WarnContext(ctx, "ack failed; the event will be redelivered", "error", err.Error())
		span.RecordError(err)
		return
	}
	c.metrics.classified(ctx, v)
	log.DebugContext(ctx, "classified", "category", v.Category, "rule", v.Rule)
}

// dropDeleted acknowledges and drops ev when its user was deleted after
// the mail came in (the deletion marker), and says so; when the marker
// cannot be read, the event is retried later.
func (c *Consumer) dropDeleted(ctx context.Context, span trace.Span, log *slog.Logger, msg jetstream.Msg, ev *eventsv1.MailReceived, delivered uint64) bool {
	if c.cfg.Deleted == nil {
		return false
	}
	deleted, err := c.cfg.Deleted(ctx, ev.GetUser(), received(ev))
	if err != nil {
		c.retry(ctx, span, log, msg, delivered, "deletion marker", err)
		return true
	}
	if !deleted {
		return false
	}
	log.InfoContext(ctx, "the user is deleted; event dropped")
	if err := msg.DoubleAck(ctx); err != nil {
		log.WarnContext(ctx, "ack failed; the event will be redelivered", "error", err.Error())
	}
	return true
}

// deadLetter publishes the event to the dead letters, then acknowledges it.
// If the publish fails, the event is retried as usual.
func (c *Consumer) deadLetter(ctx context.Context, span trace.Span, log *slog.Logger, msg jetstream.Msg, ev *eventsv1.MailReceived, delivered uint64, kind, reason string, attempts int, usage classify.Usage) {
	if c.dropDeleted(ctx, span, log, msg, ev, delivered) {
		return
	}
	span.SetStatus(codes.Error, "dead-lettered")
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	// The failed attempts were paid for: their usage goes into the ledger.
	dead := &eventsv1.MailDeadLettered{Received: ev, Reason: reason, Attempts: int32(attempts), DeadTime: timestamppb.Now(), Usage: protoconv.Usage(usage)}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	ack, err := eventbus.Publish(pctx, c.js, c.cfg.Topology.DeadLetterSubject(ev.GetUser()), fmt.Sprintf("dead/%s/%d", ev.GetMessage(), seq), dead)
	cancel()
	if err != nil {
		c.retry(ctx, span, log, msg, delivered, "dead-letter publish", err)
		return
	}
	// A duplicate was written and counted before (a lost ack, then a
	// redelivery; or the max-deliveries advisory came first).
	if !ack.Duplicate {
		c.metrics.deadLettered(ctx, kind)
	}
	log.WarnContext(ctx, "message dead-lettered", "reason", reason, "attempts", attempts)
	if err := msg.DoubleAck(ctx); err != nil {
		log.WarnContext(ctx, "ack failed; the event will be redelivered", "error", err.Error())
	}
}

// received is when ingest took the mail in, zero when the event says not.
func received(ev *eventsv1.MailReceived) time.Time {
	if ev.GetIngestTime() == nil {
		return time.Time{}
	}
	return ev.GetIngestTime().AsTime()
}

// ClassifiedMsgID is the Nats-Msg-Id of the classified event of a message.
func ClassifiedMsgID(message string) string { return "classified/" + message }

// invalid returns why ev cannot be processed, or "". The reasons name
// fields, never their content.
func invalid(ev *eventsv1.MailReceived) string {
	if !resname.ValidID(ev.GetUser()) {
		return "user is not a valid user id"
	}
	ids, err := resname.Parse("message", "users/*/messages/*", ev.GetMessage())
	if err != nil {
		return "message is not a message name"
	}
	if ids[0] != ev.GetUser() {
		return "message belongs to another user"
	}
	if ev.GetContent() == nil {
		return "content is missing"
	}
	return ""
}

func (c *Consumer) term(ctx context.Context, span trace.Span, log *slog.Logger, msg jetstream.Msg, reason string) {
	span.SetStatus(codes.Error, reason)
	log.ErrorContext(ctx, "dropping an event that cannot be processed", "reason", reason)
	// Plain Term: NATS 2.9 does not know "+TERM <reason>" and would leave
	// the event pending; the reason is in the log line above.
	if err := msg.Term(); err != nil {
		log.WarnContext(ctx, "term failed", "error", err.Error())
	}
}

// retry hands the event back with a delay growing with its deliveries, or at
// once when the consumer is shutting down.
func (c *Consumer) retry(ctx context.Context, span trace.Span, log *slog.Logger, msg jetstream.Msg, delivered uint64, step string, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, step+" failed")
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	delay := RetryDelay(delivered)
	log.WarnContext(ctx, step+" failed; retrying later", "error", err.Error(), "delay", delay.String())
	if err := msg.NakWithDelay(delay); err != nil {
		log.WarnContext(ctx, "nak failed", "error", err.Error())
	}
}

// RetryDelay is how long an event waits before its next delivery after its
// delivered-th delivery failed: 1 s, 2 s, 4 s, … up to 1 minute.
func RetryDelay(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	if delivered > 7 {
		return time.Minute
	}
	return min(time.Second<<(delivered-1), time.Minute)
}

// errNotConnected: a keep-alive is not sent while NATS is unreachable.
var errNotConnected = errors.New("not connected to NATS")

// leased is a delivery that is not handed back (Nak) once its lease
// lapsed: another consumer has it then, and a Nak would only deliver it a
// third time.
type leased struct {
	jetstream.Msg
	lease *lease
}

func (m leased) Nak() error {
	if !m.lease.held() {
		return nil
	}
	return m.Msg.Nak()
}

func (m leased) NakWithDelay(d time.Duration) error {
	if !m.lease.held() {
		return nil
	}
	return m.Msg.NakWithDelay(d)
}

// keepAlive renews l every interval with send (an InProgress), until the
// lease lapses or the returned function is called (it may be called more
// than once).
func keepAlive(l *lease, send func() error, every time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if !l.renew(send) {
					return
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-stopped })
	}
}
