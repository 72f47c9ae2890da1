// Package grpcapi serves mailroom.store.v1.StoreService: it parses resource
// names, authorizes the caller for the user they name, and converts between
// the domain (package mailstore) and the protobuf messages.
package grpcapi

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/protoenum"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/webhook"
)

// Queries is what the server needs from the domain.
type Queries interface {
	List(ctx context.Context, user string, req mailstore.ListRequest) (mailstore.Page, error)
	Get(ctx context.Context, user, id string) (mailstore.Message, error)
	Stats(ctx context.Context, user string) (mailstore.Stats, error)
	Usage(ctx context.Context, user string) (mailstore.Usage, error)
	Correct(ctx context.Context, user, id, category string, at time.Time) (mailstore.Message, error)
	PurgeUser(ctx context.Context, user string) (mailstore.Purged, error)
}

// Server implements storev1.StoreServiceServer.
type Server struct {
	storev1.UnimplementedStoreServiceServer
	q Queries
	// purgeEvents deletes a user's classified events still in the stream.
	purgeEvents func(ctx context.Context, user string) (int64, error)
	// learn tells the classifier of a correction (it checks the category
	// against the user's taxonomy and learns the sender).
	learn Learner
	// watch serves WatchMessages (see WithWatch).
	watch *watch
	// webhooks serves the webhook RPCs (see WithWebhooks).
	webhooks *webhook.Service
}

// New returns a server answering from q; purgeEvents (may be nil) deletes
// a user's events still in the event stream when the user's data is purged.
func New(q Queries, purgeEvents func(ctx context.Context, user string) (int64, error), learn Learner) *Server {
	return &Server{q: q, purgeEvents: purgeEvents, learn: learn}
}

// user parses name against pattern (whose first wildcard is the user) and
// authorizes the caller for that user, resolving "me".
func user(ctx context.Context, field, pattern, name string) ([]string, error) {
	ids, err := resname.Parse(field, pattern, name)
	if err != nil {
		return nil, err
	}
	u, err := authn.Authorize(ctx, field, ids[0])
	if err != nil {
		return nil, err
	}
	ids[0] = u
	return ids, nil
}

