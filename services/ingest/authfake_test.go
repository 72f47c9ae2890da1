package ingest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
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

// fakeAuth is the part of the auth service that other services call: it
// publishes a JWKS, exchanges API keys (users') and service keys for tokens
// it signs, and keeps a credential vault that only the ingest service may
// use (checked by the real authn.Guard and authn.RequireService).
type fakeAuth struct {
	authv1.UnimplementedAuthServiceServer
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	// keys maps an API key to its user.
	keys map[string]string

	mu sync.Mutex
	// vault maps a credential name to its secret.
	vault map[string][]byte
	// vaultCalls counts the vault calls by method.
	vaultCalls map[string]int
}

// serviceKey is ingest's service key in tests.
const serviceKey = "mr_ingest_service_key"

const fakeKid = "test-key-1"

// startAuth serves a fakeAuth on a loopback port until the test ends.
func startAuth(t *testing.T) (*fakeAuth, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAuth{kid: fakeKid, priv: priv, pub: pub, keys: map[string]string{"mr_ada_test_key": "ada"},
		vault: map[string][]byte{}, vaultCalls: map[string]int{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	guard := &authn.Guard{
		Verifier: authn.NewVerifier(func(ctx context.Context) ([]*authv1.Jwk, error) {
			resp, err := a.GetJwks(ctx, nil)
			return resp.GetKeys(), err
		}),
		Public: map[string]bool{
			authv1.AuthService_GetJwks_FullMethodName:        true,
			authv1.AuthService_ExchangeApiKey_FullMethodName: true,
		},
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(guard.Unary()))
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
	user, role := a.keys[req.GetApiKey()], "user"
	if req.GetApiKey() == serviceKey {
		user, role = authn.ServiceIngest, "service"
	}
	if user == "" {
		return nil, status.Error(codes.Unauthenticated, "unknown API key")
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: authn.Issuer, Audience: jwt.ClaimStrings{authn.Audience}, Subject: user,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
		},
		Role: role,
	})
	tok.Header["kid"] = a.kid
	s, err := tok.SignedString(a.priv)
	if err != nil {
		return nil, err
	}
	return &authv1.ExchangeApiKeyResponse{Token: s, ExpireTime: timestamppb.New(now.Add(5 * time.Minute)), User: "users/" + user}, nil
}

func (a *fakeAuth) vaultCall(ctx context.Context, method string) error {
	if err := authn.RequireService(ctx, authn.ServiceIngest); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.vaultCalls[method]++
	return nil
}

func (a *fakeAuth) PutCredential(ctx context.Context, req *authv1.PutCredentialRequest) (*authv1.PutCredentialResponse, error) {
	if err := a.vaultCall(ctx, "Put"); err != nil {
		return nil, err
	}
	c := req.GetCredential()
	if c.GetKind() == authv1.CredentialKind_CREDENTIAL_KIND_UNSPECIFIED || len(c.GetSecret()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "credential kind and secret are required")
	}
	a.mu.Lock()
	a.vault[c.GetName()] = c.GetSecret()
	a.mu.Unlock()
	return &authv1.PutCredentialResponse{Credential: &authv1.Credential{Name: c.GetName(), Kind: c.GetKind()}}, nil
}

func (a *fakeAuth) GetCredential(ctx context.Context, req *authv1.GetCredentialRequest) (*authv1.GetCredentialResponse, error) {
	if err := a.vaultCall(ctx, "Get"); err != nil {
		return nil, err
	}
	a.mu.Lock()
	secret, ok := a.vault[req.GetName()]
	a.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "no credential")
	}
	return &authv1.GetCredentialResponse{Credential: &authv1.Credential{Name: req.GetName(), Secret: secret}}, nil
}

func (a *fakeAuth) DeleteCredential(ctx context.Context, req *authv1.DeleteCredentialRequest) (*authv1.DeleteCredentialResponse, error) {
	if err := a.vaultCall(ctx, "Delete"); err != nil {
		return nil, err
	}
	a.mu.Lock()
	_, ok := a.vault[req.GetName()]
	delete(a.vault, req.GetName())
	a.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "no credential")
	}
	return &authv1.DeleteCredentialResponse{}, nil
}

// secret returns the vault's secret for name.
func (a *fakeAuth) secret(name string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.vault[name]
	return s, ok
}
