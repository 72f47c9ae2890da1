// Package webhookqueue carries the store's webhook deliveries through
// JetStream. A durable consumer of mail.classified (store-webhook-fanout)
// turns each verdict into one delivery per ACTIVE webhook of its user,
// published on "<prefix>webhook.deliver.<user>" to the work-queue stream
// WEBHOOK_DELIVERIES (Nats-Msg-Id = the event id, so that a redelivered
// verdict is not queued twice within the de-duplication window), then acks
// the verdict. A second durable consumer (store-webhook-deliveries) POSTs
// each delivery; a failure is Nak'd with an exponential back-off, and a
// delivery that still fails once Policy.RetryFor has passed since it was
// queued, or since its webhook was re-enabled if later, disables its
// webhook. A delivery for a webhook that is gone or
// disabled is dropped.
package webhookqueue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/store/internal/webhook"
)

// Names of the stream and the durable consumers (the stream's gets the
// topology's prefix).
const (
	Stream         = "WEBHOOK_DELIVERIES"
	FanoutDurable  = "store-webhook-fanout"
	DeliverDurable = "store-webhook-deliveries"
	// EventType is the type of every event sent so far.
	EventType = "message.classified"
)

// Options tune the queue.
type Options struct {
	// Policy is how long and how often deliveries are retried.
	Policy webhook.Policy
	// Workers is how many deliveries are attempted at once (default 16).
	Workers int
	// Timeout bounds one attempt; AckWait is set well above it.
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Queue is the fan-out and the delivery consumers.
type Queue struct {
	js       jetstream.JetStream
	topo     eventbus.Topology
	repo     webhook.Repository
	deliver  *webhook.Deliverer
	logger   *slog.Logger
	opts     Options
	fanout   jetstream.Consumer
	delivery jetstream.Consumer
}

// StreamName is the deliveries' stream of topo.
func StreamName(topo eventbus.Topology) string { return topo.BucketName(Stream) }

// Subject is the delivery subject of user's webhooks.
func Subject(topo eventbus.Topology, user string) string {
	return topo.Prefix + "webhook.deliver." + user
}

// New ensures the deliveries' stream and both durable consumers. Nothing
// is consumed before Run.
func New(ctx context.Context, js jetstream.JetStream, topo eventbus.Topology, repo webhook.Repository, d *webhook.Deliverer, logger *slog.Logger, opts Options) (*Queue, error) {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	replicas := max(topo.Replicas, 1)
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName(topo),
		Description: "mailroom store: webhook deliveries waiting for their endpoint",
		Subjects:    []string{topo.Prefix + "webhook.deliver.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
		// Longer than any delivery is retried, so that none expires first.
		MaxAge: max(2*opts.Policy.RetryFor, time.Hour),
	})
	if err != nil {
		return nil, fmt.Errorf("webhookqueue: stream: %w", err)
	}
	q := &Queue{js: js, topo: topo, repo: repo, deliver: d, logger: logger, opts: opts}
	q.fanout, err = js.CreateOrUpdateConsumer(ctx, topo.ClassifiedStreamName(), jetstream.ConsumerConfig{
		Durable:       FanoutDurable,
		Description:   "mailroom store: queues a webhook delivery per verdict",
		FilterSubject: topo.ClassifiedAll(),
		// Webhooks receive what is classified from their first start on,
		// not the stream's history.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("webhookqueue: consumer %s: %w", FanoutDurable, err)
	}
	q.delivery, err = js.CreateOrUpdateConsumer(ctx, StreamName(topo), jetstream.ConsumerConfig{
		Durable:       DeliverDurable,
		Description:   "mailroom store: POSTs webhook deliveries",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       4*opts.Timeout + 10*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 4 * opts.Workers,
	})
	if err != nil {
		return nil, fmt.Errorf("webhookqueue: consumer %s: %w", DeliverDurable, err)
	}
	return q, nil
}

// Run consumes until ctx ends.
func (q *Queue) Run(ctx context.Context) error {
	fan, err := q.fanout.Consume(func(m jetstream.Msg) { q.fan(ctx, m) })
	if err != nil {
		return fmt.Errorf("webhookqueue: consume %s: %w", FanoutDurable, err)
	}
	defer fan.Stop()
	work := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range q.opts.Workers {
		wg.Go(func() {
			for m := range work {
				q.attempt(ctx, m)
			}
		})
	}
	del, err := q.delivery.Consume(func(m jetstream.Msg) {
		select {
		case work <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		close(work)
		wg.Wait()
		return fmt.Errorf("webhookqueue: consume %s: %w", DeliverDurable, err)
	}
	<-ctx.Done()
	del.Stop()
	close(work)
	wg.Wait()
	return nil
}

// EventID is the id of the event of one verdict for one webhook: the same
// for every redelivery of the verdict.
func EventID(webhookName, message string, classifyTime time.Time) string {
	h := sha256.Sum256([]byte(webhookName + "\x00" + message + "\x00" + classifyTime.UTC().Format(time.RFC3339Nano)))
	return "evt_" + hex.EncodeToString(h[:12])
}

// fan queues one delivery per active webhook of the verdict's user.
func (q *Queue) fan(ctx context.Context, m jetstream.Msg) {
	v := &eventsv1.MailClassified{}
	if err := proto.Unmarshal(m.Data(), v); err != nil || !resname.ValidID(v.GetUser()) {
		q.logger.WarnContext(ctx, "webhook fan-out: undecodable verdict dropped")
		_ = m.Term()
		return
	}
	ws, err := q.repo.ListWebhooks(ctx, v.GetUser(), "", webhook.MaxPerUser)
	if err != nil {
		q.logger.ErrorContext(ctx, "webhook fan-out: list webhooks", "error", err.Error())
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	msg := message(v)
	for _, w := range ws {
		if w.State != webhook.StateActive {
			continue
		}
		name := webhook.Name(w.User, w.ID)
		id := EventID(name, v.GetMessage(), v.GetClassification().GetClassifyTime().AsTime())
		ev := &storev1.WebhookEvent{
			Id: id, Type: EventType, Webhook: name, Message: msg,
			CreateTime: timestamppb.New(q.opts.Now()),
		}
		if _, err := eventbus.Publish(ctx, q.js, Subject(q.topo, w.User), id, ev); err != nil {
			q.logger.ErrorContext(ctx, "webhook fan-out: queue delivery", "webhook", name, "error", err.Error())
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
	}
	_ = m.Ack()
}

// message is the store's view of a classified mail, as WatchMessages shows
// it, from the verdict.
func message(v *eventsv1.MailClassified) *storev1.Message {
	c := v.GetContent()
	var attachments []string
	for _, a := range c.GetAttachments() {
		attachments = append(attachments, a.GetFilename())
	}
	return &storev1.Message{
		Name:              v.GetMessage(),
		Mailbox:           v.GetMailbox(),
		ProviderMessageId: v.GetProviderMessageId(),
		Subject:           c.GetSubject(),
		From:              c.GetFrom(),
		To:                c.GetTo(),
		ReceivedTime:      c.GetReceivedTime(),
		Snippet:           c.GetSnippet(),
		SizeBytes:         c.GetSizeBytes(),
		AttachmentNames:   attachments,
		State:             storev1.MessageState_MESSAGE_STATE_CLASSIFIED,
		Classification:    v.GetClassification(),
	}
}

var jsonOut = protojson.MarshalOptions{EmitUnpopulated: true}

// attempt POSTs one delivery and acks, retries or gives up.
func (q *Queue) attempt(ctx context.Context, m jetstream.Msg) {
	ev := &storev1.WebhookEvent{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		_ = m.Term()
		return
	}
	ids, err := resname.Parse("webhook", "users/*/webhooks/*", ev.GetWebhook())
	if err != nil {
		_ = m.Term()
		return
	}
	w, err := q.repo.GetWebhook(ctx, ids[0], ids[1])
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		_ = m.Ack() // deleted: its deliveries go with it
		return
	case err != nil:
		q.logger.ErrorContext(ctx, "webhook delivery: get webhook", "webhook", ev.GetWebhook(), "error", err.Error())
		_ = m.NakWithDelay(5 * time.Second)
		return
	case w.State != webhook.StateActive:
		_ = m.Ack()
		return
	}
	body, err := jsonOut.Marshal(ev)
	if err != nil {
		_ = m.Term()
		return
	}
	actx, cancel := context.WithTimeout(ctx, q.opts.Timeout)
	derr := q.deliver.Deliver(actx, w, ev.GetId(), body)
	cancel()
	now := q.opts.Now()
	errText := ""
	if derr != nil {
		errText = truncate(derr.Error(), 300)
	}
	if err := q.repo.RecordAttempt(ctx, w.User, w.ID, now, errText); err != nil {
		q.logger.WarnContext(ctx, "webhook delivery: record attempt", "webhook", ev.GetWebhook(), "error", err.Error())
	}
	if derr == nil {
		_ = m.Ack()
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		_ = m.NakWithDelay(q.opts.Policy.Backoff(1))
		return
	}
	// The retry period runs from the delivery's queueing, or from the
	// webhook's re-enabling if later: a delivery queued before its user set
	// it ACTIVE again gets a whole period before it disables it again. w
	// was read before the attempt, so Disable checks the re-enabling again.
	cutoff := now.Add(-q.opts.Policy.RetryFor)
	if !latest(meta.Timestamp, w.EnableTime).After(cutoff) {
		reason := fmt.Sprintf("deliveries failed for %s (last error: %s)", q.opts.Policy.RetryFor, errText)
		disabled, err := q.repo.Disable(ctx, w.User, w.ID, reason, cutoff)
		if err != nil {
			q.logger.ErrorContext(ctx, "webhook delivery: disable", "webhook", ev.GetWebhook(), "error", err.Error())
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
		if !disabled { // re-enabled (or deleted) during the attempt
			q.logger.InfoContext(ctx, "webhook delivery failed; will retry (the webhook was re-enabled meanwhile)",
				"webhook", ev.GetWebhook(), "event", ev.GetId(), "attempt", meta.NumDelivered, "error", errText)
			_ = m.NakWithDelay(q.opts.Policy.Backoff(int(meta.NumDelivered)))
			return
		}
		q.logger.WarnContext(ctx, "webhook disabled after failing for the whole retry period",
			"webhook", ev.GetWebhook(), "event", ev.GetId(), "attempts", meta.NumDelivered, "error", errText)
		_ = m.Term()
		return
	}
	q.logger.InfoContext(ctx, "webhook delivery failed; will retry", "webhook", ev.GetWebhook(), "event", ev.GetId(),
		"attempt", meta.NumDelivered, "error", errText)
	_ = m.NakWithDelay(q.opts.Policy.Backoff(int(meta.NumDelivered)))
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
