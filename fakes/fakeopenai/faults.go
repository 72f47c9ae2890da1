package fakeopenai

import "time"

// FaultKind names a kind of injected failure. Its string is the key of
// KeyStats.Faults.
type FaultKind string

// The fault kinds. Where a kind stands relative to rate-limit admission
// decides whether it uses up capacity, as it would at OpenAI, whose limiter
// sits in front of the model:
const (
	// FaultRateLimit answers 429 rate_limit_exceeded with the fault's
	// RetryAfter as "Please try again in …", retry-after(-ms) and the reset
	// header of an emptied request bucket. Before admission: uses nothing.
	FaultRateLimit FaultKind = "rate_limit"
	// FaultOverloaded answers 503 (server_error "The engine is currently
	// overloaded"). Load shedding before admission: uses nothing.
	FaultOverloaded FaultKind = "overloaded"
	// FaultServerError answers 500 (server_error). The request was admitted
	// and reached the model: it uses its requests and tokens.
	FaultServerError FaultKind = "server_error"
	// FaultConnReset waits the request's latency, then closes the
	// connection without an answer (a TCP reset). Admitted: uses capacity,
	// and the client cannot tell.
	FaultConnReset FaultKind = "conn_reset"
	// FaultSlow answers normally after the fault's Latency instead of the
	// configured latency. Admitted.
	FaultSlow FaultKind = "slow"
	// FaultInvalidJSON answers 200 whose message content is not JSON (the
	// valid answer cut in half). Admitted.
	FaultInvalidJSON FaultKind = "invalid_json"
	// FaultOutsideEnum answers 200 with a valid-looking object whose first
	// enum field (in sorted property order, depth first; "category" in
	// mailroom's schema) holds a value outside the enum. Admitted. Without
	// an enum in the schema it answers normally.
	FaultOutsideEnum FaultKind = "outside_enum"
)

// Fault is one injected failure.
type Fault struct {
	Kind FaultKind
	// RetryAfter is the wait a FaultRateLimit names (default 1s).
	RetryAfter time.Duration
	// Latency is the response time of a FaultSlow (default 10s).
	Latency time.Duration
}

// Ready-made faults for Server.Inject.
var (
	ServerError = Fault{Kind: FaultServerError}
	Overloaded  = Fault{Kind: FaultOverloaded}
	ConnReset   = Fault{Kind: FaultConnReset}
	InvalidJSON = Fault{Kind: FaultInvalidJSON}
	OutsideEnum = Fault{Kind: FaultOutsideEnum}
)

// RateLimitStorm is a 429 that tells the client to try again in retryAfter.
// Inject(RateLimitStorm(d), n) answers the next n requests so.
func RateLimitStorm(retryAfter time.Duration) Fault {
	return Fault{Kind: FaultRateLimit, RetryAfter: retryAfter}
}

// Slow is a response that takes latency instead of the configured latency.
func Slow(latency time.Duration) Fault {
	return Fault{Kind: FaultSlow, Latency: latency}
}

// preAdmission reports whether the fault happens in front of the limiter.
func (f Fault) preAdmission() bool {
	return f.Kind == FaultRateLimit || f.Kind == FaultOverloaded
}

// FaultRates are the probabilities, each in [0, 1], that a request meets a
// fault when none is queued by Inject. One draw from the server's seeded
// random source picks at most one of them, so they add up (keep the sum at
// most 1).
type FaultRates struct {
	RateLimit   float64 // 429, see FaultRateLimit
	Overloaded  float64 // 503
	ServerError float64 // 500
	ConnReset   float64 // connection closed without an answer
	Slow        float64 // answer after SlowLatency
	InvalidJSON float64 // content is not JSON
	OutsideEnum float64 // an enum field outside its enum

	// RateLimitRetryAfter is the "try again in" of a random 429 (default 1s).
	RateLimitRetryAfter time.Duration
	// SlowLatency is the latency of a random slow answer (default 10s).
	SlowLatency time.Duration
}

func (r FaultRates) any() bool {
	return r.RateLimit+r.Overloaded+r.ServerError+r.ConnReset+r.Slow+r.InvalidJSON+r.OutsideEnum > 0
}

// draw picks at most one fault for a uniform u in [0, 1).
func (r FaultRates) draw(u float64) (Fault, bool) {
	for _, c := range []struct {
		p float64
		f Fault
	}{
		{r.RateLimit, RateLimitStorm(r.RateLimitRetryAfter)},
		{r.Overloaded, Overloaded},
		{r.ServerError, ServerError},
		{r.ConnReset, ConnReset},
		{r.Slow, Slow(r.SlowLatency)},
		{r.InvalidJSON, InvalidJSON},
		{r.OutsideEnum, OutsideEnum},
	} {
		if u < c.p {
			return c.f, true
		}
		u -= c.p
	}
	return Fault{}, false
}

func (f Fault) withDefaults() Fault {
	if f.Kind == FaultRateLimit && f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	if f.Kind == FaultSlow && f.Latency <= 0 {
		f.Latency = 10 * time.Second
	}
	return f
}
