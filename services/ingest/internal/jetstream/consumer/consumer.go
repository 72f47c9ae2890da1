// Package consumer keeps ingest's sync job progress from the classifier's
// events, with two durable JetStream pull consumers:
//
//   - on mail.classified, each classified message that a sync job
//     published counts once in that job's progress (SyncProgress.classified);
//   - on mail.batch, the messages entering an OpenAI batch or leaving one
//     for the realtime path move in and out of their jobs' batched count
//     (SyncProgress.batched).
//
// Both ack explicitly (DoubleAck) after the change is committed. The
// repository keeps per-message state (classified once; a batch state that
// only moves forward in event time), so a redelivered event changes
// nothing.
//
// A circuit breaker (platform/breaker), shared by the two, holds the
// events while the database fails every write: the event in hand is kept
// alive (InProgress) and tried again once the breaker lets it, so an
// outage does not use up the events' deliveries (MaxDeliver) and lose
// their counts.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/breaker"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailbox"
)

// Durable is the consumer's durable name on the classified stream.
const Durable = "ingest-progress"

// BatchDurable is the consumer's durable name on the batch stream.
const BatchDurable = "ingest-batch"

// Counter counts a job's messages as they are classified, or wait in a batch.
type Counter interface {
	CountClassified(ctx context.Context, user, mailboxID, providerMessageID, job string) error
	CountBatched(ctx context.Context, user string, messageIDs []string, entered bool, at time.Time) error
}

// ackWait is both consumers' AckWait; a held event is kept alive at a
// third of it.
const ackWait = 30 * time.Second

// Consumer is the running pair of consumers.
type Consumer struct {
	cons, batch jetstream.Consumer
	counter     Counter
	breaker     *breaker.Breaker
	nakDelay    time.Duration
	logger      *slog.Logger
}

// Options configure New; zero fields take the defaults named.
type Options struct {
	// Breaker holds the events while every write fails (the database is
	// down); nil: a breaker of its own that opens after three failures in
	// a row and probes at least every 5 s.
	Breaker *breaker.Breaker
	// NakDelay is the redelivery delay of an event that failed on its own
	// (default 1 s).
	NakDelay time.Duration
}

// Config is the classified durable consumer's configuration. It delivers
// only events published from its creation on: older ones belong to no job
// running now (and a consumer re-created after it vanished skips what was
// published meanwhile: those mails are classified and stored, only the
// jobs' progress counts miss them).
func Config(topo eventbus.Topology) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       Durable,
		Description:   "mailroom ingest: counts classified messages in their sync jobs",
		FilterSubject: topo.ClassifiedAll(),
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    10,
		MaxAckPending: 5000,
	}
}

// BatchConfig is the batch durable consumer's configuration. It delivers
// the whole stream (seven days): the classifier may put mail in a batch
// before ingest first started, and an old event, applied again, changes
// nothing.
func BatchConfig(topo eventbus.Topology) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       BatchDurable,
		Description:   "mailroom ingest: counts the messages waiting in OpenAI batches in their sync jobs",
		FilterSubject: topo.BatchAll(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    10,
		MaxAckPending: 1000,
	}
}

// New creates (or updates) the durable consumers.
func New(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, counter Counter, logger *slog.Logger, opts Options) (*Consumer, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, topo.ClassifiedStreamName(), Config(topo))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", Durable, err)
	}
	batch, err := js.CreateOrUpdateConsumer(ctx, topo.BatchStreamName(), BatchConfig(topo))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", BatchDurable, err)
	}
	if opts.Breaker == nil {
		opts.Breaker = breaker.New(breaker.Config{Threshold: 3, MaxCooldown: 5 * time.Second, OnChange: func(open bool) {
			if open {
				logger.Warn("sync job progress failing for every event (database): circuit breaker open, events held", "consumer", Durable)
			} else {
				logger.Info("sync job progress counting again: circuit breaker closed", "consumer", Durable)
			}
		}})
	}
	if opts.NakDelay <= 0 {
		opts.NakDelay = time.Second
	}
	return &Consumer{cons: cons, batch: batch, counter: counter, breaker: opts.Breaker, nakDelay: opts.NakDelay, logger: logger}, nil
}

// Run consumes both streams until ctx is done.
func (c *Consumer) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx, c.batch, BatchDurable, c.applyBatched)
	}()
	c.run(ctx, c.cons, Durable, c.applyClassified)
	<-done
	return nil
}

