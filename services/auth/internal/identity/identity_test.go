package identity_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/resname"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/sqlrepo"
)

// clock is real time plus an offset that tests advance.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// newService returns a Service on a fresh SQLite database, and its
// repository.
func newService(t *testing.T, c *clock) (*identity.Service, identity.Repository) {
	t.Helper()
	return serviceOn(t, testenv.SQLiteURL(t), c)
}

// serviceOn returns a Service on the database at url, and its repository.
func serviceOn(t *testing.T, url string, c *clock) (*identity.Service, identity.Repository) {
	t.Helper()
	opts := identity.Options{}
	if c != nil {
		opts.Now = c.Now
	}
	s, repo, err := open(t, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, repo
}

// open returns a Service with opts (a 2 minute token TTL and a silent
// logger unless set) on the database at url, and its repository.
func open(t *testing.T, url string, opts identity.Options) (*identity.Service, identity.Repository, error) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlrepo.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	repo := sqlrepo.New(db.SQL)
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := identity.New(ctx, repo, opts)
	return s, repo, err
}

func kind(err error) apierror.Kind {
	if err == nil {
		return -1
	}
	return apierror.KindOf(err)
}

func TestValidateUserID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"ada", true},
		{"ada-lovelace-2", true},
		{"a" + strings.Repeat("b", 62), true},
		{"a" + strings.Repeat("b", 63), false},
		{"ab", false},
		{"me", false},
		{"Ada", false},
		{"1ada", false},
		{"-ada", false},
		{"ada_l", false},
		{"ada.l", false},
		{"adá", false},
	} {
		err := identity.ValidateUserID("user_id", tc.id)
		if got := err == nil; got != tc.ok {
			t.Errorf("ValidateUserID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && apierror.KindOf(err) != apierror.InvalidArgument {
			t.Errorf("ValidateUserID(%q) kind = %v, want InvalidArgument", tc.id, apierror.KindOf(err))
		}
	}
}

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)

	u, err := s.CreateUser(ctx, "", identity.User{DisplayName: "Someone"})
	if err != nil {
		t.Fatalf("CreateUser(random id): %v", err)
	}
	if err := identity.ValidateUserID("user_id", u.ID); err != nil {
		t.Errorf("random user id %q is not valid: %v", u.ID, err)
	}
	if u.Role != identity.RoleUser {
		t.Errorf("default role = %q, want %q", u.Role, identity.RoleUser)
	}

	if _, err := s.CreateUser(ctx, "ada", identity.User{Email: "ada@example.com"}); err != nil {
		t.Fatalf("CreateUser(ada): %v", err)
	}
	for _, tc := range []struct {
		name string
		id   string
		u    identity.User
		want apierror.Kind
	}{
		{"duplicate", "ada", identity.User{}, apierror.AlreadyExists},
		{"reserved", "me", identity.User{}, apierror.InvalidArgument},
		{"bad email", "bob", identity.User{Email: "not an address"}, apierror.InvalidArgument},
		{"display name too long", "bob", identity.User{DisplayName: strings.Repeat("x", 201)}, apierror.InvalidArgument},
		{"unknown role", "bob", identity.User{Role: "root"}, apierror.InvalidArgument},
	} {
		if _, err := s.CreateUser(ctx, tc.id, tc.u); kind(err) != tc.want {
			t.Errorf("%s: CreateUser = %v, want kind %v", tc.name, err, tc.want)
		}
	}
}

func TestListUsersPages(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	for _, id := range []string{"cat", "ant", "bee", "dog", "eel"} {
		if _, err := s.CreateUser(ctx, id, identity.User{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		users, next, err := s.ListUsers(ctx, 2, token)
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		for _, u := range users {
			got = append(got, u.ID)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("ListUsers never ends")
		}
		token = next
	}
	if want := "ant bee cat dog eel"; strings.Join(got, " ") != want {
		t.Errorf("ListUsers pages = %v, want %s", got, want)
	}
	if _, _, err := s.ListUsers(ctx, 2, "not a token!"); kind(err) != apierror.InvalidArgument {
		t.Errorf("ListUsers(bad token) = %v, want InvalidArgument", err)
	}
	if _, _, err := s.ListUsers(ctx, -1, ""); kind(err) != apierror.InvalidArgument {
		t.Errorf("ListUsers(page_size -1) = %v, want InvalidArgument", err)
	}
}

func verifier(s *identity.Service) *authn.Verifier {
	return authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) {
		var out []*authv1.Jwk
		for _, k := range s.JWKS() {
			out = append(out, &authv1.Jwk{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use})
		}
		return out, nil
	})
}

