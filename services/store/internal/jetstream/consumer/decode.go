package consumer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/protoenum"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/store/internal/mailstore"
)

// Decoding errors name what is wrong, never a value: they are logged.

func decodeReceived(m jetstream.Msg) (mailstore.Message, error) {
	var ev eventsv1.MailReceived
	if err := proto.Unmarshal(m.Data(), &ev); err != nil {
		return mailstore.Message{}, fmt.Errorf("unmarshal MailReceived: %w", err)
	}
	msg, err := message(ev.GetUser(), ev.GetMessage(), ev.GetMailbox(), ev.GetProviderMessageId(), ev.GetContent())
	if err != nil {
		return mailstore.Message{}, fmt.Errorf("MailReceived: %w", err)
	}
	msg.Body = ev.GetContent().GetTextBody()
	msg.ReceivedTime = firstTime(ev.GetContent().GetReceivedTime(), ev.GetIngestTime(), m)
	msg.IngestTime = firstTime(ev.GetIngestTime(), nil, m)
	return msg, nil
}

// maxReason bounds the stored reason of a dead letter.
const maxReason = 500

func decodeDead(m jetstream.Msg) (mailstore.Failed, error) {
	var ev eventsv1.MailDeadLettered
	if err := proto.Unmarshal(m.Data(), &ev); err != nil {
		return mailstore.Failed{}, fmt.Errorf("unmarshal MailDeadLettered: %w", err)
	}
	r := ev.GetReceived()
	if r == nil {
		return mailstore.Failed{}, errors.New("MailDeadLettered: no MailReceived")
	}
	msg, err := message(r.GetUser(), r.GetMessage(), r.GetMailbox(), r.GetProviderMessageId(), r.GetContent())
	if err != nil {
		return mailstore.Failed{}, fmt.Errorf("MailDeadLettered: %w", err)
	}
	msg.Body = r.GetContent().GetTextBody()
	msg.ReceivedTime = firstTime(r.GetContent().GetReceivedTime(), r.GetIngestTime(), m)
	msg.IngestTime = firstTime(r.GetIngestTime(), nil, m)
	reason := strings.ToValidUTF8(ev.GetReason(), "")
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "")
	}
	return mailstore.Failed{
		Message:  msg,
		Reason:   reason,
		FailTime: firstTime(ev.GetDeadTime(), nil, m),
		Cost:     cost(ev.GetUsage(), ""),
	}, nil
}

func decodeClassified(m jetstream.Msg) (mailstore.Classified, error) {
	var ev eventsv1.MailClassified
	if err := proto.Unmarshal(m.Data(), &ev); err != nil {
		return mailstore.Classified{}, fmt.Errorf("unmarshal MailClassified: %w", err)
	}
	msg, err := message(ev.GetUser(), ev.GetMessage(), ev.GetMailbox(), ev.GetProviderMessageId(), ev.GetContent())
	if err != nil {
		return mailstore.Classified{}, fmt.Errorf("MailClassified: %w", err)
	}
	msg.ReceivedTime = firstTime(ev.GetContent().GetReceivedTime(), ev.GetIngestTime(), m)
	msg.IngestTime = firstTime(ev.GetIngestTime(), nil, m)
	c := ev.GetClassification()
	if c == nil || strings.TrimSpace(c.GetCategory()) == "" {
		return mailstore.Classified{}, errors.New("MailClassified: no classification category")
	}
	msg.Classification = &mailstore.Classification{
		Category:     c.GetCategory(),
		Confidence:   c.GetConfidence(),
		Priority:     mailstore.Priority(protoenum.PriorityName(c.GetPriority())),
		NeedsReply:   c.GetNeedsReply(),
		Reason:       c.GetReason(),
		Source:       mailstore.Source(protoenum.SourceName(c.GetSource())),
		Rule:         c.GetRule(),
		Model:        c.GetModel(),
		ClassifyTime: timeOf(c.GetClassifyTime()),
	}
	return mailstore.Classified{Message: msg, Cost: cost(ev.GetUsage(), c.GetModel())}, nil
}

// cost is an event's usage. An event from before usage was split by model
// puts all of it on model (the verdict's), or on "unknown".
func cost(u *eventsv1.Usage, model string) mailstore.Cost {
	c := mailstore.Cost{
		PromptTokens:       u.GetPromptTokens(),
		CompletionTokens:   u.GetCompletionTokens(),
		CachedPromptTokens: u.GetCachedPromptTokens(),
		CostMicros:         u.GetCostMicros(),
		Requests:           u.GetRequests(),
	}
	for _, m := range u.GetModels() {
		c.Models = append(c.Models, mailstore.ModelCost{
			Model:              m.GetModel(),
			PromptTokens:       m.GetPromptTokens(),
			CompletionTokens:   m.GetCompletionTokens(),
			CachedPromptTokens: m.GetCachedPromptTokens(),
			CostMicros:         m.GetCostMicros(),
			Requests:           m.GetRequests(),
			Batch:              m.GetBatch(),
		})
	}
	if len(c.Models) == 0 && (c.Requests > 0 || c.CostMicros > 0) {
		if model == "" {
			model = "unknown"
		}
		c.Models = []mailstore.ModelCost{{Model: model, PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens,
			CachedPromptTokens: c.CachedPromptTokens, CostMicros: c.CostMicros, Requests: c.Requests}}
	}
	return c
}

// message checks an event's names, which must agree on the user, and
// copies the content's metadata.
func message(user, name, mailbox, providerID string, c *mailv1.NormalizedMessage) (mailstore.Message, error) {
	ids, err := resname.Parse("message", "users/*/messages/*", name)
	if err != nil {
		return mailstore.Message{}, errors.New("message is not a name of the form users/{user}/messages/{message}")
	}
	mids, err := resname.Parse("mailbox", "users/*/mailboxes/*", mailbox)
	if err != nil {
		return mailstore.Message{}, errors.New("mailbox is not a name of the form users/{user}/mailboxes/{mailbox}")
	}
	if user == "" {
		user = ids[0]
	}
	if ids[0] != user || mids[0] != user {
		return mailstore.Message{}, errors.New("user, message and mailbox name different users")
	}
	attachments := make([]string, 0, len(c.GetAttachments()))
	for _, a := range c.GetAttachments() {
		attachments = append(attachments, a.GetFilename())
	}
	return mailstore.Message{
		User:              user,
		ID:                ids[1],
		MailboxID:         mids[1],
		ProviderMessageID: providerID,
		Subject:           c.GetSubject(),
		From:              c.GetFrom(),
		FromAddress:       c.GetFromAddress(),
		To:                c.GetTo(),
		Snippet:           c.GetSnippet(),
		SizeBytes:         c.GetSizeBytes(),
		AttachmentNames:   attachments,
	}, nil
}

// firstTime is the first of the times given that is set (for a received
// time: the mail's date, else when ingest accepted it), else when the stream
// stored the event.
func firstTime(received, ingested *timestamppb.Timestamp, m jetstream.Msg) time.Time {
	for _, ts := range []*timestamppb.Timestamp{received, ingested} {
		if ts != nil && ts.IsValid() && (ts.GetSeconds() != 0 || ts.GetNanos() != 0) {
			return ts.AsTime()
		}
	}
	if md, err := m.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Now()
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || !ts.IsValid() {
		return time.Time{}
	}
	return ts.AsTime()
}
