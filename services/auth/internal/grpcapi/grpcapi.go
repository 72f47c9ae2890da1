// Package grpcapi serves the auth API (mailroom.auth.v1.AuthService) over
// gRPC: it parses requests, authorizes the caller, calls the identity
// domain and turns its results into protobuf messages.
package grpcapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
	"mailroom.dev/services/auth/internal/identity"
)

// PublicMethods are the methods callable without a credential: the
// exchange (the API key is the credential) and the public keys.
var PublicMethods = []string{
	authv1.AuthService_ExchangeApiKey_FullMethodName,
	authv1.AuthService_GetJwks_FullMethodName,
}

// Server implements authv1.AuthServiceServer.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	svc      *identity.Service
	verifier *authn.Verifier // of the tokens callers of ExchangeApiKey present
}

var _ authv1.AuthServiceServer = (*Server)(nil)

// New returns a Server over svc.
func New(svc *identity.Service) *Server {
	s := &Server{svc: svc}
	s.verifier = authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) { return s.JWKS(), nil })
	return s
}

// CreateUser implements authv1.AuthServiceServer. Admin only.
func (s *Server) CreateUser(ctx context.Context, req *authv1.CreateUserRequest) (*authv1.CreateUserResponse, error) {
	if err := authn.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	role, err := roleFromProto("user.role", req.GetUser().GetRole())
	if err != nil {
		return nil, err
	}
	u, err := s.svc.CreateUser(ctx, req.GetUserId(), identity.User{
		DisplayName: req.GetUser().GetDisplayName(),
		Email:       req.GetUser().GetEmail(),
		Role:        role,
	})
	if err != nil {
		return nil, err
	}
	return &authv1.CreateUserResponse{User: userToProto(u)}, nil
}

