package sqlrepo_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth/internal/identity"
	"mailroom.dev/services/auth/internal/sqlrepo"
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
	newKey := func(id string, gen int) identity.SigningKey {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return identity.SigningKey{ID: id, Generation: gen, PrivateKey: priv, CreateTime: at("2026-03-01T00:00:00Z")}
	}
	k1, k2 := newKey("g1", 1), newKey("g2", 2)
	for _, k := range []identity.SigningKey{k1, k2} {
		if err := repo.CreateSigningKey(ctx, k); err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", k.ID, err)
		}
	}
	if err := repo.CreateSigningKey(ctx, newKey("g1-rival", 1)); !errors.Is(err, identity.ErrExists) {
		t.Errorf("CreateSigningKey(taken generation) = %v, want ErrExists", err)
	}
	keys, err := repo.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if want := []string{"g2", "g1"}; !slices.Equal(ids, want) {
		t.Fatalf("SigningKeys = %v, want %v (newest generation first)", ids, want)
	}
	if !keys[0].PrivateKey.Equal(k2.PrivateKey) || !keys[1].PrivateKey.Equal(k1.PrivateKey) {
		t.Error("SigningKeys returned other private keys than were stored")
	}
	if !keys[0].CreateTime.Equal(k2.CreateTime) || keys[0].Generation != 2 {
		t.Errorf("SigningKeys[0] = gen %d created %v, want gen 2 created %v", keys[0].Generation, keys[0].CreateTime, k2.CreateTime)
	}
}