// ListMessages implements storev1.StoreServiceServer.
func (s *Server) ListMessages(ctx context.Context, req *storev1.ListMessagesRequest) (*storev1.ListMessagesResponse, error) {
	ids, err := user(ctx, "parent", "users/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	page, err := s.q.List(ctx, ids[0], mailstore.ListRequest{
		Filter:    req.GetFilter(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	resp := &storev1.ListMessagesResponse{
		Messages:      make([]*storev1.Message, 0, len(page.Messages)),
		NextPageToken: page.NextPageToken,
	}
	for _, m := range page.Messages {
		resp.Messages = append(resp.Messages, message(m))
	}
	return resp, nil
}

// GetMessage implements storev1.StoreServiceServer.
func (s *Server) GetMessage(ctx context.Context, req *storev1.GetMessageRequest) (*storev1.GetMessageResponse, error) {
	ids, err := user(ctx, "name", "users/*/messages/*", req.GetName())
	if err != nil {
		return nil, err
	}
	m, err := s.q.Get(ctx, ids[0], ids[1])
	if err != nil {
		return nil, err
	}
	return &storev1.GetMessageResponse{Message: message(m)}, nil
}

// GetStats implements storev1.StoreServiceServer.
func (s *Server) GetStats(ctx context.Context, req *storev1.GetStatsRequest) (*storev1.GetStatsResponse, error) {
	ids, err := user(ctx, "name", "users/*/stats", req.GetName())
	if err != nil {
		return nil, err
	}
	st, err := s.q.Stats(ctx, ids[0])
	if err != nil {
		return nil, err
	}
	out := &storev1.Stats{
		Name:       resname.User(ids[0]) + "/stats",
		Total:      st.Total,
		Classified: st.Classified,
		Pending:    st.Pending,
		Failed:     st.Failed,
		Categories: make([]*storev1.CategoryCount, 0, len(st.Categories)),
		Mailboxes:  make([]*storev1.MailboxCount, 0, len(st.Mailboxes)),
	}
	for _, c := range st.Categories {
		out.Categories = append(out.Categories, &storev1.CategoryCount{Category: c.Category, Count: c.Count})
	}
	for _, m := range st.Mailboxes {
		out.Mailboxes = append(out.Mailboxes, &storev1.MailboxCount{
			Mailbox:    resname.Mailbox(ids[0], m.MailboxID),
			Count:      m.Count,
			Classified: m.Classified,
		})
	}
	return &storev1.GetStatsResponse{Stats: out}, nil
}

// GetUsage implements storev1.StoreServiceServer.
func (s *Server) GetUsage(ctx context.Context, req *storev1.GetUsageRequest) (*storev1.GetUsageResponse, error) {
	ids, err := user(ctx, "name", "users/*/usage", req.GetName())
	if err != nil {
		return nil, err
	}
	u, err := s.q.Usage(ctx, ids[0])
	if err != nil {
		return nil, err
	}
	out := &storev1.Usage{
		Name:                   resname.User(ids[0]) + "/usage",
		Classifications:        u.Classifications,
		RuleClassifications:    u.RuleClassifications,
		LlmClassifications:     u.LLMClassifications,
		CacheClassifications:   u.CacheClassifications,
		LearnedClassifications: u.LearnedClassifications,
		UserClassifications:    u.UserClassifications,
		DeadLetters:            u.DeadLetters,
		Requests:               u.Requests,
		PromptTokens:           u.PromptTokens,
		CompletionTokens:       u.CompletionTokens,
		CachedPromptTokens:     u.CachedPromptTokens,
		CostMicros:             u.CostMicros,
		StartTime:              timestamp(u.StartTime),
		EndTime:                timestamp(u.EndTime),
	}
	for _, m := range u.Models {
		out.Models = append(out.Models, &storev1.ModelUsage{Model: m.Model, Requests: m.Requests, PromptTokens: m.PromptTokens,
			CachedPromptTokens: m.CachedPromptTokens, CompletionTokens: m.CompletionTokens, CostMicros: m.CostMicros})
	}
	return &storev1.GetUsageResponse{Usage: out}, nil
}

// PurgeUserData implements storev1.StoreServiceServer. Only the auth
// service calls it, when it deletes a user; it reports what it deleted.
func (s *Server) PurgeUserData(ctx context.Context, req *storev1.PurgeUserDataRequest) (*storev1.PurgeUserDataResponse, error) {
	if err := authn.RequireService(ctx, authn.ServiceAuth); err != nil {
		return nil, err
	}
	// The field is a user id; a resource name users/{user} is taken too.
	user := strings.TrimPrefix(req.GetUser(), "users/")
	if !resname.ValidID(user) || user == authn.Me {
		return nil, apierror.Invalid("user", "must be a user id (lowercase letters, digits and hyphens)")
	}
	p, err := s.q.PurgeUser(ctx, user)
	if err != nil {
		return nil, err
	}
	deleted := map[string]int64{
		"messages":      p.Messages,
		"usage_records": p.UsageRecords,
	}
	if s.webhooks != nil {
		n, err := s.webhooks.DeleteUser(ctx, user)
		if err != nil {
			return nil, err
		}
		deleted["webhooks"] = n
	}
	if s.purgeEvents != nil {
		n, err := s.purgeEvents(ctx, user)
		if err != nil {
			return nil, err
		}
		deleted["classified_events"] = n
	}
	return &storev1.PurgeUserDataResponse{Deleted: deleted}, nil
}

// message converts a domain message to its protobuf form.
func message(m mailstore.Message) *storev1.Message {
	out := &storev1.Message{
		Name:              m.Name(),
		Mailbox:           m.Mailbox(),
		ProviderMessageId: m.ProviderMessageID,
		Subject:           m.Subject,
		From:              m.From,
		To:                m.To,
		ReceivedTime:      timestamp(m.ReceivedTime),
		Snippet:           m.Snippet,
		SizeBytes:         m.SizeBytes,
		AttachmentNames:   m.AttachmentNames,
		State:             state(m.State),
		CreateTime:        timestamp(m.CreateTime),
		UpdateTime:        timestamp(m.UpdateTime),
		Body:              m.Body,
	}
	if c := m.Classification; c != nil {
		out.Classification = &mailv1.Classification{
			Category:     c.Category,
			Confidence:   c.Confidence,
			Priority:     protoenum.Priority(string(c.Priority)),
			NeedsReply:   c.NeedsReply,
			Reason:       c.Reason,
			Source:       protoenum.Source(string(c.Source)),
			Rule:         c.Rule,
			Model:        c.Model,
			ClassifyTime: timestamp(c.ClassifyTime),
		}
	}
	return out
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func state(s mailstore.State) storev1.MessageState {
	switch s {
	case mailstore.StatePending:
		return storev1.MessageState_MESSAGE_STATE_PENDING
	case mailstore.StateClassified:
		return storev1.MessageState_MESSAGE_STATE_CLASSIFIED
	case mailstore.StateFailed:
		return storev1.MessageState_MESSAGE_STATE_FAILED
	}
	return storev1.MessageState_MESSAGE_STATE_UNSPECIFIED
}
