package gateway

import (
	"context"
	"crypto/sha256"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
)

// Limits on callers, in front of every API route:
//
//   - each credential (an API key, or a token passed through) has a token
//     bucket of KeyRate requests a second with a burst of KeyBurst; past it
//     the answer is 429 with Retry-After;
//   - each user has one of UserRate with a burst of UserBurst across all
//     of their API keys, counted once auth has said whose the key is (a
//     token passed through is counted by the services' own checks only:
//     its claims are not verified here, and a forged one must not spend
//     another user's budget);
//   - an API key that auth refused is remembered for invalidKeyTTL and
//     refused again without asking auth;
//   - each client address may make failureBurst refused exchanges, then
//     failureRate a second: past that its unknown keys get 429 without
//     reaching auth, so that a flood of made-up keys does not hammer auth.
//     Keys that exchanged a moment ago (in the gateway's cache) pass.
//
// Behind a proxy every client has the proxy's address and shares its
// failure budget; the per-key limit and the cache of valid keys still let
// known keys through.
const (
	invalidKeyTTL = 15 * time.Second
	failureRate   = rate.Limit(1)
	failureBurst  = 20
	// maxEntries bounds each table; idle entries are swept first, and a
	// table still full after a sweep starts over (forgetting limits rather
	// than growing without bound under a flood of distinct keys).
	maxEntries = 100_000
	sweepEvery = time.Minute
)

// reasonRateLimited is the ErrorInfo reason of a 429 from the gateway.
const reasonRateLimited = "RATE_LIMITED"

// rateLimitedRoute labels, in metrics and logs, requests refused before
// the router named their route.
const rateLimitedRoute = "rate-limited"

// limiter holds the per-key buckets, the invalid keys and the per-address
// failure budgets.
type limiter struct {
	rate      rate.Limit // 0: no per-key limit
	burst     int
	userRate  rate.Limit // 0: no per-user limit
	userBurst int
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[[32]byte]*rate.Limiter
	users     map[string]*rate.Limiter
	invalid   map[[32]byte]time.Time
	failures  map[string]*rate.Limiter
	lastSweep time.Time
}

func newLimiter(perSecond float64, burst int, userPerSecond float64, userBurst int) *limiter {
	if perSecond > 0 && burst < 1 {
		burst = max(1, int(math.Ceil(2*perSecond)))
	}
	if userPerSecond > 0 && userBurst < 1 {
		userBurst = max(1, int(math.Ceil(2*userPerSecond)))
	}
	return &limiter{
		rate:      rate.Limit(perSecond),
		burst:     burst,
		userRate:  rate.Limit(userPerSecond),
		userBurst: userBurst,
		now:       time.Now,
		buckets:   map[[32]byte]*rate.Limiter{},
		users:     map[string]*rate.Limiter{},
		invalid:   map[[32]byte]time.Time{},
		failures:  map[string]*rate.Limiter{},
		lastSweep: time.Now(),
	}
}

// takeKey takes a token of the bucket of credential h; when there is none
// it returns how long until there is.
func (l *limiter) takeKey(h [32]byte, now time.Time) (time.Duration, bool) {
	if l.rate <= 0 {
		return 0, true
	}
	l.mu.Lock()
	l.sweep(now)
	b, ok := l.buckets[h]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[h] = b
	}
	l.mu.Unlock()
	if b.AllowN(now, 1) {
		return 0, true
	}
	return wait(b, now), false
}

// takeUser takes a token of user's bucket; when there is none it returns
// how long until there is.
func (l *limiter) takeUser(user string, now time.Time) (time.Duration, bool) {
	if l.userRate <= 0 || user == "" {
		return 0, true
	}
	l.mu.Lock()
	l.sweep(now)
	b, ok := l.users[user]
	if !ok {
		b = rate.NewLimiter(l.userRate, l.userBurst)
		l.users[user] = b
	}
	l.mu.Unlock()
	if b.AllowN(now, 1) {
		return 0, true
	}
	return wait(b, now), false
}

// wait is how long until b has a token.
func wait(b *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - b.TokensAt(now)
	if missing <= 0 || b.Limit() <= 0 {
		return time.Second
	}
	return time.Duration(missing / float64(b.Limit()) * float64(time.Second))
}

// knownInvalid reports whether auth refused the key with hash h lately.
func (l *limiter) knownInvalid(h [32]byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.invalid[h]
	return ok && now.Before(exp)
}

// failureBudget returns how long addr must wait before its next exchange
// of an unknown key, or zero.
func (l *limiter) failureBudget(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	b, ok := l.failures[addr]
	l.mu.Unlock()
	if !ok || b.TokensAt(now) >= 1 {
		return 0
	}
	return wait(b, now)
}

// refused records that auth refused the key with hash h, sent from addr.
func (l *limiter) refused(h [32]byte, addr string, now time.Time) {
	l.mu.Lock()
	l.sweep(now)
	l.invalid[h] = now.Add(invalidKeyTTL)
	b, ok := l.failures[addr]
	if !ok {
		b = rate.NewLimiter(failureRate, failureBurst)
		l.failures[addr] = b
	}
	l.mu.Unlock()
	b.AllowN(now, 1)
}

