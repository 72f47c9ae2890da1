package grpcapi

import (
	"context"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/services/store/internal/webhook"
)

// WithWebhooks makes s answer the webhook RPCs from svc. Without it they
// are Unimplemented.
func (s *Server) WithWebhooks(svc *webhook.Service) *Server {
	s.webhooks = svc
	return s
}

// CreateWebhook implements storev1.StoreServiceServer.
func (s *Server) CreateWebhook(ctx context.Context, req *storev1.CreateWebhookRequest) (*storev1.CreateWebhookResponse, error) {
	ids, err := user(ctx, "parent", "users/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	if s.webhooks == nil {
		return s.UnimplementedStoreServiceServer.CreateWebhook(ctx, req)
	}
	w, err := s.webhooks.Create(ctx, ids[0], req.GetWebhookId(), webhook.Webhook{
		URL: req.GetWebhook().GetUrl(), DisplayName: req.GetWebhook().GetDisplayName(),
	})
	if err != nil {
		return nil, err
	}
	return &storev1.CreateWebhookResponse{Webhook: webhookProto(w)}, nil
}

// GetWebhook implements storev1.StoreServiceServer.
func (s *Server) GetWebhook(ctx context.Context, req *storev1.GetWebhookRequest) (*storev1.GetWebhookResponse, error) {
	ids, err := user(ctx, "name", "users/*/webhooks/*", req.GetName())
	if err != nil {
		return nil, err
	}
	if s.webhooks == nil {
		return s.UnimplementedStoreServiceServer.GetWebhook(ctx, req)
	}
	w, err := s.webhooks.Get(ctx, ids[0], ids[1])
	if err != nil {
		return nil, err
	}
	return &storev1.GetWebhookResponse{Webhook: webhookProto(w)}, nil
}

// ListWebhooks implements storev1.StoreServiceServer.
func (s *Server) ListWebhooks(ctx context.Context, req *storev1.ListWebhooksRequest) (*storev1.ListWebhooksResponse, error) {
	ids, err := user(ctx, "parent", "users/*", req.GetParent())
	if err != nil {
		return nil, err
	}
	if s.webhooks == nil {
		return s.UnimplementedStoreServiceServer.ListWebhooks(ctx, req)
	}
	ws, next, err := s.webhooks.List(ctx, ids[0], int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &storev1.ListWebhooksResponse{Webhooks: make([]*storev1.Webhook, 0, len(ws)), NextPageToken: next}
	for _, w := range ws {
		out.Webhooks = append(out.Webhooks, webhookProto(w))
	}
	return out, nil
}

// DeleteWebhook implements storev1.StoreServiceServer.
func (s *Server) DeleteWebhook(ctx context.Context, req *storev1.DeleteWebhookRequest) (*storev1.DeleteWebhookResponse, error) {
	ids, err := user(ctx, "name", "users/*/webhooks/*", req.GetName())
	if err != nil {
		return nil, err
	}
	if s.webhooks == nil {
		return s.UnimplementedStoreServiceServer.DeleteWebhook(ctx, req)
	}
	if err := s.webhooks.Delete(ctx, ids[0], ids[1]); err != nil {
		return nil, err
	}
	return &storev1.DeleteWebhookResponse{}, nil
}

func webhookProto(w webhook.Webhook) *storev1.Webhook {
	state := storev1.WebhookState_WEBHOOK_STATE_ACTIVE
	if w.State == webhook.StateDisabled {
		state = storev1.WebhookState_WEBHOOK_STATE_DISABLED
	}
	return &storev1.Webhook{
		Name:                webhook.Name(w.User, w.ID),
		Url:                 w.URL,
		DisplayName:         w.DisplayName,
		State:               state,
		Secret:              w.Secret,
		CreateTime:          timestamp(w.CreateTime),
		LastSuccessTime:     timestamp(w.LastSuccessTime),
		LastFailureTime:     timestamp(w.LastFailureTime),
		LastError:           w.LastError,
		ConsecutiveFailures: w.ConsecutiveFailures,
		DisableReason:       w.DisableReason,
	}
}
