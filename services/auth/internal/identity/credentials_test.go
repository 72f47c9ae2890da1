package identity_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/vault"
)

func ring(t *testing.T, spec string) *vault.Keyring {
	t.Helper()
	r, err := vault.ParseKeyring(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	url := testenv.SQLiteURL(t)
	k1 := vault.NewKey("k1")
	s, repo, err := open(t, url, identity.Options{Vault: ring(t, k1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	secret := []byte("imap-password-Tr0ub4dor&3")
	put, err := s.PutCredential(ctx, identity.Credential{UserID: "ada", MailboxID: "work", Kind: identity.CredentialIMAPPassword, Secret: secret})
	if err != nil {
		t.Fatalf("PutCredential: %v", err)
	}
	if put.Secret != nil || put.KeyID != "k1" || put.CreateTime.IsZero() {
		t.Errorf("PutCredential = %+v, want no secret, key k1, a create time", put)
	}
	got, err := s.GetCredential(ctx, "ada", "work")
	if err != nil || !bytes.Equal(got.Secret, secret) || got.Kind != identity.CredentialIMAPPassword {
		t.Fatalf("GetCredential = %+v, %v", got, err)
	}

	for name, c := range map[string]identity.Credential{
		"no kind":      {UserID: "ada", MailboxID: "m", Secret: secret},
		"no secret":    {UserID: "ada", MailboxID: "m", Kind: identity.CredentialIMAPPassword},
		"huge secret":  {UserID: "ada", MailboxID: "m", Kind: identity.CredentialIMAPPassword, Secret: make([]byte, identity.MaxCredentialSecret+1)},
		"unknown user": {UserID: "nobody", MailboxID: "m", Kind: identity.CredentialIMAPPassword, Secret: secret},
	} {
		_, err := s.PutCredential(ctx, c)
		if k := kind(err); k != apierror.InvalidArgument && k != apierror.NotFound {
			t.Errorf("%s: PutCredential = %v, want InvalidArgument or NotFound", name, err)
		}
	}
	if _, err := s.GetCredential(ctx, "ada", "home"); kind(err) != apierror.NotFound {
		t.Errorf("GetCredential(missing) = %v, want NotFound", err)
	}

	// A sealed value copied into another mailbox's row does not decrypt: an
	// Internal error that names no secret, never garbage.
	stored, _ := repo.GetCredential(ctx, "ada", "work")
	if _, err := s.PutCredential(ctx, identity.Credential{UserID: "ada", MailboxID: "home", Kind: identity.CredentialIMAPPassword, Secret: []byte("other")}); err != nil {
		t.Fatal(err)
	}
	home, _ := repo.GetCredential(ctx, "ada", "home")
	if err := repo.ResealCredential(ctx, "ada", "home", home.Sealed, stored.Sealed); err != nil {
		t.Fatal(err)
	}
	swapped, err := s.GetCredential(ctx, "ada", "home")
	if err == nil || kind(err) != apierror.Internal || swapped.Secret != nil || !errors.Is(err, vault.ErrDecrypt) {
		t.Errorf("GetCredential(swapped row) = %+v, %v; want an Internal decryption error", swapped, err)
	}
	if err != nil && strings.Contains(err.Error(), string(secret)) {
		t.Error("the error holds the secret")
	}

	// Without a KEK the vault refuses, rather than storing in the clear.
	if _, err := s.PutCredential(ctx, identity.Credential{UserID: "ada", MailboxID: "x", Kind: identity.CredentialGmailRefreshToken, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	noKEK, _, err := open(t, testenv.SQLiteURL(t), identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noKEK.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	_, err = noKEK.PutCredential(ctx, identity.Credential{UserID: "ada", MailboxID: "work", Kind: identity.CredentialIMAPPassword, Secret: secret})
	if kind(err) != apierror.FailedPrecondition || !strings.Contains(err.Error(), "MAILROOM_VAULT_KEYS") {
		t.Errorf("PutCredential without a KEK = %v, want FailedPrecondition naming MAILROOM_VAULT_KEYS", err)
	}
	if _, _, err := noKEK.RotateVault(ctx); kind(err) != apierror.FailedPrecondition {
		t.Errorf("RotateVault without a KEK = %v, want FailedPrecondition", err)
	}

	if err := s.DeleteCredential(ctx, "ada", "work"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCredential(ctx, "ada", "work"); kind(err) != apierror.NotFound {
		t.Errorf("DeleteCredential(again) = %v, want NotFound", err)
	}
}

// TestVaultRotation: a new KEK becomes active, RotateVault re-wraps every
// data key (and the signing keys) under it, and the old KEK can go.
func TestVaultRotation(t *testing.T) {
	ctx := context.Background()
	url := testenv.SQLiteURL(t)
	k1, k2 := vault.NewKey("k1"), vault.NewKey("k2")
	s1, _, err := open(t, url, identity.Options{Vault: ring(t, k1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.CreateUser(ctx, "ada", identity.User{}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for i, mb := range []string{"a", "b", "c"} {
		secrets[mb] = "secret-" + mb + strings.Repeat("!", i)
		if _, err := s1.PutCredential(ctx, identity.Credential{UserID: "ada", MailboxID: mb, Kind: identity.CredentialGmailRefreshToken, Secret: []byte(secrets[mb])}); err != nil {
			t.Fatal(err)
		}
	}

	// k2 alone cannot read what k1 sealed (and auth does not start: its
	// signing key is under k1 too).
	if _, _, err := open(t, url, identity.Options{Vault: ring(t, k2)}); err == nil {
		t.Error("auth started with k2 alone while its signing key is under k1")
	}

	s2, _, err := open(t, url, identity.Options{Vault: ring(t, k2+","+k1)})
	if err != nil {
		t.Fatal(err)
	}
	// Until the rotation, credentials under k1 still read, and a new one
	// goes under k2.
	if c, err := s2.GetCredential(ctx, "ada", "a"); err != nil || string(c.Secret) != secrets["a"] || c.KeyID != "k1" {
		t.Errorf("before the rotation, GetCredential(a) = %+v, %v", c, err)
	}
	if c, err := s2.PutCredential(ctx, identity.Credential{UserID: "ada", MailboxID: "c", Kind: identity.CredentialGmailRefreshToken, Secret: []byte(secrets["c"])}); err != nil || c.KeyID != "k2" {
		t.Errorf("PutCredential after adding k2 = %+v, %v; want it under k2", c, err)
	}
	n, active, err := s2.RotateVault(ctx)
	if err != nil || n != 2 || active != "k2" {
		t.Fatalf("RotateVault = %d, %q, %v; want the 2 credentials still under k1, and k2", n, active, err)
	}
	if n, _, err := s2.RotateVault(ctx); err != nil || n != 0 {
		t.Errorf("RotateVault again = %d, %v; want nothing left to move", n, err)
	}

	// k1 can go now.
	s3, _, err := open(t, url, identity.Options{Vault: ring(t, k2)})
	if err != nil {
		t.Fatalf("start with k2 alone after the rotation: %v", err)
	}
	for mb, want := range secrets {
		if c, err := s3.GetCredential(ctx, "ada", mb); err != nil || string(c.Secret) != want || c.KeyID != "k2" {
			t.Errorf("with k2 alone, GetCredential(%s) = %q under %q, %v", mb, c.Secret, c.KeyID, err)
		}
	}
	counts, err := s3.VaultStatus(ctx)
	if err != nil || counts["k2"] != 3 || len(counts) != 1 {
		t.Errorf("VaultStatus = %v, %v; want k2:3", counts, err)
	}
}

func TestDeleteUser(t *testing.T) {
	ctx := context.Background()
	var storeCalls atomic.Int32
	storeFails := atomic.Bool{}
	storeFails.Store(true)
	purgers := []identity.Purger{
		{Service: "ingest", Purge: func(_ context.Context, user string) (map[string]int64, error) {
			return map[string]int64{"mailboxes": 2, "sync_jobs": 3}, nil
		}},
		{Service: "store", Purge: func(_ context.Context, user string) (map[string]int64, error) {
			storeCalls.Add(1)
			if storeFails.Load() {
				return nil, errors.New("Unimplemented: method PurgeUserData not implemented")
			}
			return map[string]int64{"messages": 500}, nil
		}},
	}
	s, _, err := open(t, testenv.SQLiteURL(t), identity.Options{Vault: ring(t, vault.NewKey("k1")), Purgers: purgers})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"ada", "bob"} {
		if _, err := s.CreateUser(ctx, u, identity.User{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreateAPIKey(ctx, u, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutCredential(ctx, identity.Credential{UserID: u, MailboxID: "work", Kind: identity.CredentialIMAPPassword, Secret: []byte("pw")}); err != nil {
			t.Fatal(err)
		}
	}

	// The store fails: nothing of auth's goes, and the error says how to finish.
	_, err = s.DeleteUser(ctx, "ada")
	if kind(err) != apierror.Unavailable || !strings.Contains(err.Error(), "store") || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("DeleteUser with a failing store = %v, want Unavailable naming the store", err)
	}
	if _, err := s.GetUser(ctx, "ada"); err != nil {
		t.Errorf("after the failed delete, ada is gone: %v", err)
	}
	if _, err := s.GetCredential(ctx, "ada", "work"); err != nil {
		t.Errorf("after the failed delete, ada's credential is gone: %v", err)
	}

	// Once the store works, calling again finishes the job.
	storeFails.Store(false)
	counts, err := s.DeleteUser(ctx, "ada")
	if err != nil {
		t.Fatalf("DeleteUser again: %v", err)
	}
	want := map[string]int64{"ingest.mailboxes": 2, "ingest.sync_jobs": 3, "store.messages": 500, "auth.credentials": 1, "auth.api_keys": 1, "auth.users": 1}
	if len(counts) != len(want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counts[%s] = %d, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
	if _, err := s.GetUser(ctx, "ada"); kind(err) != apierror.NotFound {
		t.Errorf("after the delete, GetUser(ada) = %v, want NotFound", err)
	}
	if _, err := s.DeleteUser(ctx, "ada"); kind(err) != apierror.NotFound {
		t.Errorf("DeleteUser(deleted) = %v, want NotFound", err)
	}
	if _, err := s.GetCredential(ctx, "bob", "work"); err != nil {
		t.Errorf("bob's credential went with ada: %v", err)
	}
	if storeCalls.Load() != 2 {
		t.Errorf("the store was called %d times, want 2", storeCalls.Load())
	}
}
