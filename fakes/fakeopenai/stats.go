package fakeopenai

import (
	"maps"
	"time"
)

// Stats is what the server has seen since it started or was last Reset.
// GET /fake/stats returns it as JSON.
type Stats struct {
	// Start is when counting began; Series index i covers
	// [Start+i s, Start+(i+1) s) on the server's clock.
	Start time.Time `json:"start"`
	// Now is when the snapshot was taken.
	Now time.Time `json:"now"`
	// Keys holds one entry per configured API key.
	Keys map[string]KeyStats `json:"keys"`
	// InFlight is the chat completion requests being handled now, and
	// MaxInFlight the most handled at once (every outcome, from arrival to
	// the last byte of the answer).
	InFlight    int `json:"inFlight"`
	MaxInFlight int `json:"maxInFlight"`
	// Other counts the requests of Config.Other, the simulated other
	// client on the organization (zero without one).
	Other OtherStats `json:"other"`
}

// OtherStats is what Config.Other, the other client, sent: its Requests,
// the Admitted ones and their AdmittedTokens, and the Refused ones (the
// buckets were short), with Series per second since Start as in KeyStats
// (RateLimited there counts its refused requests).
type OtherStats struct {
	Requests       int64    `json:"requests"`
	Admitted       int64    `json:"admitted"`
	AdmittedTokens int64    `json:"admittedTokens"`
	Refused        int64    `json:"refused"`
	Series         []Second `json:"series"`
}

// KeyStats is one API key's share of Stats.
type KeyStats struct {
	// RPM and TPM are the key's per-minute limits now (0: unlimited); they
	// follow Config.Changes. In a model's entry of Models, the model's.
	RPM int `json:"rpm"`
	TPM int `json:"tpm"`
	// Requests counts the authenticated chat completion requests, whatever
	// became of them.
	Requests int64 `json:"requests"`
	// Admitted counts the requests the rate limiter admitted, and
	// AdmittedTokens their admission cost (prompt tokens + max tokens × n).
	Admitted       int64 `json:"admitted"`
	AdmittedTokens int64 `json:"admittedTokens"`
	// PromptTokens, CompletionTokens and CachedTokens add up the usage of
	// the answers actually sent.
	PromptTokens     int64 `json:"promptTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	CachedTokens     int64 `json:"cachedTokens"`
	// RateLimited counts the 429s of the rate limiter itself. Injected 429s
	// count under Faults["rate_limit"] only.
	RateLimited int64 `json:"rateLimited"`
	// Faults counts the injected faults by kind.
	Faults map[FaultKind]int64 `json:"faults"`
	// BadRequests counts 400s (invalid body or schema).
	BadRequests int64 `json:"badRequests"`
	// Series holds one entry per second since Start, up to the last second
	// in which the key had traffic (pad it to Now for a chart).
	Series []Second `json:"series"`
	// Models holds, for each model with limits of its own on this key
	// (Config.ModelLimits), the same counts for that model's requests
	// alone (Faults aside). The key's own counts above add up every model.
	Models map[string]KeyStats `json:"models,omitempty"`
}

// Second is one second of a key's traffic.
type Second struct {
	// Admitted and AdmittedTokens are the admissions of that second: plotted
	// against RPM/60 and TPM/60 they show how close a client runs to the limit.
	Admitted       int64 `json:"admitted"`
	AdmittedTokens int64 `json:"admittedTokens"`
	// RateLimited counts the limiter's 429s of that second.
	RateLimited int64 `json:"rateLimited"`
}

// keyState is a key's limits, buckets and counters; guarded by Server.mu.
type keyState struct {
	limits Limits
	// base is the key's limits and buckets; models those of the models
	// with limits of their own, each with its stats in modelStats.
	base       *limitState
	models     map[string]*limitState
	modelStats map[string]*KeyStats
	stats      KeyStats
	cache      promptCache
}

// limitsFor is the limits that apply to model.
func (k *keyState) limitsFor(model string) *limitState {
	if ls := k.models[model]; ls != nil {
		return ls
	}
	return k.base
}

// count applies f to the key's stats and to those of model, if it has
// limits of its own.
func (k *keyState) count(model string, f func(*KeyStats)) {
	f(&k.stats)
	if ms := k.modelStats[model]; ms != nil {
		f(ms)
	}
}

func (k *keyState) snapshot() KeyStats {
	st := k.stats.clone()
	if len(k.modelStats) > 0 {
		st.Models = make(map[string]KeyStats, len(k.modelStats))
		for m, ms := range k.modelStats {
			c := ms.clone()
			c.Faults = nil
			st.Models[m] = c
		}
	}
	return st
}

func (k *KeyStats) second(start, now time.Time) *Second { return secondOf(&k.Series, start, now) }

// secondOf is the entry of now in a series that starts at start.
func secondOf(series *[]Second, start, now time.Time) *Second {
	i := 0
	if d := now.Sub(start); d > 0 {
		i = int(d / time.Second)
	}
	for len(*series) <= i {
		*series = append(*series, Second{})
	}
	return &(*series)[i]
}

func (k KeyStats) clone() KeyStats {
	k.Faults = maps.Clone(k.Faults)
	if k.Faults == nil {
		k.Faults = map[FaultKind]int64{}
	}
	k.Series = append([]Second(nil), k.Series...)
	k.Models = nil
	return k
}