// sweep drops idle entries (full buckets, expired invalid keys) once a
// minute, or at once when a table is over maxEntries; l.mu is held.
func (l *limiter) sweep(now time.Time) {
	over := len(l.buckets) > maxEntries || len(l.users) > maxEntries || len(l.invalid) > maxEntries || len(l.failures) > maxEntries
	if !over && now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	for h, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, h)
		}
	}
	for u, b := range l.users {
		if b.TokensAt(now) >= float64(l.userBurst) {
			delete(l.users, u)
		}
	}
	for h, exp := range l.invalid {
		if !now.Before(exp) {
			delete(l.invalid, h)
		}
	}
	for a, b := range l.failures {
		if b.TokensAt(now) >= failureBurst {
			delete(l.failures, a)
		}
	}
	if len(l.buckets) > maxEntries {
		l.buckets = map[[32]byte]*rate.Limiter{}
	}
	if len(l.users) > maxEntries {
		l.users = map[string]*rate.Limiter{}
	}
	if len(l.invalid) > maxEntries {
		l.invalid = map[[32]byte]time.Time{}
	}
	if len(l.failures) > maxEntries {
		l.failures = map[string]*rate.Limiter{}
	}
}

type clientAddrKey struct{}

// clientAddr returns the host of r's remote address.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limitKeys applies the limits to the API routes; it runs before the
// router and the key exchange.
func (g *Gateway) limitKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, err := bearer(r)
		if err != nil {
			next.ServeHTTP(w, r) // the authentication answers 401
			return
		}
		now := g.limits.now()
		h := sha256.Sum256([]byte(cred))
		if d, ok := g.limits.takeKey(h, now); !ok {
			g.tooManyRequests(w, r, d, "this API key is over its rate limit of "+strconv.FormatFloat(float64(g.limits.rate), 'f', -1, 64)+" requests a second")
			return
		}
		addr := clientAddr(r)
		if authn.LooksLikeJWT(cred) {
			// Identity tokens pass through to the services, which verify
			// them; those they refused count like refused keys (see
			// tokenRefused), so that made-up tokens cannot probe the
			// services any faster than made-up keys probe auth.
			if g.limits.knownInvalid(h, now) {
				g.writeError(w, r, status.Error(codes.Unauthenticated, "invalid identity token"))
				return
			}
			if d := g.limits.failureBudget(addr, now); d > 0 {
				g.tooManyRequests(w, r, d, "too many invalid credentials from this address")
				return
			}
		} else {
			if g.limits.knownInvalid(h, now) {
				g.writeError(w, r, invalidKeyStatus())
				return
			}
			if d := g.limits.failureBudget(addr, now); d > 0 && !g.keys.Cached(cred) {
				g.tooManyRequests(w, r, d, "too many invalid API keys from this address")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, addr)))
	})
}

// invalidKeyStatus is auth's answer to a key it does not know, repeated.
func invalidKeyStatus() error {
	st := status.New(codes.Unauthenticated, "invalid API key")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: "UNAUTHENTICATED", Domain: apierror.Domain}); err == nil {
		st = d
	}
	return st.Err()
}

// tooManyRequests answers 429 with Retry-After (whole seconds, rounded up)
// and a google.rpc.Status carrying an ErrorInfo and a RetryInfo.
func (g *Gateway) tooManyRequests(w http.ResponseWriter, r *http.Request, retry time.Duration, msg string) {
	secs := max(1, int64(math.Ceil(retry.Seconds())))
	setRoute(r.Context(), rateLimitedRoute)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	st := status.New(codes.ResourceExhausted, msg+"; retry in "+strconv.FormatInt(secs, 10)+" s")
	if d, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: reasonRateLimited, Domain: apierror.Domain},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)},
	); err == nil {
		st = d
	}
	g.writeError(w, r, st.Err())
}

// recordRefusals wraps the exchange with auth: a key that auth refuses is
// remembered, and counts against its sender's failure budget.
func (g *Gateway) recordRefusals(exchange authn.ExchangeFunc) authn.ExchangeFunc {
	return func(ctx context.Context, apiKey string) (*authv1.ExchangeApiKeyResponse, error) {
		resp, err := exchange(ctx, apiKey)
		if status.Code(err) == codes.Unauthenticated {
			addr, _ := ctx.Value(clientAddrKey{}).(string)
			g.limits.refused(sha256.Sum256([]byte(apiKey)), addr, g.limits.now())
		}
		return resp, err
	}
}

type passedTokenKey struct{}

// withPassedToken marks r as carrying the identity token cred, which the
// gateway passes to the services unverified.
func withPassedToken(r *http.Request, cred string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), passedTokenKey{}, cred))
}

// tokenRefused records, when err is a service's refusal of the identity
// token that r passed through, that the token is invalid and that its
// sender used up some of its failure budget.
func (g *Gateway) tokenRefused(r *http.Request, err error) {
	if status.Code(err) != codes.Unauthenticated {
		return
	}
	cred, ok := r.Context().Value(passedTokenKey{}).(string)
	if !ok {
		return
	}
	addr, _ := r.Context().Value(clientAddrKey{}).(string)
	g.limits.refused(sha256.Sum256([]byte(cred)), addr, g.limits.now())
}