// run fetches from cons until ctx is done, applying each event in turn: a
// trickle at once, a flood 200 at a time.
func (c *Consumer) run(ctx context.Context, cons jetstream.Consumer, durable string, apply func(context.Context, jetstream.Msg) error) {
	for ctx.Err() == nil {
		msgs, err := fetch(ctx, cons)
		if err != nil && ctx.Err() == nil {
			c.logger.WarnContext(ctx, "fetch failed", "consumer", durable, "error", err.Error())
			sleep(ctx, time.Second)
		}
		if len(msgs) == 0 {
			continue
		}
		// The events in hand stay alive while one of them is held.
		var next atomic.Int64
		stop := keepAlive(msgs, &next, ackWait/3)
		for i, msg := range msgs {
			next.Store(int64(i))
			c.handle(ctx, msg, durable, apply)
		}
		stop()
	}
}

func fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	first, err := cons.Fetch(1, jetstream.FetchContext(wctx))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range first.Messages() {
		msgs = append(msgs, m)
	}
	if err := first.Error(); err != nil && !eventbus.IsTimeout(err) && !errors.Is(err, context.Canceled) {
		return msgs, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	rest, err := cons.FetchNoWait(199)
	if err != nil {
		return msgs, nil
	}
	for m := range rest.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// errUndecodable marks an event that redelivery cannot fix.
var errUndecodable = errors.New("undecodable event")

// handle applies one event under the breaker: a failure while the
// database is down holds the event and tries it again after the breaker
// lets it, without spending a delivery.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg, durable string, apply func(context.Context, jetstream.Msg) error) {
	for {
		ticket, err := c.breaker.Wait(ctx)
		if err != nil {
			_ = msg.Nak() // shutting down: the next run takes it
			return
		}
		err = apply(context.WithoutCancel(ctx), msg)
		switch {
		case err == nil:
			ticket.Success()
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := msg.DoubleAck(actx); err != nil {
				c.logger.WarnContext(ctx, "ack failed", "consumer", durable, "error", err.Error())
			}
			cancel()
			return
		case errors.Is(err, errUndecodable):
			ticket.Release()
			c.logger.ErrorContext(ctx, "undecodable event terminated", "consumer", durable, "error", err.Error())
			_ = msg.Term()
			return
		case errors.Is(err, mailbox.ErrNotRecorded):
			// The database answered: the classifier outran the
			// publisher's bookkeeping.
			ticket.Success()
			c.logger.DebugContext(ctx, "event not counted yet", "consumer", durable, "error", err.Error())
			_ = msg.NakWithDelay(c.nakDelay)
			return
		}
		if ticket.Failure() {
			c.logger.WarnContext(ctx, "event held: the database is failing", "consumer", durable, "error", err.Error())
			continue
		}
		c.logger.WarnContext(ctx, "event not counted; redelivering it", "consumer", durable, "error", err.Error())
		_ = msg.NakWithDelay(c.nakDelay)
		return
	}
}

// applyClassified counts a MailClassified in its sync job.
func (c *Consumer) applyClassified(ctx context.Context, msg jetstream.Msg) error {
	var e eventsv1.MailClassified
	if err := proto.Unmarshal(msg.Data(), &e); err != nil {
		return fmt.Errorf("%w: %w", errUndecodable, err)
	}
	if e.GetSyncJob() == "" {
		return nil
	}
	mb, merr := resname.Parse("mailbox", "users/*/mailboxes/*", e.GetMailbox())
	job, jerr := resname.Parse("sync_job", "users/*/syncJobs/*", e.GetSyncJob())
	if merr != nil || jerr != nil {
		return nil
	}
	return c.counter.CountClassified(ctx, mb[0], mb[1], e.GetProviderMessageId(), job[1])
}

// applyBatched moves a MailBatched's messages in or out of their jobs'
// batched count. Only the event's user's messages are touched.
func (c *Consumer) applyBatched(ctx context.Context, msg jetstream.Msg) error {
	var e eventsv1.MailBatched
	if err := proto.Unmarshal(msg.Data(), &e); err != nil {
		return fmt.Errorf("%w: %w", errUndecodable, err)
	}
	var entered bool
	switch e.GetState() {
	case eventsv1.MailBatched_STATE_ENTERED:
		entered = true
	case eventsv1.MailBatched_STATE_LEFT:
	default:
		return fmt.Errorf("%w: batch state %d", errUndecodable, e.GetState())
	}
	if e.GetUser() == "" || !e.GetEventTime().IsValid() {
		return fmt.Errorf("%w: no user or event time", errUndecodable)
	}
	ids := make([]string, 0, len(e.GetMessages()))
	for _, name := range e.GetMessages() {
		m, err := resname.Parse("message", "users/*/messages/*", name)
		if err != nil || m[0] != e.GetUser() {
			continue
		}
		ids = append(ids, m[1])
	}
	if len(ids) == 0 {
		return nil
	}
	return c.counter.CountBatched(ctx, e.GetUser(), ids, entered, e.GetEventTime().AsTime())
}

// keepAlive tells the server every interval that msgs from *next on
// (those not handled yet) are in progress, until the returned function is
// called.
func keepAlive(msgs []jetstream.Msg, next *atomic.Int64, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs[next.Load():] {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
