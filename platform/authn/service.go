package authn

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"

	"mailroom.dev/platform/apierror"
)

// Service names, as they appear in service identity tokens ("sub") and in
// MAILROOM_SERVICE_KEYS.
const (
	ServiceAuth       = "auth"
	ServiceIngest     = "ingest"
	ServiceClassifier = "classifier"
	ServiceStore      = "store"
	ServiceGateway    = "gateway"
)

// KnownService reports whether name is one of the service names above.
func KnownService(name string) bool {
	switch name {
	case ServiceAuth, ServiceIngest, ServiceClassifier, ServiceStore, ServiceGateway:
		return true
	}
	return false
}

// RequireService refuses a caller that is not one of the named services. A
// user token, even an admin's, is refused: internal RPCs are for services.
func RequireService(ctx context.Context, names ...string) error {
	c, ok := FromContext(ctx)
	if !ok {
		return apierror.Unauthenticatedf("no credential was presented")
	}
	if c.Service != "" && slices.Contains(names, c.Service) {
		return nil
	}
	return apierror.Denied("only the %s service may call this", strings.Join(names, " or "))
}

// TokenFunc returns a current identity token.
type TokenFunc func(ctx context.Context) (string, error)

// KeyToken returns a TokenFunc that exchanges key through cache: a service's
// own service key, exchanged with auth for a service identity token.
func KeyToken(cache *KeyCache, key string) TokenFunc {
	return func(ctx context.Context) (string, error) { return cache.Token(ctx, key) }
}

// ServiceIdentity is what a service presents when it calls another service
// on its own behalf (not forwarding a user's identity).
type ServiceIdentity struct {
	// Name is the service's name, for errors.
	Name  string
	token TokenFunc
}

// NewServiceIdentity returns the identity of service name, whose tokens
// come from token.
func NewServiceIdentity(name string, token TokenFunc) *ServiceIdentity {
	return &ServiceIdentity{Name: name, token: token}
}

// Outgoing returns ctx whose outgoing gRPC metadata carries this service's
// token as the bearer credential, replacing any credential already there.
func (s *ServiceIdentity) Outgoing(ctx context.Context) (context.Context, error) {
	if s == nil || s.token == nil {
		return nil, apierror.Unauthenticatedf("this service has no service key (MAILROOM_SERVICE_KEY)")
	}
	tok, err := s.token(ctx)
	if err != nil {
		return nil, fmt.Errorf("authn: %s service token: %w", s.Name, err)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("authorization", "Bearer "+tok)
	return metadata.NewOutgoingContext(ctx, md), nil
}
