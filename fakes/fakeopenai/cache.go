package fakeopenai

import "time"

// Prompt caching as OpenAI describes it: a prompt of at least 1024 tokens
// whose beginning matches a prompt seen recently (by the same organization)
// gets that common prefix billed as cached_tokens, counted in steps of 128
// tokens from 1024. Entries expire after five minutes without use.
const (
	cacheMinTokens = 1024
	cacheStep      = 128
	cacheTTL       = 5 * time.Minute
	cacheMaxSize   = 1 << 17
)

// promptCache remembers hashes of prompt prefixes at the cacheable lengths.
type promptCache struct {
	seen map[uint64]time.Time
}

// prefixHashes hashes a rendered prompt (one value per prompt token) at
// every cacheable length it reaches: 1024, 1152, 1280, …
func prefixHashes(seq []uint64) []uint64 {
	var out []uint64
	h := uint64(14695981039346656037)
	for i, v := range seq {
		h ^= v
		h *= 1099511628211
		if n := i + 1; n >= cacheMinTokens && (n-cacheMinTokens)%cacheStep == 0 {
			out = append(out, h)
		}
	}
	return out
}

// use returns the cached tokens of a prompt with these prefix hashes and
// remembers its prefixes for the next ones.
func (c *promptCache) use(hashes []uint64, now time.Time) int {
	if len(hashes) == 0 {
		return 0
	}
	if c.seen == nil {
		c.seen = map[uint64]time.Time{}
	}
	cached := 0
	for i, h := range hashes {
		if t, ok := c.seen[h]; ok && now.Sub(t) < cacheTTL {
			cached = cacheMinTokens + i*cacheStep
		}
	}
	if len(c.seen)+len(hashes) > cacheMaxSize {
		for h, t := range c.seen {
			if now.Sub(t) >= cacheTTL {
				delete(c.seen, h)
			}
		}
		if len(c.seen)+len(hashes) > cacheMaxSize {
			clear(c.seen)
		}
	}
	for _, h := range hashes {
		c.seen[h] = now
	}
	return cached
}
