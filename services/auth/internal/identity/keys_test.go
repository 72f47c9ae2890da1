package identity_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/vault"
)

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, &authn.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func kids(s *identity.Service) []string {
	var out []string
	for _, k := range s.JWKS() {
		out = append(out, k.Kid)
	}
	return out
}

// TestSigningKeyRotation rotates the signing key across two replicas of
// auth on one database: the new key is published before it signs, tokens
// of the old key keep verifying until they expire, then the old key goes.
func TestSigningKeyRotation(t *testing.T) {
	ctx := context.Background()
	url := testenv.SQLiteURL(t)
	c := &clock{}
	opts := identity.Options{Now: c.Now, RotateEvery: 24 * time.Hour, ReloadEvery: time.Minute, TokenTTL: 10 * time.Minute}
	a, repo, err := open(t, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := open(t, url, opts) // a second replica
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	_, key, err := a.CreateAPIKey(ctx, "ada", "")
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(s *identity.Service) string {
		t.Helper()
		tok, err := s.Exchange(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Value
	}
	v := verifier(a)
	v.Now = c.Now
	v.MinRefresh = 0
	verify := func(what, tok string) {
		t.Helper()
		if caller, err := v.Verify(ctx, tok); err != nil || caller.User != "ada" {
			t.Errorf("%s: Verify = %+v, %v", what, caller, err)
		}
	}
	old := kids(a)
	if len(old) != 1 || !slices.Equal(kids(b), old) {
		t.Fatalf("replicas start with JWKS %v and %v, want one shared key", old, kids(b))
	}
	k1 := old[0]

	// A day later the key is due. The replica that refreshes first creates
	// the next generation: published at once, not signing yet.
	c.Advance(24 * time.Hour)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	published := kids(a)
	if len(published) != 2 || published[1] != k1 {
		t.Fatalf("after the rotation, JWKS = %v, want a new key and %s", published, k1)
	}
	k2 := published[0]
	if got := kidOf(t, exchange(a)); got != k1 {
		t.Errorf("right after the rotation a signs with %s, want %s until the new key activates", got, k1)
	}
	// The other replica picks the new key up at its next reload; a second
	// rotation does not happen.
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(b); !slices.Equal(got, published) {
		t.Errorf("after its reload, b publishes %v, want %v", got, published)
	}
	oldTok := exchange(b) // signed by k1, a second before the switch
	c.Advance(2*time.Minute + 9*time.Second)
	if got := kidOf(t, oldTok); got != k1 {
		t.Fatalf("a token of just before the switch is signed by %s, want %s", got, k1)
	}

	// At activation both replicas sign with the new key; the old token
	// still verifies.
	c.Advance(2 * time.Second)
	newTok := exchange(b)
	if got := kidOf(t, newTok); got != k2 {
		t.Errorf("after activation b signs with %s, want %s", got, k2)
	}
	if got := kidOf(t, exchange(a)); got != k2 {
		t.Errorf("after activation a signs with %s, want %s", got, k2)
	}
	verify("the old key's token after the switch", oldTok)
	verify("the new key's token", newTok)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(a); len(got) != 2 {
		t.Errorf("the old key left the JWKS while its tokens live: %v", got)
	}

	// Once every token of the old key has expired, it is retired and its
	// private key erased.
	c.Advance(10*time.Minute + time.Minute + time.Second)
	for _, s := range []*identity.Service{a, b} {
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := kids(s); !slices.Equal(got, []string{k2}) {
			t.Errorf("after the old tokens expired, JWKS = %v, want [%s]", got, k2)
		}
	}
	stored, err := repo.SigningKeys(ctx)
	if err != nil || len(stored) != 1 || stored[0].ID != k2 {
		t.Errorf("stored keys = %v, %v; want %s alone", stored, err, k2)
	}
	verify("a token after the retirement", exchange(b))
	fresh := verifier(a) // no key cached: it fetches the current JWKS
	fresh.Now = c.Now
	if _, err := fresh.Verify(ctx, oldTok); err == nil || !strings.Contains(err.Error(), "unknown key id") {
		t.Errorf("a token of the retired key: Verify = %v, want unknown key id", err)
	}

	// A replica that starts now loads the current key only.
	later, _, err := open(t, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(later); !slices.Equal(got, []string{k2}) {
		t.Errorf("a new replica publishes %v, want [%s]", got, k2)
	}
}

func TestRotationTooFrequentIsRefused(t *testing.T) {
	_, _, err := open(t, testenv.SQLiteURL(t), identity.Options{RotateEvery: 3 * time.Minute, ReloadEvery: time.Minute, TokenTTL: 2 * time.Minute})
	if err == nil || !strings.Contains(err.Error(), "too frequent") {
		t.Errorf("New with a 3m rotation and a 2m TTL = %v, want a refusal", err)
	}
}

// TestSigningKeysEncryptedAtRest: with a key-encryption key, the stored
// signing key is sealed; keys stored in the clear before one was configured
// are encrypted at the next start; without the KEK auth refuses to start.
func TestSigningKeysEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	url := testenv.SQLiteURL(t)
	plain, repo, err := open(t, url, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kid := kids(plain)[0]
	stored, _ := repo.SigningKeys(ctx)
	if stored[0].Seed.KeyID != "" || len(stored[0].Seed.Ciphertext) != 32 {
		t.Fatalf("without a KEK the seed is stored as %+v, want in the clear", stored[0].Seed)
	}
	seed := bytes.Clone(stored[0].Seed.Ciphertext)

	ring, err := vault.ParseKeyring(vault.NewKey("k1"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, _, err := open(t, url, identity.Options{Vault: ring})
	if err != nil {
		t.Fatalf("start with a KEK: %v", err)
	}
	if got := kids(sealed); !slices.Equal(got, []string{kid}) {
		t.Errorf("after encryption, JWKS = %v, want the same key %s", got, kid)
	}
	stored, _ = repo.SigningKeys(ctx)
	if stored[0].Seed.KeyID != "k1" || bytes.Contains(stored[0].Seed.Ciphertext, seed) || bytes.Contains(stored[0].Seed.WrappedKey, seed) {
		t.Errorf("the stored key is %+v, want it sealed under k1", stored[0].Seed)
	}
	if _, _, err := open(t, url, identity.Options{}); err == nil || !strings.Contains(err.Error(), "MAILROOM_VAULT_KEYS") {
		t.Errorf("start without the KEK = %v, want an error naming MAILROOM_VAULT_KEYS", err)
	}
	other, _ := vault.ParseKeyring(vault.NewKey("k2"))
	if _, _, err := open(t, url, identity.Options{Vault: other}); err == nil || !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("start with another KEK = %v, want an error naming k1", err)
	}
	// A fresh database with a KEK never stores the seed in the clear.
	_, repo2, err := open(t, testenv.SQLiteURL(t), identity.Options{Vault: ring})
	if err != nil {
		t.Fatal(err)
	}
	if stored, _ := repo2.SigningKeys(ctx); stored[0].Seed.KeyID != "k1" {
		t.Errorf("a new key is stored as %+v, want sealed", stored[0].Seed)
	}
}

func TestServiceKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, nil)
	ingestKey := "mr_" + strings.Repeat("i", 40)
	storeKey := "mr_" + strings.Repeat("s", 40)
	if err := s.SetServiceKeys(ctx, map[string]string{"ingest": ingestKey, "store": storeKey}); err != nil {
		t.Fatalf("SetServiceKeys: %v", err)
	}
	tok, err := s.Exchange(ctx, ingestKey)
	if err != nil {
		t.Fatalf("Exchange(ingest's key): %v", err)
	}
	if tok.Service != "ingest" || tok.User.ID != "" {
		t.Errorf("Exchange = service %q user %q, want ingest and no user", tok.Service, tok.User.ID)
	}
	caller, err := verifier(s).Verify(ctx, tok.Value)
	if err != nil || caller != (authn.Caller{Service: "ingest"}) {
		t.Errorf("Verify(ingest's token) = %+v, %v", caller, err)
	}
	// Idempotent, and a new key replaces the service's earlier one.
	if err := s.SetServiceKeys(ctx, map[string]string{"ingest": ingestKey}); err != nil {
		t.Fatal(err)
	}
	rotated := "mr_" + strings.Repeat("j", 40)
	if err := s.SetServiceKeys(ctx, map[string]string{"ingest": rotated}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exchange(ctx, ingestKey); kind(err) != apierror.Unauthenticated {
		t.Errorf("Exchange(replaced key) = %v, want Unauthenticated", err)
	}
	if tok, err := s.Exchange(ctx, rotated); err != nil || tok.Service != "ingest" {
		t.Errorf("Exchange(new ingest key) = %q, %v", tok.Service, err)
	}
	if tok, err := s.Exchange(ctx, storeKey); err != nil || tok.Service != "store" {
		t.Errorf("a service not named keeps its key: %q, %v", tok.Service, err)
	}

	secret := "mr_" + strings.Repeat("x", 40)
	for name, keys := range map[string]map[string]string{
		"unknown service":  {"mailer": secret},
		"short key":        {"store": "mr_short"},
		"two services":     {"classifier": secret, "gateway": secret},
		"looks like a JWT": {"store": "eyJ" + strings.Repeat("a", 40) + ".b.c"},
	} {
		err := s.SetServiceKeys(ctx, keys)
		if err == nil {
			t.Errorf("%s: SetServiceKeys succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "mr_short") {
			t.Errorf("%s: the error %q repeats the key", name, err)
		}
	}
	if _, err := s.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	_, apiKey, _ := s.CreateAPIKey(ctx, "ada", "")
	if err := s.SetServiceKeys(ctx, map[string]string{"gateway": apiKey}); err == nil {
		t.Error("SetServiceKeys took an API key for a service key")
	}
}

func TestServiceToken(t *testing.T) {
	ctx := context.Background()
	c := &clock{}
	s, _ := newService(t, c)
	tok, err := s.ServiceToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(s)
	v.Now = c.Now
	if caller, err := v.Verify(ctx, tok); err != nil || caller != (authn.Caller{Service: "auth"}) {
		t.Errorf("Verify(auth's own token) = %+v, %v", caller, err)
	}
	if again, _ := s.ServiceToken(ctx); again != tok {
		t.Error("the token is not reused")
	}
	c.Advance(90 * time.Second) // the TTL is 2m: less than a quarter is left
	renewed, _ := s.ServiceToken(ctx)
	if renewed == tok {
		t.Error("a token near its expiry is still reused")
	}
	if _, err := v.Verify(ctx, renewed); err != nil {
		t.Errorf("Verify(renewed) = %v", err)
	}
}
