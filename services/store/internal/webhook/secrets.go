package webhook

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Vault keeps webhooks' signing secrets outside the store's database: auth's
// credential vault, through the vaultclient adapter.
type Vault interface {
	// PutSecret stores the secret of user's webhook id, replacing one.
	PutSecret(ctx context.Context, user, id, secret string) error
	// GetSecret returns it, or ErrNoSecret.
	GetSecret(ctx context.Context, user, id string) (string, error)
	// DeleteSecret deletes it; a secret that is not there is no error.
	DeleteSecret(ctx context.Context, user, id string) error
}

// ErrNoSecret is the answer of a Vault that has no secret for a webhook.
var ErrNoSecret = errors.New("webhook: no signing secret in the vault")

// SecretCache is a Vault that remembers the secrets it read (or wrote) for
// a while, so that a burst of deliveries does not call the vault each
// time. It holds at most max secrets; a webhook deleted in this process is
// forgotten at once, one deleted through another replica within ttl.
type SecretCache struct {
	vault Vault
	ttl   time.Duration
	max   int
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	secret string
	expire time.Time
}

// NewSecretCache returns a cache over vault that keeps up to size secrets
// for ttl each.
func NewSecretCache(vault Vault, ttl time.Duration, size int) *SecretCache {
	return &SecretCache{vault: vault, ttl: ttl, max: max(1, size), now: time.Now, entries: map[string]cached{}}
}

var _ Vault = (*SecretCache)(nil)

// PutSecret implements Vault.
func (c *SecretCache) PutSecret(ctx context.Context, user, id, secret string) error {
	if err := c.vault.PutSecret(ctx, user, id, secret); err != nil {
		c.forget(user, id)
		return err
	}
	c.remember(user, id, secret)
	return nil
}

// GetSecret implements Vault.
func (c *SecretCache) GetSecret(ctx context.Context, user, id string) (string, error) {
	key := Name(user, id)
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Before(e.expire) {
		return e.secret, nil
	}
	secret, err := c.vault.GetSecret(ctx, user, id)
	if err != nil {
		c.forget(user, id)
		return "", err
	}
	c.remember(user, id, secret)
	return secret, nil
}

// DeleteSecret implements Vault.
func (c *SecretCache) DeleteSecret(ctx context.Context, user, id string) error {
	c.forget(user, id)
	return c.vault.DeleteSecret(ctx, user, id)
}

func (c *SecretCache) forget(user, id string) {
	c.mu.Lock()
	delete(c.entries, Name(user, id))
	c.mu.Unlock()
}

func (c *SecretCache) remember(user, id, secret string) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expire) {
				delete(c.entries, k)
			}
		}
	}
	// Still full: drop any one (map order is random enough for a cache
	// whose misses cost one call to auth).
	for k := range c.entries {
		if len(c.entries) < c.max {
			break
		}
		delete(c.entries, k)
	}
	c.entries[Name(user, id)] = cached{secret: secret, expire: now.Add(c.ttl)}
}
