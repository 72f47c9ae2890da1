// Package grpcapi is the classifier's gRPC adapter: ClassifierService's
// Classify (one message, now, in the interactive lane), GetLimits, the
// users' taxonomies, the dead letters, and PurgeUserData.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/protoconv"
	"mailroom.dev/services/classifier/internal/sampler"
)

// MaxMessageBytes bounds the message Classify accepts: raw, or its parts
// together.
const MaxMessageBytes = 1 << 20

// Classifier is what the server needs from the domain.
type Classifier interface {
	Classify(ctx context.Context, req classify.Request) (classify.Verdict, error)
}

// Deps are what the server serves from.
type Deps struct {
	Classifier Classifier
	Limits     classify.LimitsReporter
	// History is the last hour of the limiter; nil: none.
	History History
	// Backlog reads the mail waiting in the work stream; nil: 0.
	Backlog     func(ctx context.Context) (int64, error)
	Taxonomies  *classify.Taxonomies
	Quotas      *classify.Quotas
	DeadLetters DeadLetters
	// Corrector records users' corrections.
	Corrector Corrector
	// Purge deletes a user's taxonomy, cached verdicts and dead letters.
	Purge func(ctx context.Context, user string) (map[string]int64, error)
}

// Server implements classifierv1.ClassifierServiceServer.
type Server struct {
	classifierv1.UnimplementedClassifierServiceServer
	Deps
}

// New returns a server over deps.
func New(deps Deps) *Server {
	return &Server{Deps: deps}
}

// Classify classifies one message for the parent user (default the caller).
func (s *Server) Classify(ctx context.Context, req *classifierv1.ClassifyRequest) (*classifierv1.ClassifyResponse, error) {
	parent := req.GetParent()
	if parent == "" {
		parent = resname.User(authn.Me)
	}
	ids, err := resname.Parse("parent", "users/*", parent)
	if err != nil {
		return nil, err
	}
	user, err := authn.Authorize(ctx, "parent", ids[0])
	if err != nil {
		return nil, err
	}
	msg, err := message(req)
	if err != nil {
		return nil, err
	}
	v, err := s.Classifier.Classify(ctx, classify.Request{User: user, Lane: classify.LaneInteractive, Message: msg})
	var quota *classify.QuotaError
	if errors.As(err, &quota) {
		return nil, (&apierror.Error{Kind: apierror.ResourceExhausted, Reason: "QUOTA_EXCEEDED", Message: quota.Error()}).
			WithMetadata("quota", quota.Quota).
			WithMetadata("limit", strconv.FormatInt(quota.Limit, 10)).
			WithMetadata("reset_time", quota.Reset.UTC().Format(time.RFC3339))
	}
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	return &classifierv1.ClassifyResponse{Classification: protoconv.Classification(v)}, nil
}

// message returns the message of req: raw parsed, or the parts.
func message(req *classifierv1.ClassifyRequest) (classify.Message, error) {
	hasParts := req.GetSubject() != "" || req.GetFrom() != "" || req.GetBody() != "" || len(req.GetHeaders()) > 0
	raw := req.GetRaw()
	switch {
	case len(raw) > 0 && hasParts:
		return classify.Message{}, apierror.Invalid("raw", "give either raw or the parts (subject, from, body, headers), not both")
	case len(raw) > MaxMessageBytes:
		return classify.Message{}, apierror.Invalid("raw", "is %d bytes; the limit is %d bytes (1 MiB)", len(raw), MaxMessageBytes)
	case len(raw) > 0:
		return parseRaw(raw)
	case !hasParts:
		return classify.Message{}, apierror.Invalid("raw", "a message is required: give raw, or at least one of subject, from, body, headers")
	}
	size := len(req.GetSubject()) + len(req.GetFrom()) + len(req.GetBody())
	for i, h := range req.GetHeaders() {
		if h.GetName() == "" {
			return classify.Message{}, apierror.Invalid(fmt.Sprintf("headers[%d].name", i), "is required")
		}
		size += len(h.GetName()) + len(h.GetValue())
	}
	if size > MaxMessageBytes {
		return classify.Message{}, apierror.Invalid("body", "the message is %d bytes; the limit is %d bytes (1 MiB)", size, MaxMessageBytes)
	}
	return classify.Message{
		Subject: req.GetSubject(),
		From:    req.GetFrom(),
		Body:    req.GetBody(),
		Headers: protoconv.Headers(req.GetHeaders()),
	}, nil
}

// History is the last hour of the limiter's state.
type History interface {
	// Since returns the snapshots taken after t, oldest first.
	Since(t time.Time) []sampler.Snapshot
}

