package authn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
)

type keyring struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newKey(t *testing.T, kid string) keyring {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyring{kid: kid, priv: priv, pub: pub}
}

func (k keyring) jwk() *authv1.Jwk {
	return &authv1.Jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub), Kid: k.kid, Alg: "EdDSA", Use: "sig"}
}

func (k keyring) sign(t *testing.T, c authn.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub, role string, now time.Time) authn.Claims {
	return authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authn.Issuer,
			Audience:  jwt.ClaimStrings{authn.Audience},
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
		},
		Role: role,
	}
}

func TestVerify(t *testing.T) {
	k := newKey(t, "k1")
	other := newKey(t, "k2") // signs, but is not in the JWKS
	fetches := 0
	v := authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) {
		fetches++
		return []*authv1.Jwk{k.jwk()}, nil
	})
	now := time.Now()
	ctx := context.Background()

	good := k.sign(t, claims("ada", "user", now))
	c, err := v.Verify(ctx, good)
	if err != nil {
		t.Fatalf("Verify(good) = %v", err)
	}
	if got, want := c, (authn.Caller{User: "ada"}); got != want {
		t.Errorf("caller = %+v, want %+v", got, want)
	}
	admin, err := v.Verify(ctx, k.sign(t, claims("root", "admin", now)))
	if err != nil || !admin.Admin || admin.User != "root" {
		t.Errorf("admin token: caller %+v, err %v", admin, err)
	}

	expired := claims("ada", "user", now.Add(-time.Hour))
	future := claims("ada", "user", now.Add(time.Hour))
	wrongIss := claims("ada", "user", now)
	wrongIss.Issuer = "someone-else"
	wrongAud := claims("ada", "user", now)
	wrongAud.Audience = jwt.ClaimStrings{"other"}
	noExp := claims("ada", "user", now)
	noExp.ExpiresAt = nil
	badRole := claims("ada", "root", now)

	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"mailroom-auth","aud":["mailroom"],"sub":"bob","role":"admin","exp":9999999999}`)) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 0x01
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	noKid := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims("ada", "user", now))
	noKidTok, _ := noKid.SignedString(k.priv)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + parts[1] + "."
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("ada", "admin", now))
	hs.Header["kid"] = "k1"
	hsTok, _ := hs.SignedString([]byte(k.pub)) // the classic alg-confusion attack

	for name, tok := range map[string]string{
		"expired":       k.sign(t, expired),
		"not yet valid": k.sign(t, future),
		"wrong issuer":  k.sign(t, wrongIss),
		"wrong aud":     k.sign(t, wrongAud),
		"no expiry":     k.sign(t, noExp),
		"unknown role":  k.sign(t, badRole),
		"unknown kid":   other.sign(t, claims("ada", "user", now)),
		"tampered":      tampered,
		"tampered sig":  badSig,
		"no kid":        noKidTok,
		"unknown svc":   k.sign(t, claims("mallory", "service", now)),
		"alg none":      none,
		"alg HS256":     hsTok,
		"garbage":       "eyJ.not.a.token",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(ctx, tok)
			if got := apierror.KindOf(err); got != apierror.Unauthenticated {
				t.Fatalf("Verify = %v (kind %v), want Unauthenticated", err, got)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
	if fetches > 3 {
		t.Errorf("JWKS fetched %d times; unknown kids must not hammer auth", fetches)
	}
}

func TestVerifierPicksUpRotatedKey(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	keys := []*authv1.Jwk{k1.jwk()}
	v := authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) { return keys, nil })
	v.MinRefresh = 0
	ctx := context.Background()
	if _, err := v.Verify(ctx, k1.sign(t, claims("ada", "user", time.Now()))); err != nil {
		t.Fatal(err)
	}
	keys = []*authv1.Jwk{k1.jwk(), k2.jwk()}
	if _, err := v.Verify(ctx, k2.sign(t, claims("ada", "user", time.Now()))); err != nil {
		t.Fatalf("token of rotated key: %v", err)
	}
}

func TestAuthorize(t *testing.T) {
	ada := authn.NewContext(context.Background(), authn.Caller{User: "ada"})
	root := authn.NewContext(context.Background(), authn.Caller{User: "root", Admin: true})
	tests := []struct {
		ctx      context.Context
		user     string
		want     string
		wantKind apierror.Kind
	}{
		{ada, "me", "ada", 0},
		{ada, "ada", "ada", 0},
		{ada, "bob", "", apierror.PermissionDenied},
		{root, "bob", "bob", 0},
		{root, "me", "root", 0},
		{context.Background(), "ada", "", apierror.Unauthenticated},
	}
	for _, tt := range tests {
		got, err := authn.Authorize(tt.ctx, "parent", tt.user)
		if tt.wantKind != 0 {
			if apierror.KindOf(err) != tt.wantKind {
				t.Errorf("Authorize(%q) err = %v, want kind %v", tt.user, err, tt.wantKind)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Authorize(%q) = %q, %v; want %q", tt.user, got, err, tt.want)
		}
	}
}

func TestRequireService(t *testing.T) {
	k := newKey(t, "k1")
	v := authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) { return []*authv1.Jwk{k.jwk()}, nil })
	svc, err := v.Verify(context.Background(), k.sign(t, claims("ingest", "service", time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if svc != (authn.Caller{Service: "ingest"}) {
		t.Fatalf("service caller = %+v", svc)
	}
	ctx := authn.NewContext(context.Background(), svc)
	if err := authn.RequireService(ctx, authn.ServiceIngest); err != nil {
		t.Errorf("ingest refused: %v", err)
	}
	if err := authn.RequireService(ctx, authn.ServiceAuth); apierror.KindOf(err) != apierror.PermissionDenied {
		t.Errorf("ingest where auth is required: %v, want PermissionDenied", err)
	}
	admin := authn.NewContext(context.Background(), authn.Caller{User: "root", Admin: true})
	if err := authn.RequireService(admin, authn.ServiceIngest); apierror.KindOf(err) != apierror.PermissionDenied {
		t.Errorf("a user token where a service identity is required: %v, want PermissionDenied", err)
	}
	// A service identity reaches no user's data through Authorize.
	if _, err := authn.Authorize(ctx, "parent", "ada"); apierror.KindOf(err) != apierror.PermissionDenied {
		t.Errorf("Authorize(service, ada) = %v, want PermissionDenied", err)
	}
}

// During a rotation, requests carrying the new kid arrive together: they
// wait for one JWKS fetch, which brings the new key, and all verify.
func TestVerifierOneFetchForConcurrentUnknownKid(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	var fetches atomic.Int32
	release := make(chan struct{})
	v := authn.NewVerifier(func(context.Context) ([]*authv1.Jwk, error) {
		if fetches.Add(1) == 1 {
			return []*authv1.Jwk{k1.jwk()}, nil
		}
		<-release // slow enough for every request to arrive
		return []*authv1.Jwk{k1.jwk(), k2.jwk()}, nil
	})
	v.MinRefresh = 0
	ctx := context.Background()
	if _, err := v.Verify(ctx, k1.sign(t, claims("ada", "user", time.Now()))); err != nil {
		t.Fatal(err)
	}
	tok := k2.sign(t, claims("ada", "user", time.Now()))
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := v.Verify(ctx, tok)
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify(token of the new key) = %v", err)
		}
	}
	if got := fetches.Load(); got != 2 {
		t.Errorf("%d JWKS fetches, want 2: the first, and one shared by the concurrent requests", got)
	}
}

// A stale cache keeps verifying known keys without waiting while auth does
// not answer: the refresh it starts hangs until the test ends, so a Verify
// that waited for it would never return.
func TestVerifierServesStaleKeysWhileAuthIsAway(t *testing.T) {
	k := newKey(t, "k1")
	now := time.Now()
	var down atomic.Bool
	block := make(chan struct{})
	defer close(block)
	refreshing := make(chan struct{}, 1)
	v := authn.NewVerifier(func(ctx context.Context) ([]*authv1.Jwk, error) {
		if down.Load() {
			select {
			case refreshing <- struct{}{}:
			default:
			}
			<-block // auth hangs
			return nil, errors.New("unreachable")
		}
		return []*authv1.Jwk{k.jwk()}, nil
	})
	v.Now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := v.Verify(ctx, k.sign(t, claims("ada", "user", now))); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	now = now.Add(v.MaxAge + time.Minute)
	done := make(chan error, 1)
	go func() {
		for range 3 {
			if _, err := v.Verify(ctx, k.sign(t, claims("ada", "user", now))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// The deadline only reports a hang; no duration is asserted.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Verify with a stale cache while auth hangs: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Verify waited for a hanging auth")
	}
	select {
	case <-refreshing:
	case <-time.After(time.Minute):
		t.Error("the stale cache started no refresh")
	}
}
