// Package publisher publishes ingest's events to NATS JetStream: each
// received message becomes an eventsv1.MailReceived on
// mail.received.<lane>.<user>, de-duplicated by its Nats-Msg-Id.
package publisher

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/protoenum"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/ingest/internal/mailbox"
	"mailroom.dev/services/ingest/internal/mailparse"
)

// Publisher is a mailbox.Publisher over JetStream.
type Publisher struct {
	js   jetstream.JetStream
	topo eventbus.Topology
}

// New returns a Publisher on js, naming subjects with topo.
func New(js jetstream.JetStream, topo eventbus.Topology) *Publisher {
	return &Publisher{js: js, topo: topo}
}

var _ mailbox.Publisher = (*Publisher)(nil)

// PublishReceived implements mailbox.Publisher: it returns after the
// stream's acknowledgement, which tells whether the message was a duplicate.
func (p *Publisher) PublishReceived(ctx context.Context, r mailbox.Received) (bool, error) {
	ack, err := eventbus.Publish(ctx, p.js, p.topo.ReceivedSubject(string(r.Lane), r.User), r.DedupID(), Event(r))
	if errors.Is(err, eventbus.ErrStreamFull) {
		return false, fmt.Errorf("%w: %w", mailbox.ErrQueueFull, err)
	}
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

// PurgeUser implements mailbox.EventPurger: it deletes the user's
// received events, in every lane, from the stream, and returns how many
// there were; the user's mail.batch events (which name its messages) go
// too, uncounted.
func (p *Publisher) PurgeUser(ctx context.Context, user string) (int64, error) {
	n, err := eventbus.PurgeSubject(ctx, p.js, p.topo.ReceivedStreamName(), p.topo.ReceivedOfUser(user))
	if err != nil {
		return n, err
	}
	if _, err := eventbus.PurgeSubject(ctx, p.js, p.topo.BatchStreamName(), p.topo.BatchSubject(user)); err != nil {
		return n, err
	}
	return n, nil
}

// Event is the MailReceived event of r.
func Event(r mailbox.Received) *eventsv1.MailReceived {
	e := &eventsv1.MailReceived{
		User:              r.User,
		Mailbox:           resname.Mailbox(r.User, r.MailboxID),
		Message:           resname.Message(r.User, r.MessageID),
		ProviderMessageId: r.ProviderMessageID,
		Lane:              protoenum.Lane(string(r.Lane)),
		Content:           Normalized(r.Content),
		IngestTime:        timestamppb.New(r.IngestTime),
	}
	if r.SyncJobID != "" {
		e.SyncJob = resname.SyncJob(r.User, r.SyncJobID)
	}
	return e
}

// Normalized is the protobuf form of a parsed message.
func Normalized(m *mailparse.Message) *mailv1.NormalizedMessage {
	if m == nil {
		return nil
	}
	out := &mailv1.NormalizedMessage{
		MessageIdHeader: m.MessageID,
		Subject:         m.Subject,
		From:            m.From,
		FromAddress:     m.FromAddress,
		To:              m.To,
		Cc:              m.Cc,
		ReceivedTime:    timestamppb.New(m.Date),
		TextBody:        m.TextBody,
		Snippet:         m.Snippet,
		SizeBytes:       m.Size,
		HasCalendar:     m.HasCalendar,
		ContentHash:     m.ContentHash,
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, &mailv1.Header{Name: h.Name, Value: h.Value})
	}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, &mailv1.Attachment{Filename: a.Filename, ContentType: a.ContentType, SizeBytes: a.Size})
	}
	return out
}
