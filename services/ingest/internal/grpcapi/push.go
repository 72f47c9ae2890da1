package grpcapi

import (
	"context"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/authn"
)

// NotifyGmailPush implements ingestv1.IngestServiceServer. Only the gateway,
// which has verified the push's OIDC token, may call it.
func (s *Server) NotifyGmailPush(ctx context.Context, req *ingestv1.NotifyGmailPushRequest) (*ingestv1.NotifyGmailPushResponse, error) {
	if err := authn.RequireService(ctx, authn.ServiceGateway); err != nil {
		return nil, err
	}
	n, err := s.svc.NotifyGmailPush(ctx, req.GetEmailAddress())
	if err != nil {
		return nil, err
	}
	return &ingestv1.NotifyGmailPushResponse{Mailboxes: int32(n)}, nil
}