func TestExchange(t *testing.T) {
	ctx := context.Background()
	c := &clock{}
	s, repo := newService(t, c)
	if _, err := s.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	k, secret, err := s.CreateAPIKey(ctx, "ada", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, authn.APIKeyPrefix) || len(secret) != len(authn.APIKeyPrefix)+52 {
		t.Errorf("secret has the shape %q…(%d chars), want mr_ and 52 base32 characters", secret[:5], len(secret))
	}
	if !strings.HasPrefix(secret, k.Prefix) || len(k.Prefix) != 10 {
		t.Errorf("prefix %q is not the secret's first 10 characters", k.Prefix)
	}
	if !resname.ValidID(k.ID) {
		t.Errorf("key id %q is not a valid resource id", k.ID)
	}
	if authn.LooksLikeJWT(secret) {
		t.Error("an API key looks like a JWT to authn")
	}

	tok, err := s.Exchange(ctx, secret)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	caller, err := verifier(s).Verify(ctx, tok.Value)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if want := (authn.Caller{User: "ada"}); caller != want {
		t.Errorf("caller = %+v, want %+v", caller, want)
	}
	var claims authn.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(tok.Value, &claims); err != nil {
		t.Fatal(err)
	}
	if !claims.ExpiresAt.Time.Equal(tok.ExpireTime) {
		t.Errorf("exp claim %v != ExpireTime %v", claims.ExpiresAt.Time, tok.ExpireTime)
	}
	if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != 2*time.Minute {
		t.Errorf("exp - iat = %v, want the TTL 2m", got)
	}
	if claims.NotBefore == nil || claims.ID == "" {
		t.Errorf("claims lack nbf or jti: %+v", claims)
	}
	// The wire form, as other languages' verifiers would read it.
	parts := strings.Split(tok.Value, ".")
	var header, payload map[string]any
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "EdDSA" || header["kid"] != s.JWKS()[0].Kid {
		t.Errorf("header = %v, want alg EdDSA and the kid of the JWKS key", header)
	}
	if aud, _ := payload["aud"].([]any); len(aud) != 1 || aud[0] != "mailroom" || payload["iss"] != "mailroom-auth" || payload["sub"] != "ada" || payload["role"] != "user" {
		t.Errorf("payload = %v, want iss mailroom-auth, aud [mailroom], sub ada, role user", payload)
	}

	// The last use is recorded, at most once a minute.
	first, _ := repo.GetAPIKey(ctx, "ada", k.ID)
	if first.LastUseTime.IsZero() {
		t.Fatal("LastUseTime not set by the exchange")
	}
	c.Advance(30 * time.Second)
	if _, err := s.Exchange(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got, _ := repo.GetAPIKey(ctx, "ada", k.ID); !got.LastUseTime.Equal(first.LastUseTime) {
		t.Errorf("LastUseTime moved within a minute: %v → %v", first.LastUseTime, got.LastUseTime)
	}
	c.Advance(time.Minute)
	if _, err := s.Exchange(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got, _ := repo.GetAPIKey(ctx, "ada", k.ID); !got.LastUseTime.After(first.LastUseTime) {
		t.Errorf("LastUseTime did not move after a minute: %v → %v", first.LastUseTime, got.LastUseTime)
	}

	for _, bad := range []string{"mr_unknown", secret + "x", strings.ToUpper(secret), strings.Repeat("x", 5000)} {
		_, err := s.Exchange(ctx, bad)
		if kind(err) != apierror.Unauthenticated {
			t.Errorf("Exchange(bad key) = %v, want Unauthenticated", err)
		}
		if err != nil && strings.Contains(err.Error(), bad[:8]) {
			t.Errorf("the error %q repeats the key", err)
		}
	}
	if _, err := s.Exchange(ctx, ""); kind(err) != apierror.InvalidArgument {
		t.Errorf("Exchange(\"\") = %v, want InvalidArgument", err)
	}

	if err := s.DeleteAPIKey(ctx, "ada", k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exchange(ctx, secret); kind(err) != apierror.Unauthenticated {
		t.Errorf("Exchange(revoked) = %v, want Unauthenticated", err)
	}
	if err := s.DeleteAPIKey(ctx, "ada", k.ID); kind(err) != apierror.NotFound {
		t.Errorf("DeleteAPIKey(again) = %v, want NotFound", err)
	}
}

func TestCreateAPIKeyUnknownUser(t *testing.T) {
	s, _ := newService(t, nil)
	if _, _, err := s.CreateAPIKey(context.Background(), "nobody", ""); kind(err) != apierror.NotFound {
		t.Errorf("CreateAPIKey(nobody) = %v, want NotFound", err)
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	url := testenv.SQLiteURL(t)
	s, repo := serviceOn(t, url, nil)

	const token = "dev-bootstrap-token-0123456789"
	if err := s.Bootstrap(ctx, token); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	admin, err := s.GetUser(ctx, identity.BootstrapUser)
	if err != nil || admin.Role != identity.RoleAdmin {
		t.Fatalf("after Bootstrap, admin = %+v, %v; want an admin", admin, err)
	}
	exchangeAs := func(s *identity.Service, secret string) (identity.Role, error) {
		tok, err := s.Exchange(ctx, secret)
		return tok.User.Role, err
	}
	if role, err := exchangeAs(s, token); err != nil || role != identity.RoleAdmin {
		t.Fatalf("Exchange(bootstrap token) = %q, %v; want admin", role, err)
	}
	keys, _, err := s.ListAPIKeys(ctx, identity.BootstrapUser, 0, "")
	if err != nil || len(keys) != 1 {
		t.Fatalf("admin's keys = %v, %v; want the bootstrap key", keys, err)
	}
	if p := keys[0].Prefix; !strings.HasPrefix(token, p) || len(p) > len(token)/4 {
		t.Errorf("bootstrap prefix %q reveals more than a quarter of the token", p)
	}

	// A restart on the same database with the same token changes nothing,
	// and signs with the same key.
	again, _ := serviceOn(t, url, nil)
	if err := again.Bootstrap(ctx, token); err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	if a, b := s.JWKS(), again.JWKS(); len(a) != 1 || len(b) != 1 || a[0] != b[0] {
		t.Errorf("JWKS differ across a restart: %v vs %v", a, b)
	}
	if after, _ := repo.GetAPIKey(ctx, identity.BootstrapUser, identity.BootstrapKey); !after.CreateTime.Equal(keys[0].CreateTime) {
		t.Errorf("the bootstrap key was rewritten by an idempotent bootstrap")
	}

	// A new token replaces the old one.
	const rotated = "rotated-bootstrap-token-abcdefghij"
	if err := again.Bootstrap(ctx, rotated); err != nil {
		t.Fatalf("Bootstrap(rotated): %v", err)
	}
	if _, err := exchangeAs(again, rotated); err != nil {
		t.Errorf("Exchange(new token) = %v", err)
	}
	if _, err := exchangeAs(again, token); kind(err) != apierror.Unauthenticated {
		t.Errorf("Exchange(old token) after rotation = %v, want Unauthenticated", err)
	}

	// A deleted bootstrap key comes back while the variable holds its token.
	if err := again.DeleteAPIKey(ctx, identity.BootstrapUser, identity.BootstrapKey); err != nil {
		t.Fatal(err)
	}
	if _, err := exchangeAs(again, rotated); kind(err) != apierror.Unauthenticated {
		t.Errorf("Exchange(deleted bootstrap key) = %v, want Unauthenticated", err)
	}
	if err := again.Bootstrap(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := exchangeAs(again, rotated); err != nil {
		t.Errorf("Exchange after re-bootstrap = %v", err)
	}

	// A token that is another key's secret is refused.
	if _, err := s.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	_, adaKey, err := s.CreateAPIKey(ctx, "ada", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Bootstrap(ctx, adaKey); err == nil {
		t.Error("Bootstrap(ada's key) succeeded, want an error")
	}
	if _, err := exchangeAs(again, rotated); err != nil {
		t.Errorf("a refused bootstrap broke the current token: %v", err)
	}
	if role, err := exchangeAs(again, adaKey); err != nil || role != identity.RoleUser {
		t.Errorf("a refused bootstrap changed ada's key: %q, %v", role, err)
	}
}

func TestBootstrapPromotesAdmin(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	if _, err := s.CreateUser(ctx, identity.BootstrapUser, identity.User{Role: identity.RoleUser}); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(ctx, "a-long-enough-bootstrap-token"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.GetUser(ctx, identity.BootstrapUser); u.Role != identity.RoleAdmin {
		t.Errorf("admin role = %q after Bootstrap, want admin", u.Role)
	}
}
