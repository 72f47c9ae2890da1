package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
)

// Advisories turns JetStream's max-deliveries advisories about the
// mail.received stream into dead letters. A mail whose last delivery fails
// in a way the consumer cannot see (the process crashed or was stopped,
// AckWait ran out, the dead-letter publish itself failed) is not lost and
// does not stay pending: the server gives up on it and says so, the
// advisory stream keeps what it said, and this worker copies the mail to
// the dead letters, where it can be listed and replayed and the store
// marks it FAILED.
type Advisories struct {
	js     jetstream.JetStream
	topo   eventbus.Topology
	logger *slog.Logger
	// Counted, when set, is called for each dead letter written (not for
	// one the consumer had written already): the dead-letter metric.
	Counted func(ctx context.Context)
}

// NewAdvisories returns the worker.
func NewAdvisories(js jetstream.JetStream, topo eventbus.Topology, logger *slog.Logger) *Advisories {
	return &Advisories{js: js, topo: topo, logger: logger.With("component", "max-deliveries")}
}

// ConsumerConfig is the worker's durable consumer of the advisory stream.
// It never gives up on an advisory.
func (a *Advisories) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       eventbus.DeadLetterDurable,
		Description:   "mailroom classifier: max-deliveries advisories → mail.dead",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 100,
	}
}

// Run handles advisories until ctx is done.
func (a *Advisories) Run(ctx context.Context) error {
	stream := a.topo.AdvisoryStreamName()
	for ctx.Err() == nil {
		cons, err := a.js.CreateOrUpdateConsumer(ctx, stream, a.ConsumerConfig())
		if err != nil {
			if ctx.Err() == nil {
				a.logger.WarnContext(ctx, "advisory consumer unavailable; retrying", "error", err.Error())
				sleep(ctx, 2*time.Second)
			}
			continue
		}
		for ctx.Err() == nil {
			batch, err := cons.Fetch(50, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				if ctx.Err() == nil {
					a.logger.WarnContext(ctx, "fetching advisories failed", "error", err.Error())
					sleep(ctx, time.Second)
				}
				break
			}
			for m := range batch.Messages() {
				a.handle(context.WithoutCancel(ctx), m)
			}
		}
	}
	return nil
}

// handle dead-letters the mail one advisory names, then acknowledges the
// advisory; a failure leaves the advisory to come back.
func (a *Advisories) handle(ctx context.Context, m jetstream.Msg) {
	var adv eventbus.MaxDeliveries
	if err := json.Unmarshal(m.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		a.logger.ErrorContext(ctx, "advisory not understood; dropped")
		_ = m.Term()
		return
	}
	log := a.logger.With("stream_seq", adv.StreamSeq, "consumer", adv.Consumer, "deliveries", adv.Deliveries)
	stream, err := a.js.Stream(ctx, a.topo.ReceivedStreamName())
	var raw *jetstream.RawStreamMsg
	if err == nil {
		raw, err = stream.GetMsg(ctx, adv.StreamSeq)
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Deleted with its user, or purged: nothing is left to keep.
		log.WarnContext(ctx, "the mail of a max-deliveries advisory is gone from the stream")
		a.ack(ctx, log, m)
		return
	}
	if err != nil {
		log.WarnContext(ctx, "reading the mail of an advisory failed; retrying later", "error", err.Error())
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	var ev eventsv1.MailReceived
	if err := proto.Unmarshal(raw.Data, &ev); err != nil || ev.GetUser() == "" {
		log.ErrorContext(ctx, "the mail of a max-deliveries advisory is not a MailReceived event; dropped")
		a.ack(ctx, log, m)
		return
	}
	dead := &eventsv1.MailDeadLettered{
		Received: &ev,
		Reason:   fmt.Sprintf("none of its %d deliveries was acknowledged (a crash, a shutdown or a timeout during the last)", adv.Deliveries),
		Attempts: int32(adv.Deliveries),
		DeadTime: timestamppb.Now(),
	}
	// The id the consumer gives the dead letter of a last delivery, so
	// that both never make two.
	ack, err := eventbus.Publish(ctx, a.js, a.topo.DeadLetterSubject(ev.GetUser()), MsgID(ev.GetMessage(), adv.StreamSeq), dead)
	if err != nil {
		log.WarnContext(ctx, "dead-letter publish failed; retrying later", "error", err.Error())
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	if ack.Duplicate {
		// The consumer wrote (and counted) it, then its ack was lost;
		// or this advisory came back after its own ack was lost.
		log.InfoContext(ctx, "the mail of a max-deliveries advisory is in the dead letters already", "message", ev.GetMessage())
	} else {
		log.WarnContext(ctx, "message dead-lettered after its last delivery failed", "message", ev.GetMessage())
		if a.Counted != nil {
			a.Counted(ctx)
		}
	}
	a.ack(ctx, log, m)
}

func (a *Advisories) ack(ctx context.Context, log *slog.Logger, m jetstream.Msg) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		log.WarnContext(ctx, "advisory ack failed; it will come back", "error", err.Error())
	}
}

// MsgID is the Nats-Msg-Id of the dead letter of the received event at
// stream sequence seq.
func MsgID(message string, seq uint64) string { return fmt.Sprintf("dead/%s/%d", message, seq) }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
