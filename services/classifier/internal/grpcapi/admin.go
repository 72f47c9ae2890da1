package grpcapi

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/jetstream/deadletters"
)

// DeadLetters lists and replays dead letters.
type DeadLetters interface {
	List(ctx context.Context, user string, pageSize int, pageToken string) ([]deadletters.DeadLetter, string, error)
	Replay(ctx context.Context, user string, id uint64) (string, error)
}

// GetTaxonomy returns the user's taxonomy.
func (s *Server) GetTaxonomy(ctx context.Context, req *classifierv1.GetTaxonomyRequest) (*classifierv1.GetTaxonomyResponse, error) {
	user, err := singleton(ctx, "name", "users/*/taxonomy", req.GetName())
	if err != nil {
		return nil, err
	}
	t, updated, err := s.Taxonomies.Get(ctx, user)
	if err != nil {
		return nil, err
	}
	return &classifierv1.GetTaxonomyResponse{Taxonomy: taxonomyProto(user, t, updated)}, nil
}

// UpdateTaxonomy replaces the user's categories.
func (s *Server) UpdateTaxonomy(ctx context.Context, req *classifierv1.UpdateTaxonomyRequest) (*classifierv1.UpdateTaxonomyResponse, error) {
	if req.GetTaxonomy() == nil {
		return nil, apierror.Invalid("taxonomy", "is required")
	}
	user, err := singleton(ctx, "taxonomy.name", "users/*/taxonomy", req.GetTaxonomy().GetName())
	if err != nil {
		return nil, err
	}
	t := make(classify.Taxonomy, len(req.GetTaxonomy().GetCategories()))
	for i, c := range req.GetTaxonomy().GetCategories() {
		t[i] = classify.Category{Name: c.GetName(), Description: c.GetDescription()}
	}
	updated, err := s.Taxonomies.Set(ctx, user, t)
	if err != nil {
		return nil, err
	}
	return &classifierv1.UpdateTaxonomyResponse{Taxonomy: taxonomyProto(user, t, updated)}, nil
}

func taxonomyProto(user string, t classify.Taxonomy, updated time.Time) *classifierv1.Taxonomy {
	out := &classifierv1.Taxonomy{Name: resname.User(user) + "/taxonomy"}
	for _, c := range t {
		out.Categories = append(out.Categories, &classifierv1.Category{Name: c.Name, Description: c.Description})
	}
	if !updated.IsZero() {
		out.UpdateTime = timestamppb.New(updated)
	}
	return out
}

