// Package vaultclient is ingest's side of auth's credential vault: it puts,
// gets and deletes mailbox credentials over gRPC, each call carrying
// ingest's own service identity (never a user's).
package vaultclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/services/ingest/internal/mailbox"
)

// Client is a mailbox.Vault over auth's gRPC API.
type Client struct {
	auth authv1.AuthServiceClient
	id   *authn.ServiceIdentity
}

// New returns a Client calling auth as the service identity id.
func New(auth authv1.AuthServiceClient, id *authn.ServiceIdentity) *Client {
	return &Client{auth: auth, id: id}
}

var _ mailbox.Vault = (*Client)(nil)

func kind(k mailbox.CredentialKind) authv1.CredentialKind {
	switch k {
	case mailbox.CredentialGmailRefreshToken:
		return authv1.CredentialKind_CREDENTIAL_KIND_GMAIL_REFRESH_TOKEN
	case mailbox.CredentialIMAPPassword:
		return authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD
	}
	return authv1.CredentialKind_CREDENTIAL_KIND_UNSPECIFIED
}

// PutCredential implements mailbox.Vault.
func (c *Client) PutCredential(ctx context.Context, mb mailbox.Mailbox, k mailbox.CredentialKind, secret []byte) error {
	ctx, err := c.id.Outgoing(ctx)
	if err != nil {
		return err
	}
	_, err = c.auth.PutCredential(ctx, &authv1.PutCredentialRequest{Credential: &authv1.Credential{
		Name: mb.CredentialName(), Kind: kind(k), Secret: secret,
	}})
	if err != nil {
		return fmt.Errorf("vault: put credential: %w", err)
	}
	return nil
}

// GetCredential implements mailbox.Vault.
func (c *Client) GetCredential(ctx context.Context, mb mailbox.Mailbox) ([]byte, error) {
	ctx, err := c.id.Outgoing(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.auth.GetCredential(ctx, &authv1.GetCredentialRequest{Name: mb.CredentialName()})
	if status.Code(err) == codes.NotFound {
		return nil, mailbox.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("vault: get credential: %w", err)
	}
	return resp.GetCredential().GetSecret(), nil
}

// DeleteCredential implements mailbox.Vault.
func (c *Client) DeleteCredential(ctx context.Context, mb mailbox.Mailbox) error {
	ctx, err := c.id.Outgoing(ctx)
	if err != nil {
		return err
	}
	_, err = c.auth.DeleteCredential(ctx, &authv1.DeleteCredentialRequest{Name: mb.CredentialName()})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("vault: delete credential: %w", err)
	}
	return nil
}
