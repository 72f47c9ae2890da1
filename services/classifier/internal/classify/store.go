package classify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// TaxonomyStore keeps users' taxonomies.
type TaxonomyStore interface {
	// Taxonomy returns the user's taxonomy, nil for the default one.
	Taxonomy(ctx context.Context, user string) (Taxonomy, time.Time, error)
	SetTaxonomy(ctx context.Context, user string, t Taxonomy, at time.Time) error
}

// Taxonomies reads and changes users' taxonomies, remembering each for a
// short while: every message needs its user's taxonomy, and replicas see a
// change within that while.
type Taxonomies struct {
	store TaxonomyStore
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cachedTaxonomy
}

type cachedTaxonomy struct {
	t       Taxonomy
	updated time.Time
	at      time.Time
}

// NewTaxonomies returns taxonomies kept in store, remembered for ttl.
func NewTaxonomies(store TaxonomyStore, ttl time.Duration) *Taxonomies {
	return &Taxonomies{store: store, ttl: ttl, now: time.Now, cache: map[string]cachedTaxonomy{}}
}

// Get returns the user's taxonomy (the default until changed) and when the
// user last changed it (zero for the default).
func (s *Taxonomies) Get(ctx context.Context, user string) (Taxonomy, time.Time, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[user]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < s.ttl {
		return c.t, c.updated, nil
	}
	t, updated, err := s.store.Taxonomy(ctx, user)
	if err != nil {
		return nil, time.Time{}, err
	}
	if t == nil {
		t = DefaultTaxonomy()
	}
	s.mu.Lock()
	if len(s.cache) > 100000 {
		s.cache = map[string]cachedTaxonomy{}
	}
	s.cache[user] = cachedTaxonomy{t: t, updated: updated, at: now}
	s.mu.Unlock()
	return t, updated, nil
}

// Set validates and stores the user's taxonomy.
func (s *Taxonomies) Set(ctx context.Context, user string, t Taxonomy) (time.Time, error) {
	for i := range t {
		t[i].Name = strings.TrimSpace(t[i].Name)
		t[i].Description = strings.Join(strings.Fields(t[i].Description), " ")
	}
	if err := t.Validate(); err != nil {
		return time.Time{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if err := s.store.SetTaxonomy(ctx, user, t, now); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	s.cache[user] = cachedTaxonomy{t: t, updated: now, at: s.now()}
	s.mu.Unlock()
	return now, nil
}

// Forget drops the remembered taxonomy of user.
func (s *Taxonomies) Forget(user string) {
	s.mu.Lock()
	delete(s.cache, user)
	s.mu.Unlock()
}

// CacheKey identifies a cached verdict: whose, under which taxonomy, for
// which content.
type CacheKey struct {
	User, TaxonomyKey, ContentHash string
}

// VerdictCache keeps the language model's verdicts by content.
type VerdictCache interface {
	Cached(ctx context.Context, k CacheKey) (Verdict, bool, error)
	Cache(ctx context.Context, k CacheKey, v Verdict, at time.Time) error
}

// CachedTier puts a verdict cache in front of a paid tier: a message whose
// content the user's taxonomy already judged costs nothing again. The cache
// is per user: a verdict never crosses tenants.
type CachedTier struct {
	Cache VerdictCache
	Next  Tier
	Now   func() time.Time
}

// Classify answers from the cache, or asks Next and remembers its answer.
func (c CachedTier) Classify(ctx context.Context, req Request) (Verdict, error) {
	k := CacheKey{User: req.User, TaxonomyKey: TaxonomyKey(req.Taxonomy), ContentHash: ContentHash(req.Message)}
	if v, ok, err := c.Cache.Cached(ctx, k); err == nil && ok {
		v.Source, v.Confident = SourceCache, true
		v.Usage = Usage{}
		return v, nil
	}
	req.Recheck = func(ctx context.Context) (Verdict, bool) {
		v, ok, err := c.Cache.Cached(ctx, k)
		if err != nil || !ok {
			return Verdict{}, false
		}
		v.Source, v.Confident = SourceCache, true
		v.Usage = Usage{}
		return v, true
	}
	v, err := c.Next.Classify(ctx, req)
	if err != nil || v.Category == "" || v.Source != SourceLLM {
		return v, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	// A failed write costs a paid call later, nothing more.
	_ = c.Cache.Cache(ctx, k, v, now())
	return v, nil
}

// TaxonomyKey identifies a taxonomy's content.
func TaxonomyKey(t Taxonomy) string {
	if len(t) == 0 {
		t = defaultTaxonomy
	}
	h := sha256.New()
	for _, c := range t {
		h.Write([]byte(c.Name))
		h.Write([]byte{0})
		h.Write([]byte(c.Description))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// ContentHash is the message's ContentHash, or one computed from what the
// model reads of it.
func ContentHash(m Message) string {
	if m.ContentHash != "" {
		return m.ContentHash
	}
	h := sha256.New()
	for _, s := range []string{m.Subject, m.Sender(), strings.Join(strings.Fields(m.Body), " ")} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
