package classify

import (
	"context"
	"time"
)

// Limits is the state of the limiter that keeps language-model calls inside
// the account's limits, as GetLimits reports it.
type Limits struct {
	// Keys are the API keys' limiters; empty when no model is configured.
	Keys []KeyLimits
	// Lanes are the queues waiting for capacity, in lane priority order.
	Lanes []LaneQueue
	// Replicas is the number of live classifier replicas sharing the limits.
	Replicas int
	// Model is the model in use; empty when only rules run.
	Model string
	// Budget is the spending guard's state.
	Budget BudgetStatus
	// Batches is the backfill mail in OpenAI batches.
	Batches BatchQueue
}

// BatchQueue is the backfill mail sent through the Batch API.
type BatchQueue struct {
	Waiting, Batches, Answered, Realtime int64
}

// BudgetStatus is the spending guard's state; amounts in millionths of a
// US dollar, 0 meaning no limit.
type BudgetStatus struct {
	DailyMicros, SpentTodayMicros int64
	// CreditRemainingMicros is -1 when no credit is configured.
	CreditRemainingMicros int64
	Exhausted             bool
}

// KeyLimits is the state of one API key's limiter for one model.
type KeyLimits struct {
	// Key identifies the key without revealing it.
	Key   string
	Model string
	// Configured and Advertised are the configured limits and those the
	// provider advertises (zero: none); LimitSource says which is in force
	// ("configured", "advertised", "learning", "fallback").
	Configured, Advertised RateLimits
	LimitSource            string
	// Ceiling is the fraction of the limits in force used now (below 1 for
	// a while after a 429). RequestsPerMinute and TokensPerMinute are the
	// rates admitted now: limits × replica share × ceiling.
	Ceiling               float64
	RequestsPerMinute     float64
	TokensPerMinute       float64
	RequestsAvailable     float64
	TokensAvailable       float64
	InFlight              int64
	RateLimitedLastMinute int64
	RetriesLastMinute     int64
	FrozenSeconds         float64
}

// RateLimits are per-minute limits; zero means none.
type RateLimits struct {
	RequestsPerMinute, TokensPerMinute float64
}

// LaneQueue is how many messages wait in one lane.
type LaneQueue struct {
	Lane    Lane
	Waiting int64
	// OldestWait is how long the longest-waiting message has waited.
	OldestWait time.Duration
}

// LimitsReporter reports the limiter's state.
type LimitsReporter interface {
	Limits(ctx context.Context) Limits
}

// RulesOnly is the LimitsReporter of a classifier without a language model:
// no keys, nothing waiting, one replica. (The limiter replaces it.)
type RulesOnly struct{}

// Limits reports the empty limiter.
func (RulesOnly) Limits(context.Context) Limits {
	return Limits{
		Lanes:    []LaneQueue{{Lane: LaneInteractive}, {Lane: LaneLive}, {Lane: LaneBackfill}},
		Replicas: 1,
		Budget:   BudgetStatus{CreditRemainingMicros: -1},
	}
}
