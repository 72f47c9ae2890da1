package sqlrepo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/sqlrepo"
	"mailroom.dev/services/auth/internal/vault"
)

// TestContract runs the repository contract on every backend.
func TestContract(t *testing.T) {
	for backend, url := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqlrepo.Open(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			repo := sqlrepo.New(db.SQL)
			t.Run("users", func(t *testing.T) { testUsers(t, repo) })
			t.Run("api keys", func(t *testing.T) { testAPIKeys(t, repo) })
			t.Run("signing keys", func(t *testing.T) { testSigningKeys(t, repo) })
			t.Run("service keys", func(t *testing.T) { testServiceKeys(t, repo) })
			t.Run("credentials", func(t *testing.T) { testCredentials(t, repo) })
		})
	}
}

// Migrations run at every start; a second open must be a no-op.
func TestReopen(t *testing.T) {
	for backend, url := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			u := url(t)
			for range 2 {
				db, err := sqlrepo.Open(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
		})
	}
}

// at is a time as the repository keeps it: UTC, microseconds.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func testUsers(t *testing.T, repo identity.Repository) {
	ctx := context.Background()
	ada := identity.User{ID: "ada", DisplayName: "Ada Lovelace", Email: "ada@example.com", Role: identity.RoleUser, CreateTime: at("2026-01-02T03:04:05.123456Z")}
	if err := repo.CreateUser(ctx, ada); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := repo.GetUser(ctx, "ada")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got != ada {
		t.Errorf("GetUser = %+v, want %+v", got, ada)
	}
	if err := repo.CreateUser(ctx, identity.User{ID: "ada", Role: identity.RoleAdmin, CreateTime: ada.CreateTime}); !errors.Is(err, identity.ErrExists) {
		t.Errorf("CreateUser(duplicate) = %v, want ErrExists", err)
	}
	if _, err := repo.GetUser(ctx, "nobody"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("GetUser(nobody) = %v, want ErrNotFound", err)
	}

	ada.Role, ada.DisplayName, ada.Email = identity.RoleAdmin, "Countess", ""
	if err := repo.UpdateUser(ctx, ada); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if got, _ := repo.GetUser(ctx, "ada"); got != ada {
		t.Errorf("after UpdateUser, GetUser = %+v, want %+v", got, ada)
	}
	if err := repo.UpdateUser(ctx, identity.User{ID: "nobody", Role: identity.RoleUser}); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("UpdateUser(nobody) = %v, want ErrNotFound", err)
	}

	// Ids sort bytewise on both backends: '-' < digits < letters.
	for _, id := range []string{"ab", "a1", "a-c", "a-b"} {
		if err := repo.CreateUser(ctx, identity.User{ID: id, Role: identity.RoleUser, CreateTime: ada.CreateTime}); err != nil {
			t.Fatalf("CreateUser(%s): %v", id, err)
		}
	}
	var ids []string
	after := ""
	for {
		page, err := repo.ListUsers(ctx, after, 2)
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		for _, u := range page {
			ids = append(ids, u.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if want := []string{"a-b", "a-c", "a1", "ab", "ada"}; !slices.Equal(ids, want) {
		t.Errorf("ListUsers pages = %v, want %v", ids, want)
	}
}

func testAPIKeys(t *testing.T, repo identity.Repository) {
	ctx := context.Background()
	created := at("2026-02-03T04:05:06.654321Z")
	for _, id := range []string{"grace", "linus"} {
		if err := repo.CreateUser(ctx, identity.User{ID: id, Role: identity.RoleUser, CreateTime: created}); err != nil {
			t.Fatal(err)
		}
	}
	k1 := identity.APIKey{UserID: "grace", ID: "k1", DisplayName: "laptop", Prefix: "mr_abcdefg", Hash: hash("secret-1"), CreateTime: created}
	if err := repo.CreateAPIKey(ctx, k1); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	got, err := repo.GetAPIKey(ctx, "grace", "k1")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	if !equalKeys(got, k1) {
		t.Errorf("GetAPIKey = %+v, want %+v", got, k1)
	}

	t.Run("unique", func(t *testing.T) {
		sameID := k1
		sameID.Hash = hash("secret-other")
		if err := repo.CreateAPIKey(ctx, sameID); !errors.Is(err, identity.ErrExists) {
			t.Errorf("CreateAPIKey(same id) = %v, want ErrExists", err)
		}
		sameHash := k1
		sameHash.UserID, sameHash.ID = "linus", "k9"
		if err := repo.CreateAPIKey(ctx, sameHash); !errors.Is(err, identity.ErrExists) {
			t.Errorf("CreateAPIKey(same hash) = %v, want ErrExists", err)
		}
		// Ids are per user.
		other := identity.APIKey{UserID: "linus", ID: "k1", Prefix: "mr_x", Hash: hash("secret-linus"), CreateTime: created}
		if err := repo.CreateAPIKey(ctx, other); err != nil {
			t.Errorf("CreateAPIKey(another user's k1) = %v, want nil", err)
		}
	})

	t.Run("by hash", func(t *testing.T) {
		k, u, err := repo.APIKeyByHash(ctx, hash("secret-1"))
		if err != nil {
			t.Fatalf("APIKeyByHash: %v", err)
		}
		if k.UserID != "grace" || k.ID != "k1" || u.ID != "grace" || u.Role != identity.RoleUser {
			t.Errorf("APIKeyByHash = %s/%s of %+v, want grace/k1 of grace", k.UserID, k.ID, u)
		}
		if _, _, err := repo.APIKeyByHash(ctx, hash("unknown")); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("APIKeyByHash(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("touch", func(t *testing.T) {
		t1 := at("2026-02-03T05:00:00.000001Z")
		if err := repo.TouchAPIKey(ctx, "grace", "k1", t1, t1.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if k, _ := repo.GetAPIKey(ctx, "grace", "k1"); !k.LastUseTime.Equal(t1) {
			t.Errorf("after first touch, LastUseTime = %v, want %v", k.LastUseTime, t1)
		}
		// Within the throttle window the stored time stays.
		t2 := t1.Add(30 * time.Second)
		if err := repo.TouchAPIKey(ctx, "grace", "k1", t2, t2.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if k, _ := repo.GetAPIKey(ctx, "grace", "k1"); !k.LastUseTime.Equal(t1) {
			t.Errorf("after a touch within a minute, LastUseTime = %v, want %v", k.LastUseTime, t1)
		}
		t3 := t1.Add(2 * time.Minute)
		if err := repo.TouchAPIKey(ctx, "grace", "k1", t3, t3.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if k, _ := repo.GetAPIKey(ctx, "grace", "k1"); !k.LastUseTime.Equal(t3) {
			t.Errorf("after a touch two minutes later, LastUseTime = %v, want %v", k.LastUseTime, t3)
		}
	})

	t.Run("list and revoke", func(t *testing.T) {
		for _, id := range []string{"k3", "k2"} {
			k := identity.APIKey{UserID: "grace", ID: id, Prefix: "mr_" + id, Hash: hash("secret-" + id), CreateTime: created}
			if err := repo.CreateAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		list := func() []string {
			var ids []string
			after := ""
			for {
				page, err := repo.ListAPIKeys(ctx, "grace", after, 2)
				if err != nil {
					t.Fatalf("ListAPIKeys: %v", err)
				}
				for _, k := range page {
					if k.UserID != "grace" {
						t.Errorf("ListAPIKeys(grace) returned a key of %s", k.UserID)
					}
					ids = append(ids, k.ID)
				}
				if len(page) < 2 {
					return ids
				}
				after = page[len(page)-1].ID
			}
		}
		if got, want := list(), []string{"k1", "k2", "k3"}; !slices.Equal(got, want) {
			t.Errorf("ListAPIKeys = %v, want %v", got, want)
		}

		revokedAt := at("2026-02-04T00:00:00Z")
		if err := repo.RevokeAPIKey(ctx, "grace", "k2", revokedAt); err != nil {
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		if got, want := list(), []string{"k1", "k3"}; !slices.Equal(got, want) {
			t.Errorf("after revoking k2, ListAPIKeys = %v, want %v", got, want)
		}
		if _, _, err := repo.APIKeyByHash(ctx, hash("secret-k2")); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("APIKeyByHash(revoked) = %v, want ErrNotFound", err)
		}
		if k, err := repo.GetAPIKey(ctx, "grace", "k2"); err != nil || !k.RevokeTime.Equal(revokedAt) {
			t.Errorf("GetAPIKey(revoked) = %+v, %v; want RevokeTime %v", k, err, revokedAt)
		}
		if err := repo.RevokeAPIKey(ctx, "grace", "k2", revokedAt); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("RevokeAPIKey(again) = %v, want ErrNotFound", err)
		}
		if err := repo.RevokeAPIKey(ctx, "linus", "k2", revokedAt); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("RevokeAPIKey(another user's) = %v, want ErrNotFound", err)
		}

		// Replacing the secret unrevokes the key and forgets its old secret.
		replaced := identity.APIKey{UserID: "grace", ID: "k2", DisplayName: "renewed", Prefix: "mr_new", Hash: hash("secret-k2-new"), CreateTime: revokedAt.Add(time.Hour)}
		if err := repo.ReplaceAPIKeySecret(ctx, replaced); err != nil {
			t.Fatalf("ReplaceAPIKeySecret: %v", err)
		}
		if k, _, err := repo.APIKeyByHash(ctx, hash("secret-k2-new")); err != nil || !equalKeys(k, replaced) {
			t.Errorf("APIKeyByHash(new secret) = %+v, %v; want %+v", k, err, replaced)
		}
		if _, _, err := repo.APIKeyByHash(ctx, hash("secret-k2")); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("APIKeyByHash(old secret) = %v, want ErrNotFound", err)
		}
		taken := replaced
		taken.Hash = hash("secret-1")
		if err := repo.ReplaceAPIKeySecret(ctx, taken); !errors.Is(err, identity.ErrExists) {
			t.Errorf("ReplaceAPIKeySecret(hash of k1) = %v, want ErrExists", err)
		}
		missing := replaced
		missing.ID = "nope"
		missing.Hash = hash("secret-nope")
		if err := repo.ReplaceAPIKeySecret(ctx, missing); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("ReplaceAPIKeySecret(missing) = %v, want ErrNotFound", err)
		}
	})
}

func equalKeys(a, b identity.APIKey) bool {
	return a.UserID == b.UserID && a.ID == b.ID && a.DisplayName == b.DisplayName && a.Prefix == b.Prefix &&
		bytes.Equal(a.Hash, b.Hash) && a.CreateTime.Equal(b.CreateTime) &&
		a.LastUseTime.Equal(b.LastUseTime) && a.RevokeTime.Equal(b.RevokeTime)
}

func testSigningKeys(t *testing.T, repo identity.Repository) {
	ctx := context.Background()
	if keys, err := repo.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("SigningKeys on an empty database = %d keys, %v; want none", len(keys), err)
	}
	newKey := func(id string, gen int, sealed vault.Sealed) identity.StoredSigningKey {
		return identity.StoredSigningKey{ID: id, Generation: gen, Seed: sealed, CreateTime: at("2026-03-01T00:00:00Z"), ActivateTime: at("2026-03-01T00:05:00Z")}
	}
	clear := vault.Sealed{Ciphertext: bytes.Repeat([]byte{7}, 32)} // a seed in the clear
	sealed := vault.Sealed{KeyID: "kek1", WrappedKey: []byte("wrapped"), Ciphertext: []byte("ciphertext")}
	k1, k2 := newKey("g1", 1, clear), newKey("g2", 2, sealed)
	for _, k := range []identity.StoredSigningKey{k1, k2} {
		if err := repo.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", k.ID, err)
		}
	}
	if err := repo.CreateSigningKey(ctx, newKey("g1-rival", 1, clear)); !errors.Is(err, identity.ErrExists) {
		t.Errorf("CreateSigningKey(taken generation) = %v, want ErrExists", err)
	}
	keys, err := repo.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !reflect.DeepEqual(keys[0], k2) || !equalStoredKeys(keys[1], k1) {
		t.Fatalf("SigningKeys = %+v, want %+v then %+v (newest generation first)", keys, k2, k1)
	}

	// Reseal is a compare-and-swap.
	resealed := vault.Sealed{KeyID: "kek2", WrappedKey: []byte("wrapped2"), Ciphertext: []byte("ciphertext2")}
	if err := repo.ResealSigningKey(ctx, "g1", clear, resealed); err != nil {
		t.Fatalf("ResealSigningKey(g1): %v", err)
	}
	if err := repo.ResealSigningKey(ctx, "g1", clear, sealed); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("ResealSigningKey with a stale old value = %v, want ErrNotFound", err)
	}
	if err := repo.ResealSigningKey(ctx, "g2", sealed, resealed); err != nil {
		t.Fatalf("ResealSigningKey(g2): %v", err)
	}
	keys, _ = repo.SigningKeys(ctx)
	if !reflect.DeepEqual(keys[1].Seed, resealed) || !reflect.DeepEqual(keys[0].Seed, resealed) {
		t.Errorf("after reseal, seeds = %+v, %+v", keys[0].Seed, keys[1].Seed)
	}

	// A retired key leaves the list, and its private key is erased.
	if err := repo.RetireSigningKey(ctx, "g1", at("2026-04-01T00:00:00Z")); err != nil {
		t.Fatalf("RetireSigningKey: %v", err)
	}
	if err := repo.RetireSigningKey(ctx, "g1", at("2026-04-01T00:00:00Z")); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("RetireSigningKey(again) = %v, want ErrNotFound", err)
	}
	if err := repo.ResealSigningKey(ctx, "g1", resealed, sealed); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("ResealSigningKey(retired) = %v, want ErrNotFound", err)
	}
	keys, _ = repo.SigningKeys(ctx)
	if len(keys) != 1 || keys[0].ID != "g2" {
		t.Errorf("SigningKeys after retiring g1 = %+v, want g2 alone", keys)
	}
}

