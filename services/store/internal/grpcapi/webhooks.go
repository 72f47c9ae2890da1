package grpcapi

import (
	"context"
	"slices"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/apierror"
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

// RotateWebhookSecret implements storev1.StoreServiceServer.
func (s *Server) RotateWebhookSecret(ctx context.Context, req *storev1.RotateWebhookSecretRequest) (*storev1.RotateWebhookSecretResponse, error) {
	ids, err := user(ctx, "name", "users/*/webhooks/*", req.GetName())
	if err != nil {
		return nil, err
	}
	if s.webhooks == nil {
		return s.UnimplementedStoreServiceServer.RotateWebhookSecret(ctx, req)
	}
	w, err := s.webhooks.RotateSecret(ctx, ids[0], ids[1])
	if err != nil {
		return nil, err
	}
	return &storev1.RotateWebhookSecretResponse{Webhook: webhookProto(w)}, nil
}

// updatable are the fields of a webhook that UpdateWebhook changes.
var updatable = []string{"url", "display_name", "state"}

// UpdateWebhook implements storev1.StoreServiceServer (AIP-134): the
// fields that update_mask names take their values from webhook; an empty
// mask names every updatable field that webhook sets, "*" all of them.
func (s *Server) UpdateWebhook(ctx context.Context, req *storev1.UpdateWebhookRequest) (*storev1.UpdateWebhookResponse, error) {
	in := req.GetWebhook()
	if in == nil {
		return nil, apierror.Invalid("webhook", "is required, with its name and the fields to change")
	}
	ids, err := user(ctx, "webhook.name", "users/*/webhooks/*", in.GetName())
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	switch {
	case slices.Equal(paths, []string{"*"}):
		paths = updatable
	case len(paths) == 0:
		if in.GetUrl() != "" {
			paths = append(paths, "url")
		}
		if in.GetDisplayName() != "" {
			paths = append(paths, "display_name")
		}
		if in.GetState() != storev1.WebhookState_WEBHOOK_STATE_UNSPECIFIED {
			paths = append(paths, "state")
		}
		if len(paths) == 0 {
			return nil, apierror.Invalid("update_mask", "names no field, and webhook sets none of url, display_name, state")
		}
	}
	var u webhook.Update
	for _, p := range paths {
		switch p {
		case "displayName": // as a REST client may spell it in ?updateMask=
			p = "display_name"
		}
		switch p {
		case "url":
			v := in.GetUrl()
			u.URL = &v
		case "display_name":
			v := in.GetDisplayName()
			u.DisplayName = &v
		case "state":
			var st webhook.State
			switch in.GetState() {
			case storev1.WebhookState_WEBHOOK_STATE_ACTIVE:
				st = webhook.StateActive
			case storev1.WebhookState_WEBHOOK_STATE_DISABLED:
				st = webhook.StateDisabled
			default:
				return nil, apierror.Invalid("webhook.state", "must be WEBHOOK_STATE_ACTIVE or WEBHOOK_STATE_DISABLED")
			}
			u.State = &st
		default:
			return nil, apierror.Invalid("update_mask", "%q may not be changed; only url, display_name and state may", p)
		}
	}
	if s.webhooks == nil {
		return s.UnimplementedStoreServiceServer.UpdateWebhook(ctx, req)
	}
	w, err := s.webhooks.Update(ctx, ids[0], ids[1], u)
	if err != nil {
		return nil, err
	}
	return &storev1.UpdateWebhookResponse{Webhook: webhookProto(w)}, nil
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
