// Package consumer reads the mail.classified stream for ingest: each
// classified message that a sync job published counts once in that job's
// progress (SyncProgress.classified). It is a durable JetStream pull
// consumer with explicit acks, acknowledged (DoubleAck) after the count is
// committed; a redelivered event finds the message counted and changes
// nothing.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailbox"
)

// Durable is the consumer's durable name on the classified stream.
const Durable = "ingest-progress"

// Counter counts a classified message of a mailbox in its sync job.
type Counter interface {
	CountClassified(ctx context.Context, user, mailboxID, providerMessageID, job string) error
}

// Consumer is the running consumer.
type Consumer struct {
	cons    jetstream.Consumer
	counter Counter
	logger  *slog.Logger
}

// Config is the durable consumer's configuration. It delivers only events
// published from its creation on: older ones belong to no job running now
// (and a consumer re-created after it vanished skips what was published
// meanwhile: those mails are classified and stored, only the jobs'
// progress counts miss them).
func Config(topo eventbus.Topology) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       Durable,
		Description:   "mailroom ingest: counts classified messages in their sync jobs",
		FilterSubject: topo.ClassifiedAll(),
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    10,
		MaxAckPending: 5000,
	}
}

// New creates (or updates) the durable consumer.
func New(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, counter Counter, logger *slog.Logger) (*Consumer, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, topo.ClassifiedStreamName(), Config(topo))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", Durable, err)
	}
	return &Consumer{cons: cons, counter: counter, logger: logger}, nil
}

// Run consumes until ctx is done.
func (c *Consumer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		batch, err := c.cons.Fetch(200, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			if ctx.Err() == nil {
				c.logger.WarnContext(ctx, "fetch failed", "consumer", Durable, "error", err.Error())
				sleep(ctx, time.Second)
			}
			continue
		}
		for msg := range batch.Messages() {
			c.handle(context.WithoutCancel(ctx), msg)
		}
		if err := batch.Error(); err != nil && !eventbus.IsTimeout(err) && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			c.logger.WarnContext(ctx, "fetch ended early", "consumer", Durable, "error", err.Error())
		}
	}
	return nil
}

func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	var e eventsv1.MailClassified
	if err := proto.Unmarshal(msg.Data(), &e); err != nil {
		c.logger.ErrorContext(ctx, "undecodable event terminated", "consumer", Durable, "error", err.Error())
		_ = msg.Term()
		return
	}
	if e.GetSyncJob() != "" {
		mb, merr := resname.Parse("mailbox", "users/*/mailboxes/*", e.GetMailbox())
		job, jerr := resname.Parse("sync_job", "users/*/syncJobs/*", e.GetSyncJob())
		if merr == nil && jerr == nil {
			if err := c.counter.CountClassified(ctx, mb[0], mb[1], e.GetProviderMessageId(), job[1]); err != nil {
				level := slog.LevelWarn
				if errors.Is(err, mailbox.ErrNotRecorded) {
					// The classifier outran the publisher's bookkeeping.
					level = slog.LevelDebug
				}
				c.logger.Log(ctx, level, "classified event not counted yet", "consumer", Durable, "error", err.Error())
				_ = msg.NakWithDelay(time.Second)
				return
			}
		}
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		c.logger.WarnContext(ctx, "ack failed", "consumer", Durable, "error", err.Error())
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