// equalStoredKeys compares keys, taking a nil and an empty wrapped key as equal.
func equalStoredKeys(a, b identity.StoredSigningKey) bool {
	return a.ID == b.ID && a.Generation == b.Generation && a.CreateTime.Equal(b.CreateTime) && a.ActivateTime.Equal(b.ActivateTime) &&
		a.Seed.KeyID == b.Seed.KeyID && bytes.Equal(a.Seed.WrappedKey, b.Seed.WrappedKey) && bytes.Equal(a.Seed.Ciphertext, b.Seed.Ciphertext)
}

func testServiceKeys(t *testing.T, repo identity.Repository) {
	ctx := context.Background()
	ingest := identity.ServiceKey{Service: "ingest", Prefix: "mr_abc", Hash: hash("ingest-key"), CreateTime: at("2026-03-01T00:00:00Z")}
	if err := repo.PutServiceKey(ctx, ingest); err != nil {
		t.Fatalf("PutServiceKey: %v", err)
	}
	if got, err := repo.ServiceKeyByHash(ctx, hash("ingest-key")); err != nil || !reflect.DeepEqual(got, ingest) {
		t.Errorf("ServiceKeyByHash = %+v, %v; want %+v", got, err, ingest)
	}
	// A new key replaces the service's earlier one.
	replaced := ingest
	replaced.Hash, replaced.Prefix = hash("ingest-key-2"), "mr_def"
	if err := repo.PutServiceKey(ctx, replaced); err != nil {
		t.Fatalf("PutServiceKey(replace): %v", err)
	}
	if _, err := repo.ServiceKeyByHash(ctx, hash("ingest-key")); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("the replaced key still exchanges: %v", err)
	}
	if got, err := repo.GetServiceKey(ctx, "ingest"); err != nil || !bytes.Equal(got.Hash, replaced.Hash) {
		t.Errorf("GetServiceKey = %+v, %v", got, err)
	}
	if _, err := repo.GetServiceKey(ctx, "store"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("GetServiceKey(unknown) = %v, want ErrNotFound", err)
	}
	// Another service may not share a key.
	if err := repo.PutServiceKey(ctx, identity.ServiceKey{Service: "store", Prefix: "x", Hash: hash("ingest-key-2")}); !errors.Is(err, identity.ErrExists) {
		t.Errorf("PutServiceKey(another service's hash) = %v, want ErrExists", err)
	}
}

