// Package vaultclient is the store's side of auth's credential vault: it
// puts, gets and deletes webhooks' signing secrets
// (users/{user}/webhooks/{id}/secret) over gRPC, each call carrying the
// store's own service identity (never a user's).
package vaultclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/services/store/internal/webhook"
)

// Client is a webhook.Vault over auth's gRPC API.
type Client struct {
	auth authv1.AuthServiceClient
	id   *authn.ServiceIdentity
}

// New returns a Client calling auth as the service identity id; with a nil
// id (no MAILROOM_SERVICE_KEY) every call fails with Unauthenticated.
func New(auth authv1.AuthServiceClient, id *authn.ServiceIdentity) *Client {
	return &Client{auth: auth, id: id}
}

var _ webhook.Vault = (*Client)(nil)

func name(user, id string) string { return webhook.Name(user, id) + "/secret" }

// PutSecret implements webhook.Vault.
func (c *Client) PutSecret(ctx context.Context, user, id, secret string) error {
	ctx, err := c.id.Outgoing(ctx)
	if err != nil {
		return err
	}
	_, err = c.auth.PutCredential(ctx, &authv1.PutCredentialRequest{Credential: &authv1.Credential{
		Name: name(user, id), Kind: authv1.CredentialKind_CREDENTIAL_KIND_WEBHOOK_SECRET, Secret: []byte(secret),
	}})
	if err != nil {
		return fmt.Errorf("vault: put %s: %w", name(user, id), err)
	}
	return nil
}

// GetSecret implements webhook.Vault.
func (c *Client) GetSecret(ctx context.Context, user, id string) (string, error) {
	ctx, err := c.id.Outgoing(ctx)
	if err != nil {
		return "", err
	}
	resp, err := c.auth.GetCredential(ctx, &authv1.GetCredentialRequest{Name: name(user, id)})
	if status.Code(err) == codes.NotFound {
		return "", webhook.ErrNoSecret
	}
	if err != nil {
		return "", fmt.Errorf("vault: get %s: %w", name(user, id), err)
	}
	return string(resp.GetCredential().GetSecret()), nil
}

// DeleteSecret implements webhook.Vault.
func (c *Client) DeleteSecret(ctx context.Context, user, id string) error {
	ctx, err := c.id.Outgoing(ctx)
	if err != nil {
		return err
	}
	_, err = c.auth.DeleteCredential(ctx, &authv1.DeleteCredentialRequest{Name: name(user, id)})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("vault: delete %s: %w", name(user, id), err)
	}
	return nil
}
