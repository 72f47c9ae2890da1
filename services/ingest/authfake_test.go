package ingest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
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

// fakeAuth is the part of the auth service that other services call: it
// publishes a JWKS and exchanges API keys for tokens it signs.
type fakeAuth struct {
	authv1.UnimplementedAuthServiceServer
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	// keys maps an API key to its user.
	keys map[string]string
}

const fakeKid = "test-key-1"

// startAuth serves a fakeAuth on a loopback port until the test ends.
func startAuth(t *testing.T) (*fakeAuth, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAuth{kid: fakeKid, priv: priv, pub: pub, keys: map[string]string{"mr_ada_test_key": "ada"}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	authv1.RegisterAuthServiceServer(s, a)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return a, lis.Addr().String()
}

// token signs an identity token for user with role "user" or "admin".
func (a *fakeAuth) token(t *testing.T, user, role string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authn.Issuer,
			Audience:  jwt.ClaimStrings{authn.Audience},
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
		},
		Role: role,
	})
	tok.Header["kid"] = a.kid
	s, err := tok.SignedString(a.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *fakeAuth) GetJwks(context.Context, *authv1.GetJwksRequest) (*authv1.GetJwksResponse, error) {
	return &authv1.GetJwksResponse{Keys: []*authv1.Jwk{{
		Kty: "OKP", Crv: "Ed25519", Alg: "EdDSA", Use: "sig", Kid: a.kid,
		X: base64.RawURLEncoding.EncodeToString(a.pub),
	}}}, nil
}

func (a *fakeAuth) ExchangeApiKey(_ context.Context, req *authv1.ExchangeApiKeyRequest) (*authv1.ExchangeApiKeyResponse, error) {
	user, ok := a.keys[req.GetApiKey()]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown API key")
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: authn.Issuer, Audience: jwt.ClaimStrings{authn.Audience}, Subject: user,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
		},
		Role: "user",
	})
	tok.Header["kid"] = a.kid
	s, err := tok.SignedString(a.priv)
	if err != nil {
		return nil, err
	}
	return &authv1.ExchangeApiKeyResponse{Token: s, ExpireTime: timestamppb.New(now.Add(5 * time.Minute)), User: "users/" + user}, nil
}