// ListDeadLetters lists the user's dead letters, oldest first; with the
// parent users/-, every user's (an admin only), each named under its user.
func (s *Server) ListDeadLetters(ctx context.Context, req *classifierv1.ListDeadLettersRequest) (*classifierv1.ListDeadLettersResponse, error) {
	var user string
	if req.GetParent() == resname.User(deadletters.AllUsers) {
		if err := authn.RequireAdmin(ctx); err != nil {
			return nil, err
		}
		user = deadletters.AllUsers
	} else {
		ids, err := resname.Parse("parent", "users/*", req.GetParent())
		if err != nil {
			return nil, err
		}
		if user, err = authn.Authorize(ctx, "parent", ids[0]); err != nil {
			return nil, err
		}
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, apierror.Invalid("page_size", "must not be negative")
	case size == 0:
		size = 50
	case size > 1000:
		size = 1000
	}
	list, next, err := s.DeadLetters.List(ctx, user, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &classifierv1.ListDeadLettersResponse{NextPageToken: next}
	for _, d := range list {
		resp.DeadLetters = append(resp.DeadLetters, &classifierv1.DeadLetter{
			Name:     resname.User(d.User) + "/deadLetters/" + strconv.FormatUint(d.ID, 10),
			Message:  d.Event.GetReceived().GetMessage(),
			Mailbox:  d.Event.GetReceived().GetMailbox(),
			Reason:   d.Event.GetReason(),
			Attempts: d.Event.GetAttempts(),
			DeadTime: timestamppb.New(d.DeadTime),
		})
	}
	return resp, nil
}

// ReplayDeadLetter sends a dead letter through the classifier again.
func (s *Server) ReplayDeadLetter(ctx context.Context, req *classifierv1.ReplayDeadLetterRequest) (*classifierv1.ReplayDeadLetterResponse, error) {
	ids, err := resname.Parse("name", "users/*/deadLetters/*", req.GetName())
	if err != nil {
		return nil, err
	}
	user, err := authn.Authorize(ctx, "name", ids[0])
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseUint(ids[1], 10, 64)
	if err != nil || id == 0 {
		return nil, apierror.NotFoundf("dead letter %q not found", req.GetName())
	}
	msg, err := s.DeadLetters.Replay(ctx, user, id)
	if err != nil {
		return nil, err
	}
	return &classifierv1.ReplayDeadLetterResponse{Message: msg}, nil
}

// PurgeUserData deletes a user's taxonomy, cached verdicts and dead
// letters. Only the auth service may call it.
func (s *Server) PurgeUserData(ctx context.Context, req *classifierv1.PurgeUserDataRequest) (*classifierv1.PurgeUserDataResponse, error) {
	if err := authn.RequireService(ctx, authn.ServiceAuth); err != nil {
		return nil, err
	}
	if !resname.ValidID(req.GetUser()) || req.GetUser() == authn.Me {
		return nil, apierror.Invalid("user", "is not a user id")
	}
	deleted, err := s.Purge(ctx, req.GetUser())
	if err != nil {
		return nil, err
	}
	return &classifierv1.PurgeUserDataResponse{Deleted: deleted}, nil
}

// singleton parses the name of a user's singleton resource
// (users/{user}/taxonomy) and authorizes the caller for that user.
func singleton(ctx context.Context, field, pattern, name string) (string, error) {
	ids, err := resname.Parse(field, pattern, name)
	if err != nil {
		return "", err
	}
	return authn.Authorize(ctx, field, ids[0])
}

// GetQuota returns the user's daily quotas and today's use; a user sees
// its own.
func (s *Server) GetQuota(ctx context.Context, req *classifierv1.GetQuotaRequest) (*classifierv1.GetQuotaResponse, error) {
	user, err := singleton(ctx, "name", "users/*/quota", req.GetName())
	if err != nil {
		return nil, err
	}
	st, err := s.Quotas.Status(ctx, user)
	if err != nil {
		return nil, err
	}
	return &classifierv1.GetQuotaResponse{Quota: quotaProto(user, st)}, nil
}

// UpdateQuota sets the user's daily quotas; only an admin may.
func (s *Server) UpdateQuota(ctx context.Context, req *classifierv1.UpdateQuotaRequest) (*classifierv1.UpdateQuotaResponse, error) {
	q := req.GetQuota()
	if q == nil {
		return nil, apierror.Invalid("quota", "is required")
	}
	user, err := singleton(ctx, "quota.name", "users/*/quota", q.GetName())
	if err != nil {
		return nil, err
	}
	if err := authn.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if q.GetModelTokensPerDay() < classify.NoLimit {
		return nil, apierror.Invalid("quota.model_tokens_per_day", "is %d: give a limit, 0 for the default or -1 for none", q.GetModelTokensPerDay())
	}
	if q.GetMailsPerDay() < classify.NoLimit {
		return nil, apierror.Invalid("quota.mails_per_day", "is %d: give a limit, 0 for the default or -1 for none", q.GetMailsPerDay())
	}
	st, err := s.Quotas.Set(ctx, user, classify.QuotaLimits{ModelTokensPerDay: q.GetModelTokensPerDay(), MailsPerDay: q.GetMailsPerDay()})
	if err != nil {
		return nil, err
	}
	return &classifierv1.UpdateQuotaResponse{Quota: quotaProto(user, st)}, nil
}

func quotaProto(user string, st classify.QuotaStatus) *classifierv1.Quota {
	return &classifierv1.Quota{
		Name:                       resname.User(user) + "/quota",
		ModelTokensPerDay:          st.Set.ModelTokensPerDay,
		MailsPerDay:                st.Set.MailsPerDay,
		EffectiveModelTokensPerDay: st.Effective.ModelTokensPerDay,
		EffectiveMailsPerDay:       st.Effective.MailsPerDay,
		ModelTokensUsed:            st.Used.ModelTokens,
		MailsUsed:                  st.Used.Mails,
		ResetTime:                  timestamppb.New(st.Reset),
	}
}