// GetUser implements authv1.AuthServiceServer.
func (s *Server) GetUser(ctx context.Context, req *authv1.GetUserRequest) (*authv1.GetUserResponse, error) {
	id, err := userFromName(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	u, err := s.svc.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	return &authv1.GetUserResponse{User: userToProto(u)}, nil
}

// ListUsers implements authv1.AuthServiceServer. Admin only.
func (s *Server) ListUsers(ctx context.Context, req *authv1.ListUsersRequest) (*authv1.ListUsersResponse, error) {
	if err := authn.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	users, next, err := s.svc.ListUsers(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListUsersResponse{NextPageToken: next}
	for _, u := range users {
		resp.Users = append(resp.Users, userToProto(u))
	}
	return resp, nil
}

// CreateApiKey implements authv1.AuthServiceServer: a user creates its own
// keys, an admin anyone's.
func (s *Server) CreateApiKey(ctx context.Context, req *authv1.CreateApiKeyRequest) (*authv1.CreateApiKeyResponse, error) {
	user, err := userFromName(ctx, "parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	k, secret, err := s.svc.CreateAPIKey(ctx, user, req.GetApiKey().GetDisplayName())
	if err != nil {
		return nil, err
	}
	pb := apiKeyToProto(k)
	pb.Key = secret // the one time the secret leaves auth
	return &authv1.CreateApiKeyResponse{ApiKey: pb}, nil
}

// ListApiKeys implements authv1.AuthServiceServer.
func (s *Server) ListApiKeys(ctx context.Context, req *authv1.ListApiKeysRequest) (*authv1.ListApiKeysResponse, error) {
	user, err := userFromName(ctx, "parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	keys, next, err := s.svc.ListAPIKeys(ctx, user, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListApiKeysResponse{NextPageToken: next}
	for _, k := range keys {
		resp.ApiKeys = append(resp.ApiKeys, apiKeyToProto(k))
	}
	return resp, nil
}

// DeleteApiKey implements authv1.AuthServiceServer.
func (s *Server) DeleteApiKey(ctx context.Context, req *authv1.DeleteApiKeyRequest) (*authv1.DeleteApiKeyResponse, error) {
	ids, err := resname.Parse("name", "users/*/apiKeys/*", req.GetName())
	if err != nil {
		return nil, err
	}
	user, err := authn.Authorize(ctx, "name", ids[0])
	if err != nil {
		return nil, err
	}
	if err := s.svc.DeleteAPIKey(ctx, user, ids[1]); err != nil {
		return nil, err
	}
	return &authv1.DeleteApiKeyResponse{}, nil
}

// ExchangeApiKey implements authv1.AuthServiceServer. It is public: the key
// is the credential. A service's own key is exchanged for anyone (whoever
// holds it is that service); a user's key only for a caller that presents
// a service identity (the gateway, or a service whose guard accepts API
// keys from grpcurl), so that an identity token, which cannot be revoked,
// is minted only where the services need one.
func (s *Server) ExchangeApiKey(ctx context.Context, req *authv1.ExchangeApiKeyRequest) (*authv1.ExchangeApiKeyResponse, error) {
	t, err := s.svc.Exchange(ctx, req.GetApiKey())
	if err != nil {
		return nil, err
	}
	if t.Service == "" {
		if err := s.requireService(ctx); err != nil {
			return nil, err
		}
	}
	return exchanged(t), nil
}

// requireService refuses a caller whose credential (an identity token, or
// a service key) is not a service's.
func (s *Server) requireService(ctx context.Context) error {
	denied := apierror.Denied("only the gateway and the services may exchange a user's API key; send the key itself as the bearer credential of your call")
	cred := authn.BearerFromContext(ctx)
	switch {
	case cred == "":
		return denied
	case authn.LooksLikeJWT(cred):
		c, err := s.verifier.Verify(ctx, cred)
		if err != nil || c.Service == "" {
			return denied
		}
	default:
		t, err := s.svc.Exchange(ctx, cred)
		if err != nil || t.Service == "" {
			return denied
		}
	}
	return nil
}

// exchanged is the response of an exchange that gave t.
func exchanged(t identity.Token) *authv1.ExchangeApiKeyResponse {
	if t.Service != "" {
		return &authv1.ExchangeApiKeyResponse{
			Token:      t.Value,
			ExpireTime: timestamppb.New(t.ExpireTime),
			Role:       authv1.Role_ROLE_SERVICE,
		}
	}
	return &authv1.ExchangeApiKeyResponse{
		Token:      t.Value,
		ExpireTime: timestamppb.New(t.ExpireTime),
		User:       resname.User(t.User.ID),
		Role:       roleToProto(t.User.Role),
	}
}

// DeleteUser implements authv1.AuthServiceServer: the user itself or an
// admin deletes the user and its data in every service.
func (s *Server) DeleteUser(ctx context.Context, req *authv1.DeleteUserRequest) (*authv1.DeleteUserResponse, error) {
	user, err := userFromName(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	counts, err := s.svc.DeleteUser(ctx, user)
	if err != nil {
		return nil, err
	}
	return &authv1.DeleteUserResponse{Deleted: counts}, nil
}

// The names of credentials, and the one service that may reach each:
// ingest a mailbox's credential, the store a webhook's signing secret.
const (
	mailboxCredentialPattern = "users/*/mailboxes/*/credential"
	webhookSecretPattern     = "users/*/webhooks/*/secret"
)

// credentialOwner parses a credential's name in field, checks that the
// caller is the service that owns such credentials, and returns the user
// and the MailboxID it is stored under.
func credentialOwner(ctx context.Context, field, name string) (user, mailboxID string, err error) {
	if ids, err := resname.Parse(field, webhookSecretPattern, name); err == nil {
		if err := authn.RequireService(ctx, authn.ServiceStore); err != nil {
			return "", "", err
		}
		return ids[0], identity.WebhookCredentialID(ids[1]), nil
	}
	if err := authn.RequireService(ctx, authn.ServiceIngest); err != nil {
		return "", "", err
	}
	ids, err := resname.Parse(field, mailboxCredentialPattern, name)
	if err != nil {
		return "", "", err
	}
	return ids[0], ids[1], nil
}

// PutCredential implements authv1.AuthServiceServer. Only ingest may call
// it for a mailbox, only the store for a webhook.
func (s *Server) PutCredential(ctx context.Context, req *authv1.PutCredentialRequest) (*authv1.PutCredentialResponse, error) {
	user, id, err := credentialOwner(ctx, "credential.name", req.GetCredential().GetName())
	if err != nil {
		return nil, err
	}
	kind, err := kindFromProto(req.GetCredential().GetKind())
	if err != nil {
		return nil, err
	}
	c, err := s.svc.PutCredential(ctx, identity.Credential{UserID: user, MailboxID: id, Kind: kind, Secret: req.GetCredential().GetSecret()})
	if err != nil {
		return nil, err
	}
	return &authv1.PutCredentialResponse{Credential: credentialToProto(c)}, nil
}

// GetCredential implements authv1.AuthServiceServer, for the same callers
// as PutCredential: it is the one way a decrypted credential leaves auth.
func (s *Server) GetCredential(ctx context.Context, req *authv1.GetCredentialRequest) (*authv1.GetCredentialResponse, error) {
	user, id, err := credentialOwner(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	c, err := s.svc.GetCredential(ctx, user, id)
	if err != nil {
		return nil, err
	}
	pb := credentialToProto(c)
	pb.Secret = c.Secret
	return &authv1.GetCredentialResponse{Credential: pb}, nil
}

// DeleteCredential implements authv1.AuthServiceServer, for the same
// callers as PutCredential.
func (s *Server) DeleteCredential(ctx context.Context, req *authv1.DeleteCredentialRequest) (*authv1.DeleteCredentialResponse, error) {
	user, id, err := credentialOwner(ctx, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.svc.DeleteCredential(ctx, user, id); err != nil {
		return nil, err
	}
	return &authv1.DeleteCredentialResponse{}, nil
}

// RotateVaultKey implements authv1.AuthServiceServer. Admin only.
func (s *Server) RotateVaultKey(ctx context.Context, _ *authv1.RotateVaultKeyRequest) (*authv1.RotateVaultKeyResponse, error) {
	if err := authn.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	n, active, err := s.svc.RotateVault(ctx)
	if err != nil {
		return nil, err
	}
	return &authv1.RotateVaultKeyResponse{Rotated: n, KeyId: active}, nil
}

// GetJwks implements authv1.AuthServiceServer. It is public.
func (s *Server) GetJwks(ctx context.Context, _ *authv1.GetJwksRequest) (*authv1.GetJwksResponse, error) {
	return &authv1.GetJwksResponse{Keys: s.JWKS()}, nil
}

// JWKS returns the public keys as protobuf, for GetJwks and for the auth
// server's own token verifier.
func (s *Server) JWKS() []*authv1.Jwk {
	var out []*authv1.Jwk
	for _, k := range s.svc.JWKS() {
		out = append(out, &authv1.Jwk{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use})
	}
	return out
}

// Guard returns the authenticator of the auth server itself, built without
// a network hop to itself: tokens verify against the service's own keys,
// and API keys go through its own exchange. The exchange is not cached
// (a KeyCache with a zero TTL), so that a deleted key stops working on auth
// at once; the lookup is one indexed query.
func (s *Server) Guard() *authn.Guard {
	g := &authn.Guard{
		Verifier: authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) {
			return s.JWKS(), nil
		}),
		Keys: authn.NewKeyCache(func(ctx context.Context, apiKey string) (*authv1.ExchangeApiKeyResponse, error) {
			t, err := s.svc.Exchange(ctx, apiKey)
			if err != nil {
				return nil, err
			}
			return exchanged(t), nil
		}, 0),
		Public: map[string]bool{},
	}
	for _, m := range PublicMethods {
		g.Public[m] = true
	}
	return g
}

// userFromName parses users/{user} in field and returns the user id the
// caller may reach ("me" resolved).
func userFromName(ctx context.Context, field, name string) (string, error) {
	ids, err := resname.Parse(field, "users/*", name)
	if err != nil {
		return "", err
	}
	return authn.Authorize(ctx, field, ids[0])
}

func roleFromProto(field string, r authv1.Role) (identity.Role, error) {
	switch r {
	case authv1.Role_ROLE_UNSPECIFIED:
		return "", nil
	case authv1.Role_ROLE_USER:
		return identity.RoleUser, nil
	case authv1.Role_ROLE_ADMIN:
		return identity.RoleAdmin, nil
	}
	return "", apierror.Invalid(field, "%d is not a known role", int32(r))
}

func roleToProto(r identity.Role) authv1.Role {
	switch r {
	case identity.RoleUser:
		return authv1.Role_ROLE_USER
	case identity.RoleAdmin:
		return authv1.Role_ROLE_ADMIN
	}
	return authv1.Role_ROLE_UNSPECIFIED
}

func kindFromProto(k authv1.CredentialKind) (identity.CredentialKind, error) {
	switch k {
	case authv1.CredentialKind_CREDENTIAL_KIND_GMAIL_REFRESH_TOKEN:
		return identity.CredentialGmailRefreshToken, nil
	case authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD:
		return identity.CredentialIMAPPassword, nil
	case authv1.CredentialKind_CREDENTIAL_KIND_WEBHOOK_SECRET:
		return identity.CredentialWebhookSecret, nil
	}
	return "", apierror.Invalid("credential.kind", "must be CREDENTIAL_KIND_GMAIL_REFRESH_TOKEN, CREDENTIAL_KIND_IMAP_PASSWORD or CREDENTIAL_KIND_WEBHOOK_SECRET")
}

func kindToProto(k identity.CredentialKind) authv1.CredentialKind {
	switch k {
	case identity.CredentialGmailRefreshToken:
		return authv1.CredentialKind_CREDENTIAL_KIND_GMAIL_REFRESH_TOKEN
	case identity.CredentialIMAPPassword:
		return authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD
	case identity.CredentialWebhookSecret:
		return authv1.CredentialKind_CREDENTIAL_KIND_WEBHOOK_SECRET
	}
	return authv1.CredentialKind_CREDENTIAL_KIND_UNSPECIFIED
}

// credentialToProto returns c without its secret.
func credentialToProto(c identity.Credential) *authv1.Credential {
	return &authv1.Credential{
		Name:       identity.CredentialName(c.UserID, c.MailboxID),
		Kind:       kindToProto(c.Kind),
		KeyId:      c.KeyID,
		CreateTime: timestamppb.New(c.CreateTime),
	}
}

func userToProto(u identity.User) *authv1.User {
	return &authv1.User{
		Name:        resname.User(u.ID),
		DisplayName: u.DisplayName,
		Email:       u.Email,
		Role:        roleToProto(u.Role),
		CreateTime:  timestamppb.New(u.CreateTime),
	}
}

// apiKeyToProto returns k without its secret, which auth does not have.
func apiKeyToProto(k identity.APIKey) *authv1.ApiKey {
	pb := &authv1.ApiKey{
		Name:        resname.APIKey(k.UserID, k.ID),
		DisplayName: k.DisplayName,
		Prefix:      k.Prefix,
		CreateTime:  timestamppb.New(k.CreateTime),
	}
	if !k.LastUseTime.IsZero() {
		pb.LastUseTime = timestamppb.New(k.LastUseTime)
	}
	return pb
}
