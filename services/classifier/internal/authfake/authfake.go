// Package authfake stands in for the auth service in tests: a gRPC server
// with GetJwks and ExchangeApiKey, minting identity tokens (EdDSA JWTs with
// the claims platform/authn verifies) for any user the test names.
package authfake

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"strings"
	"sync"
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

// Server is a fake auth service.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	// Addr is where it listens (127.0.0.1:port).
	Addr string

	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	mu   sync.Mutex
	keys map[string]authn.Caller
}

// Start starts a fake auth server on a loopback port; it stops when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: lis.Addr().String(), kid: "test-key-1", priv: priv, pub: pub, keys: map[string]authn.Caller{}}
	gs := grpc.NewServer()
	authv1.RegisterAuthServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

// Token returns an identity token for user, valid for five minutes; admin
// gives it the admin role.
func (s *Server) Token(user string, admin bool) string {
	tok, _ := s.mint(authn.Caller{User: user, Admin: admin}, time.Now().Add(5*time.Minute))
	return tok
}

// ExpiredToken returns a token for user that expired a minute ago.
func (s *Server) ExpiredToken(user string) string {
	tok, _ := s.mint(authn.Caller{User: user}, time.Now().Add(-time.Minute))
	return tok
}

// AddAPIKey makes key an API key of user.
func (s *Server) AddAPIKey(key, user string, admin bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = authn.Caller{User: user, Admin: admin}
}

func (s *Server) mint(c authn.Caller, exp time.Time) (string, error) {
	role := "user"
	if c.Admin {
		role = "admin"
	}
	claims := authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authn.Issuer,
			Audience:  jwt.ClaimStrings{authn.Audience},
			Subject:   c.User,
			IssuedAt:  jwt.NewNumericDate(exp.Add(-10 * time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Role: role,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = s.kid
	return tok.SignedString(s.priv)
}

// GetJwks returns the signing key.
func (s *Server) GetJwks(context.Context, *authv1.GetJwksRequest) (*authv1.GetJwksResponse, error) {
	return &authv1.GetJwksResponse{Keys: []*authv1.Jwk{{
		Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig", Kid: s.kid,
		X: base64.RawURLEncoding.EncodeToString(s.pub),
	}}}, nil
}

// ExchangeApiKey trades a key added with AddAPIKey for a token.
func (s *Server) ExchangeApiKey(_ context.Context, req *authv1.ExchangeApiKeyRequest) (*authv1.ExchangeApiKeyResponse, error) {
	s.mu.Lock()
	c, ok := s.keys[req.GetApiKey()]
	s.mu.Unlock()
	if !ok || strings.TrimSpace(req.GetApiKey()) == "" {
		return nil, status.Error(codes.Unauthenticated, "invalid API key")
	}
	exp := time.Now().Add(5 * time.Minute)
	tok, err := s.mint(c, exp)
	if err != nil {
		return nil, status.Error(codes.Internal, "internal error")
	}
	role := authv1.Role_ROLE_USER
	if c.Admin {
		role = authv1.Role_ROLE_ADMIN
	}
	return &authv1.ExchangeApiKeyResponse{Token: tok, ExpireTime: timestamppb.New(exp), User: "users/" + c.User, Role: role}, nil
}
