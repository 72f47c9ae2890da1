// Package protoconv converts between the generated protobuf types (mail and
// events) and the classify domain, for the adapters that speak protobuf.
package protoconv

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/protoenum"
	"mailroom.dev/services/classifier/internal/classify"
)

// Message returns the domain message of a normalized message.
func Message(m *mailv1.NormalizedMessage) classify.Message {
	out := classify.Message{
		Subject:     m.GetSubject(),
		From:        m.GetFrom(),
		FromAddress: m.GetFromAddress(),
		Body:        m.GetTextBody(),
		HasCalendar: m.GetHasCalendar(),
		ContentHash: m.GetContentHash(),
	}
	for _, h := range m.GetHeaders() {
		out.Headers = append(out.Headers, classify.Header{Name: h.GetName(), Value: h.GetValue()})
	}
	for _, a := range m.GetAttachments() {
		out.Attachments = append(out.Attachments, classify.Attachment{Filename: a.GetFilename(), ContentType: a.GetContentType(), SizeBytes: a.GetSizeBytes()})
	}
	return out
}

// Headers returns domain headers of proto headers.
func Headers(hs []*mailv1.Header) []classify.Header {
	var out []classify.Header
	for _, h := range hs {
		out = append(out, classify.Header{Name: h.GetName(), Value: h.GetValue()})
	}
	return out
}

// WithoutBody returns a copy of m without its text body: what MailClassified
// carries, so that the store can record a message it has not seen yet
// without the event holding the body a second time.
func WithoutBody(m *mailv1.NormalizedMessage) *mailv1.NormalizedMessage {
	if m == nil {
		return nil
	}
	c := proto.CloneOf(m)
	c.TextBody = ""
	return c
}

// Lane returns the domain lane; unspecified is backfill, the lane of imports.
func Lane(l mailv1.Lane) classify.Lane {
	if name := protoenum.LaneName(l); name != "" {
		return classify.Lane(name)
	}
	return classify.LaneBackfill
}

// LaneProto returns the proto lane.
func LaneProto(l classify.Lane) mailv1.Lane { return protoenum.Lane(string(l)) }

var sources = map[classify.Source]mailv1.ClassificationSource{
	classify.SourceRules:   mailv1.ClassificationSource_CLASSIFICATION_SOURCE_RULES,
	classify.SourceLLM:     mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LLM,
	classify.SourceCache:   mailv1.ClassificationSource_CLASSIFICATION_SOURCE_CACHE,
	classify.SourceLearned: mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LEARNED,
	classify.SourceUser:    mailv1.ClassificationSource_CLASSIFICATION_SOURCE_USER,
}

var priorities = map[classify.Priority]mailv1.Priority{
	classify.PriorityLow:    mailv1.Priority_PRIORITY_LOW,
	classify.PriorityNormal: mailv1.Priority_PRIORITY_NORMAL,
	classify.PriorityHigh:   mailv1.Priority_PRIORITY_HIGH,
}

// Classification returns the proto classification of a verdict.
func Classification(v classify.Verdict) *mailv1.Classification {
	c := &mailv1.Classification{
		Category:   v.Category,
		Confidence: float32(v.Confidence),
		Priority:   priorities[v.Priority],
		NeedsReply: v.NeedsReply,
		Reason:     v.Reason,
		Source:     sources[v.Source],
		Rule:       v.Rule,
		Model:      v.Model,
	}
	if !v.Time.IsZero() {
		c.ClassifyTime = timestamppb.New(v.Time)
	}
	return c
}

// Usage returns the proto usage of a verdict (zero for rules).
func Usage(u classify.Usage) *eventsv1.Usage {
	out := &eventsv1.Usage{
		PromptTokens:       u.PromptTokens,
		CompletionTokens:   u.CompletionTokens,
		CachedPromptTokens: u.CachedPromptTokens,
		CostMicros:         u.CostMicros,
		Requests:           u.Requests,
	}
	for _, m := range u.Models {
		out.Models = append(out.Models, &eventsv1.ModelUsage{
			Model:              m.Model,
			PromptTokens:       m.PromptTokens,
			CompletionTokens:   m.CompletionTokens,
			CachedPromptTokens: m.CachedPromptTokens,
			CostMicros:         m.CostMicros,
			Requests:           m.Requests,
			Batch:              m.Batch,
		})
	}
	return out
}
