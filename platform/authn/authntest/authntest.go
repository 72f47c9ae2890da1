// Package authntest stands in for the auth service in tests of the other
// services: a gRPC server with GetJwks and ExchangeApiKey that signs
// identity tokens (EdDSA JWTs with the claims platform/authn verifies) for
// any user or service a test names, and a credential vault that only the
// ingest service may use (checked by the real authn.Guard).
package authntest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
)

// Server is a fake auth service. Register it on a server of the test's own
// (New), or let Start serve it.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	// Addr is where Start serves it (127.0.0.1:port).
	Addr string
	// Exchanges counts the ExchangeApiKey calls.
	Exchanges atomic.Int32

	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	mu    sync.Mutex
	keys  map[string]authn.Caller
	vault map[string][]byte
}

// New returns a fake auth service with a fresh signing key.
func New(t testing.TB) *Server {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{kid: "test-key-1", priv: priv, pub: pub, keys: map[string]authn.Caller{},
		vault: map[string][]byte{}}
}

// Start serves a new fake on a loopback port until the test ends, behind
// the real authn.Guard (GetJwks and ExchangeApiKey are public).
func Start(t testing.TB) *Server {
	t.Helper()
	s := New(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	guard := &authn.Guard{
		Verifier: authn.NewVerifier(func(ctx context.Context) ([]*authv1.Jwk, error) { return s.jwks(), nil }),
		Public: map[string]bool{
			authv1.AuthService_GetJwks_FullMethodName:        true,
			authv1.AuthService_ExchangeApiKey_FullMethodName: true,
		},
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(guard.Unary()))
	authv1.RegisterAuthServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	s.Addr = lis.Addr().String()
	return s
}

// Token returns an identity token for user, valid for five minutes; admin
// gives it the admin role.
func (s *Server) Token(user string, admin bool) string {
	return s.TokenFor(authn.Caller{User: user, Admin: admin})
}

// ServiceToken returns a service identity token of the service called name.
func (s *Server) ServiceToken(name string) string {
	return s.TokenFor(authn.Caller{Service: name})
}

// TokenFor returns an identity token for c, valid for five minutes.
func (s *Server) TokenFor(c authn.Caller) string {
	tok, _ := s.mint(c, time.Now().Add(5*time.Minute))
	return tok
}

// ExpiredToken returns a token for user that expired a minute ago.
func (s *Server) ExpiredToken(user string) string {
	tok, _ := s.mint(authn.Caller{User: user}, time.Now().Add(-time.Minute))
	return tok
}

// AddAPIKey makes key an API key of user.
func (s *Server) AddAPIKey(key, user string, admin bool) {
	s.AddKey(key, authn.Caller{User: user, Admin: admin})
}

// AddKey makes key an API key (or a service key) of c.
func (s *Server) AddKey(key string, c authn.Caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = c
}

func (s *Server) mint(c authn.Caller, exp time.Time) (string, error) {
	role, sub := "user", c.User
	switch {
	case c.Service != "":
		role, sub = "service", c.Service
	case c.Admin:
		role = "admin"
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authn.Issuer,
			Audience:  jwt.ClaimStrings{authn.Audience},
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(exp.Add(-10 * time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Role: role,
	})
	tok.Header["kid"] = s.kid
	return tok.SignedString(s.priv)
}

func (s *Server) jwks() []*authv1.Jwk {
	return []*authv1.Jwk{{
		Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig", Kid: s.kid,
		X: base64.RawURLEncoding.EncodeToString(s.pub),
	}}
}

// GetJwks returns the signing key.
func (s *Server) GetJwks(context.Context, *authv1.GetJwksRequest) (*authv1.GetJwksResponse, error) {
	return &authv1.GetJwksResponse{Keys: s.jwks()}, nil
}

// ExchangeApiKey trades a key added with AddAPIKey or AddKey for a token.
func (s *Server) ExchangeApiKey(_ context.Context, req *authv1.ExchangeApiKeyRequest) (*authv1.ExchangeApiKeyResponse, error) {
	s.Exchanges.Add(1)
	c, ok := s.lookup(req.GetApiKey())
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "invalid API key")
	}
	exp := time.Now().Add(5 * time.Minute)
	tok, err := s.mint(c, exp)
	if err != nil {
		return nil, status.Error(codes.Internal, "internal error")
	}
	resp := &authv1.ExchangeApiKeyResponse{Token: tok, ExpireTime: timestamppb.New(exp), Role: authv1.Role_ROLE_USER}
	switch {
	case c.Service != "":
		resp.User, resp.Role = "", authv1.Role_ROLE_UNSPECIFIED
	case c.Admin:
		resp.User, resp.Role = "users/"+c.User, authv1.Role_ROLE_ADMIN
	default:
		resp.User = "users/" + c.User
	}
	return resp, nil
}

// lookup finds key in constant time per entry, as auth compares hashes.
func (s *Server) lookup(key string) (authn.Caller, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.keys {
		if key != "" && subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			return c, true
		}
	}
	return authn.Caller{}, false
}

// vaultCall lets only the store reach webhooks' secrets and only ingest
// the other credentials, as auth does.
func vaultCall(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "users/") && strings.Contains(name, "/webhooks/") {
		return authn.RequireService(ctx, authn.ServiceStore)
	}
	return authn.RequireService(ctx, authn.ServiceIngest)
}

// PutCredential stores a credential in the fake vault.
func (s *Server) PutCredential(ctx context.Context, req *authv1.PutCredentialRequest) (*authv1.PutCredentialResponse, error) {
	c := req.GetCredential()
	if err := vaultCall(ctx, c.GetName()); err != nil {
		return nil, err
	}
	if c.GetKind() == authv1.CredentialKind_CREDENTIAL_KIND_UNSPECIFIED || len(c.GetSecret()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "credential kind and secret are required")
	}
	s.mu.Lock()
	s.vault[c.GetName()] = c.GetSecret()
	s.mu.Unlock()
	return &authv1.PutCredentialResponse{Credential: &authv1.Credential{Name: c.GetName(), Kind: c.GetKind()}}, nil
}

// GetCredential returns a credential of the fake vault.
func (s *Server) GetCredential(ctx context.Context, req *authv1.GetCredentialRequest) (*authv1.GetCredentialResponse, error) {
	if err := vaultCall(ctx, req.GetName()); err != nil {
		return nil, err
	}
	secret, ok := s.Secret(req.GetName())
	if !ok {
		return nil, status.Error(codes.NotFound, "no credential")
	}
	return &authv1.GetCredentialResponse{Credential: &authv1.Credential{Name: req.GetName(), Secret: secret}}, nil
}

// DeleteCredential deletes a credential of the fake vault.
func (s *Server) DeleteCredential(ctx context.Context, req *authv1.DeleteCredentialRequest) (*authv1.DeleteCredentialResponse, error) {
	if err := vaultCall(ctx, req.GetName()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := s.vault[req.GetName()]
	delete(s.vault, req.GetName())
	s.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "no credential")
	}
	return &authv1.DeleteCredentialResponse{}, nil
}

// Secret returns the vault's secret called name.
func (s *Server) Secret(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, ok := s.vault[name]
	return secret, ok
}