func testCredentials(t *testing.T, repo identity.Repository) {
	ctx := context.Background()
	for _, id := range []string{"cred-ada", "cred-bob"} {
		if err := repo.CreateUser(ctx, identity.User{ID: id, Role: identity.RoleUser, CreateTime: at("2026-01-01T00:00:00Z")}); err != nil {
			t.Fatal(err)
		}
	}
	sealed := func(kek, s string) vault.Sealed {
		return vault.Sealed{KeyID: kek, WrappedKey: []byte("w-" + s), Ciphertext: []byte("c-" + s)}
	}
	put := func(user, mailbox, kek, s string, tm time.Time) identity.StoredCredential {
		t.Helper()
		c := identity.StoredCredential{UserID: user, MailboxID: mailbox, Kind: identity.CredentialIMAPPassword, Sealed: sealed(kek, s), CreateTime: tm, UpdateTime: tm}
		got, err := repo.PutCredential(ctx, c)
		if err != nil {
			t.Fatalf("PutCredential(%s/%s): %v", user, mailbox, err)
		}
		return got
	}
	first := put("cred-ada", "work", "k1", "1", at("2026-02-01T00:00:00Z"))
	put("cred-ada", "home", "k1", "2", at("2026-02-01T00:00:00Z"))
	put("cred-bob", "work", "k2", "3", at("2026-02-01T00:00:00Z"))
	// A second put replaces the secret and keeps the create time.
	again := put("cred-ada", "work", "k1", "1b", at("2026-02-02T00:00:00Z"))
	if !again.CreateTime.Equal(first.CreateTime) || !again.UpdateTime.Equal(at("2026-02-02T00:00:00Z")) {
		t.Errorf("replaced credential times = %v / %v, want create %v kept", again.CreateTime, again.UpdateTime, first.CreateTime)
	}
	got, err := repo.GetCredential(ctx, "cred-ada", "work")
	if err != nil || !reflect.DeepEqual(got, again) {
		t.Errorf("GetCredential = %+v, %v; want %+v", got, err, again)
	}
	if _, err := repo.GetCredential(ctx, "cred-ada", "nowhere"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("GetCredential(missing) = %v, want ErrNotFound", err)
	}
	counts, err := repo.CountCredentialsByKey(ctx)
	if err != nil || counts["k1"] != 2 || counts["k2"] != 1 {
		t.Errorf("CountCredentialsByKey = %v, %v; want k1:2 k2:1", counts, err)
	}

	// Paging through the credentials not under k2, one at a time.
	var names []string
	afterUser, afterMailbox := "", ""
	for {
		page, err := repo.CredentialsNotUnder(ctx, "k2", afterUser, afterMailbox, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		afterUser, afterMailbox = page[0].UserID, page[0].MailboxID
		names = append(names, afterUser+"/"+afterMailbox)
	}
	if want := []string{"cred-ada/home", "cred-ada/work"}; !slices.Equal(names, want) {
		t.Errorf("CredentialsNotUnder(k2) = %v, want %v", names, want)
	}
	if err := repo.ResealCredential(ctx, "cred-ada", "work", again.Sealed, sealed("k2", "1c")); err != nil {
		t.Fatalf("ResealCredential: %v", err)
	}
	if err := repo.ResealCredential(ctx, "cred-ada", "work", again.Sealed, sealed("k2", "1d")); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("ResealCredential with a stale old value = %v, want ErrNotFound", err)
	}
	if got, _ := repo.GetCredential(ctx, "cred-ada", "work"); got.Sealed.KeyID != "k2" || string(got.Sealed.Ciphertext) != "c-1c" {
		t.Errorf("after reseal, credential = %+v", got.Sealed)
	}

	if err := repo.DeleteCredential(ctx, "cred-ada", "home"); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	if err := repo.DeleteCredential(ctx, "cred-ada", "home"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("DeleteCredential(again) = %v, want ErrNotFound", err)
	}

	// DeleteUserData takes the user's credentials and keys, and nobody else's.
	for i, id := range []string{"k-a", "k-b"} {
		if err := repo.CreateAPIKey(ctx, identity.APIKey{UserID: "cred-ada", ID: id, Prefix: "p", Hash: hash("cred-ada-" + id), CreateTime: at("2026-01-01T00:00:00Z")}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := repo.RevokeAPIKey(ctx, "cred-ada", id, at("2026-01-02T00:00:00Z")); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, err := repo.DeleteUserData(ctx, "cred-ada")
	if err != nil {
		t.Fatalf("DeleteUserData: %v", err)
	}
	if want := (identity.Deleted{Credentials: 1, APIKeys: 2, Users: 1}); d != want {
		t.Errorf("DeleteUserData = %+v, want %+v", d, want)
	}
	if _, err := repo.GetUser(ctx, "cred-ada"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("the user is still there: %v", err)
	}
	if d, err := repo.DeleteUserData(ctx, "cred-ada"); err != nil || d != (identity.Deleted{}) {
		t.Errorf("DeleteUserData(again) = %+v, %v; want nothing deleted", d, err)
	}
	if _, err := repo.GetCredential(ctx, "cred-bob", "work"); err != nil {
		t.Errorf("bob's credential went with ada: %v", err)
	}
}
