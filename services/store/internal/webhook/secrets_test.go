package webhook_test

import (
	"context"
	"testing"
	"time"

	"mailroom.dev/services/store/internal/webhook"
)

// countingVault is a Vault in memory that counts its reads.
type countingVault struct {
	secrets map[string]string
	gets    int
}

func (v *countingVault) PutSecret(_ context.Context, user, id, secret string) error {
	v.secrets[user+"/"+id] = secret
	return nil
}

func (v *countingVault) GetSecret(_ context.Context, user, id string) (string, error) {
	v.gets++
	s, ok := v.secrets[user+"/"+id]
	if !ok {
		return "", webhook.ErrNoSecret
	}
	return s, nil
}

func (v *countingVault) DeleteSecret(_ context.Context, user, id string) error {
	delete(v.secrets, user+"/"+id)
	return nil
}

func TestSecretCache(t *testing.T) {
	ctx := context.Background()
	v := &countingVault{secrets: map[string]string{"ada/a": "whsec_a", "ada/b": "whsec_b", "ada/c": "whsec_c"}}
	c := webhook.NewSecretCache(v, time.Hour, 2)
	for range 3 {
		if got, err := c.GetSecret(ctx, "ada", "a"); err != nil || got != "whsec_a" {
			t.Fatalf("GetSecret(a) = %q, %v", got, err)
		}
	}
	if v.gets != 1 {
		t.Errorf("three reads of one secret called the vault %d times, want 1", v.gets)
	}
	// Bounded: b and c push one secret out; reading all three again costs
	// at least one more call.
	_, _ = c.GetSecret(ctx, "ada", "b")
	_, _ = c.GetSecret(ctx, "ada", "c")
	v.gets = 0
	for _, id := range []string{"a", "b", "c"} {
		_, _ = c.GetSecret(ctx, "ada", id)
	}
	if v.gets == 0 {
		t.Error("a cache of 2 held 3 secrets")
	}
	// A deleted secret is gone at once, from the cache too.
	if err := c.DeleteSecret(ctx, "ada", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx, "ada", "a"); err != webhook.ErrNoSecret {
		t.Errorf("GetSecret after DeleteSecret = %v, want ErrNoSecret", err)
	}
	// Expired entries are read again.
	short := webhook.NewSecretCache(v, time.Nanosecond, 10)
	v.gets = 0
	_, _ = short.GetSecret(ctx, "ada", "b")
	time.Sleep(time.Millisecond)
	_, _ = short.GetSecret(ctx, "ada", "b")
	if v.gets != 2 {
		t.Errorf("an expired secret was read %d times from the vault, want 2", v.gets)
	}
}
