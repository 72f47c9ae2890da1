package vault_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"mailroom.dev/services/auth/internal/vault"
)

func key(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func keyring(t *testing.T, spec string) *vault.Keyring {
	t.Helper()
	r, err := vault.ParseKeyring(spec)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	r := keyring(t, "k1:"+key(t))
	aad := vault.CredentialAAD("ada", "work", "imap_password")
	secret := []byte("hunter2-correct-horse")
	s, err := r.Seal(aad, secret)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != "k1" {
		t.Errorf("KeyID = %q, want the active k1", s.KeyID)
	}
	if bytes.Contains(s.Ciphertext, secret) || bytes.Contains(s.WrappedKey, secret) {
		t.Error("the sealed value holds the plaintext")
	}
	got, err := r.Open(aad, s)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v; want the secret", got, err)
	}
	// A fresh data key and nonce every time: the same secret seals differently.
	again, _ := r.Seal(aad, secret)
	if bytes.Equal(again.Ciphertext, s.Ciphertext) || bytes.Equal(again.WrappedKey, s.WrappedKey) {
		t.Error("two seals of one secret are equal")
	}
	// An empty secret round-trips too.
	empty, _ := r.Seal(aad, nil)
	if got, err := r.Open(aad, empty); err != nil || len(got) != 0 {
		t.Errorf("Open(empty) = %q, %v", got, err)
	}
}

func TestWrongAAD(t *testing.T) {
	r := keyring(t, "k1:"+key(t))
	s, err := r.Seal(vault.CredentialAAD("ada", "work", "imap_password"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for name, aad := range map[string][]byte{
		"another mailbox": vault.CredentialAAD("ada", "home", "imap_password"),
		"another user":    vault.CredentialAAD("bob", "work", "imap_password"),
		"another kind":    vault.CredentialAAD("ada", "work", "gmail_refresh_token"),
		"a signing key":   vault.SigningKeyAAD("work"),
	} {
		if got, err := r.Open(aad, s); !errors.Is(err, vault.ErrDecrypt) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrDecrypt", name, got, err)
		}
	}
}

// Every single bit flipped anywhere in the stored form, every truncation
// and every relabelling fails: never plaintext garbage.
func TestTamperingFails(t *testing.T) {
	r := keyring(t, "k1:"+key(t)+",k0:"+key(t))
	aad := vault.CredentialAAD("ada", "work", "imap_password")
	s, err := r.Seal(aad, []byte("a secret of some length"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, bad vault.Sealed) {
		t.Helper()
		got, err := r.Open(aad, bad)
		if err == nil || got != nil {
			t.Fatalf("%s: Open = %q, %v; want an error", what, got, err)
		}
	}
	for _, field := range []string{"wrapped key", "ciphertext"} {
		orig := s.Ciphertext
		if field == "wrapped key" {
			orig = s.WrappedKey
		}
		for i := range orig {
			for bit := range 8 {
				b := bytes.Clone(orig)
				b[i] ^= 1 << bit
				bad := s
				if field == "wrapped key" {
					bad.WrappedKey = b
				} else {
					bad.Ciphertext = b
				}
				check(field+" bit flip", bad)
			}
		}
		for n := range len(orig) {
			bad := s
			if field == "wrapped key" {
				bad.WrappedKey = orig[:n]
			} else {
				bad.Ciphertext = orig[:n]
			}
			check(field+" truncated", bad)
		}
	}
	relabelled := s
	relabelled.KeyID = "k0"
	check("relabelled KEK", relabelled)
	unknown := s
	unknown.KeyID = "k9"
	if _, err := r.Open(aad, unknown); !errors.Is(err, vault.ErrUnknownKey) {
		t.Errorf("unknown KEK: %v, want ErrUnknownKey", err)
	}
	// Another secret's wrapped key with this ciphertext.
	other, _ := r.Seal(aad, []byte("another secret"))
	swapped := s
	swapped.WrappedKey = other.WrappedKey
	check("swapped data key", swapped)
}

func TestRotation(t *testing.T) {
	k1, k2 := "k1:"+key(t), "k2:"+key(t)
	old := keyring(t, k1)
	aad := vault.CredentialAAD("ada", "work", "gmail_refresh_token")
	s, err := old.Seal(aad, []byte("1//refresh-token"))
	if err != nil {
		t.Fatal(err)
	}
	// k2 becomes active, k1 stays to open what it sealed.
	both := keyring(t, k2+","+k1)
	if both.Active() != "k2" {
		t.Fatalf("Active = %q, want the first, k2", both.Active())
	}
	if got, err := both.Open(aad, s); err != nil || string(got) != "1//refresh-token" {
		t.Fatalf("Open under the old KEK after adding k2: %q, %v", got, err)
	}
	re, err := both.Rewrap(aad, s)
	if err != nil {
		t.Fatal(err)
	}
	if re.KeyID != "k2" || !bytes.Equal(re.Ciphertext, s.Ciphertext) {
		t.Errorf("Rewrap = key %q, same ciphertext %v; want k2 and the ciphertext unchanged", re.KeyID, bytes.Equal(re.Ciphertext, s.Ciphertext))
	}
	// k1 can go: what was re-wrapped opens with k2 alone.
	only := keyring(t, k2)
	if got, err := only.Open(aad, re); err != nil || string(got) != "1//refresh-token" {
		t.Errorf("Open with k2 alone after the rotation: %q, %v", got, err)
	}
	if _, err := only.Open(aad, s); !errors.Is(err, vault.ErrUnknownKey) {
		t.Errorf("Open of a value still under the removed k1: %v, want ErrUnknownKey", err)
	}
	// Rewrap checks the binding too.
	if _, err := both.Rewrap(vault.CredentialAAD("ada", "home", "gmail_refresh_token"), s); !errors.Is(err, vault.ErrDecrypt) {
		t.Errorf("Rewrap with another record's AAD: %v, want ErrDecrypt", err)
	}
}

func TestParseKeyring(t *testing.T) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if _, err := vault.ParseKeyring("a:" + enc.EncodeToString(raw)); err != nil {
			t.Errorf("ParseKeyring(%v alphabet): %v", enc, err)
		}
	}
	if r, err := vault.ParseKeyring(" "); r != nil || err != nil {
		t.Errorf("ParseKeyring(blank) = %v, %v; want no keyring", r, err)
	}
	r := keyring(t, " new:"+key(t)+" , old:"+key(t))
	if got := strings.Join(r.IDs(), ","); got != "new,old" || !r.Has("old") || r.Has("other") {
		t.Errorf("IDs = %s", got)
	}
	short := base64.StdEncoding.EncodeToString(raw[:16])
	secret := key(t)
	for _, bad := range []string{
		"nocolon",
		"k1:" + short,
		"k1:not base64!",
		"k1:" + secret + ",k1:" + key(t),
		":" + secret,
		"bad id:" + secret,
		"k1:" + secret + ",k2:" + secret[:20],
	} {
		_, err := vault.ParseKeyring(bad)
		if err == nil {
			t.Errorf("ParseKeyring(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:20]) || strings.Contains(err.Error(), short) {
			t.Errorf("the error %q repeats key material", err)
		}
	}
}

func TestNewKey(t *testing.T) {
	r, err := vault.ParseKeyring(vault.NewKey("dev"))
	if err != nil || r.Active() != "dev" {
		t.Errorf("ParseKeyring(NewKey(dev)) = %v, %v", r, err)
	}
}