// GetLimits reports the limiter's state to any authenticated caller, with
// its history over the last hour after history_since (none when unset:
// a plain call stays small).
//
// The keys (their suffixes, limits and headroom), in the history too, and
// the budget's amounts (the organization's spending and remaining credit)
// are for admins and services; any other caller gets the lanes, the
// backlog, the replicas, the model and whether the budget is exhausted
// (why mail waits).
func (s *Server) GetLimits(ctx context.Context, req *classifierv1.GetLimitsRequest) (*classifierv1.GetLimitsResponse, error) {
	caller, ok := authn.FromContext(ctx)
	if !ok {
		return nil, apierror.Unauthenticatedf("no credential was presented")
	}
	var since time.Time
	wantHistory := req.HistorySince != nil
	if wantHistory {
		if err := req.GetHistorySince().CheckValid(); err != nil {
			return nil, apierror.Invalid("history_since", "is not a valid timestamp")
		}
		since = req.GetHistorySince().AsTime()
	}
	privileged := caller.Admin || caller.Service != ""
	l := s.Limits.Limits(ctx)
	resp := &classifierv1.GetLimitsResponse{Replicas: int32(l.Replicas), Model: l.Model,
		Batches: &classifierv1.BatchQueue{Waiting: l.Batches.Waiting, Batches: l.Batches.Batches, Answered: l.Batches.Answered, Realtime: l.Batches.Realtime}}
	for _, q := range l.Lanes {
		resp.Lanes = append(resp.Lanes, &classifierv1.LaneQueue{Lane: protoconv.LaneProto(q.Lane), Waiting: q.Waiting, OldestWaitSeconds: q.OldestWait.Seconds()})
	}
	if s.Backlog != nil {
		// Unreadable (NATS away for a moment), the backlog shows as 0
		// rather than failing the whole report.
		if n, err := s.Backlog(ctx); err == nil {
			resp.Backlog = n
		}
	}
	if s.History != nil && wantHistory {
		for _, snap := range s.History.Since(since) {
			resp.History = append(resp.History, snapshotProto(snap, privileged))
		}
	}
	if !privileged {
		resp.Budget = &classifierv1.Budget{CreditRemainingMicros: -1, Exhausted: l.Budget.Exhausted}
		return resp, nil
	}
	for _, k := range l.Keys {
		resp.Keys = append(resp.Keys, &classifierv1.KeyLimits{
			Key:                         k.Key,
			Model:                       k.Model,
			ConfiguredRequestsPerMinute: k.Configured.RequestsPerMinute,
			ConfiguredTokensPerMinute:   k.Configured.TokensPerMinute,
			AdvertisedRequestsPerMinute: k.Advertised.RequestsPerMinute,
			AdvertisedTokensPerMinute:   k.Advertised.TokensPerMinute,
			LimitSource:                 k.LimitSource,
			Ceiling:                     k.Ceiling,
			RequestsPerMinute:           k.RequestsPerMinute,
			TokensPerMinute:             k.TokensPerMinute,
			RequestsAvailable:           k.RequestsAvailable,
			TokensAvailable:             k.TokensAvailable,
			InFlight:                    k.InFlight,
			RateLimitedLastMinute:       k.RateLimitedLastMinute,
			RetriesLastMinute:           k.RetriesLastMinute,
			FrozenSeconds:               k.FrozenSeconds,
		})
	}
	resp.Budget = &classifierv1.Budget{
		DailyLimitMicros:      l.Budget.DailyMicros,
		SpentTodayMicros:      l.Budget.SpentTodayMicros,
		CreditRemainingMicros: l.Budget.CreditRemainingMicros,
		Exhausted:             l.Budget.Exhausted,
	}
	return resp, nil
}

// snapshotProto is snap as GetLimits reports it; keys only for an admin or
// a service.
func snapshotProto(snap sampler.Snapshot, keys bool) *classifierv1.LimitsSnapshot {
	out := &classifierv1.LimitsSnapshot{Time: timestamppb.New(snap.Time), Backlog: snap.Backlog}
	for _, q := range snap.Lanes {
		out.Lanes = append(out.Lanes, &classifierv1.LaneQueue{Lane: protoconv.LaneProto(q.Lane), Waiting: q.Waiting, OldestWaitSeconds: q.OldestWait.Seconds()})
	}
	if !keys {
		return out
	}
	for _, k := range snap.Keys {
		out.Keys = append(out.Keys, &classifierv1.KeySample{
			Key:                   k.Key,
			Model:                 k.Model,
			RequestsPerMinute:     k.RequestsPerMinute,
			TokensPerMinute:       k.TokensPerMinute,
			RequestsUsedPerMinute: k.RequestsUsedPerMinute,
			TokensUsedPerMinute:   k.TokensUsedPerMinute,
			RequestsAvailable:     k.RequestsAvailable,
			TokensAvailable:       k.TokensAvailable,
			InFlight:              k.InFlight,
			Requests:              k.Requests,
			RateLimited:           k.RateLimited,
			FrozenSeconds:         k.Frozen.Seconds(),
		})
	}
	return out
}
