package gateway_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailroom.dev/gateway"
)

func TestKeyRateLimit(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.KeyRate, c.KeyBurst = 2, 3 })
	const path = "/v1/users/me/messages"
	for i := range 3 {
		if resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey}); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey})
	st := wantStatus(t, resp, body, http.StatusTooManyRequests, 8)
	if st.reason() != "RATE_LIMITED" {
		t.Errorf("reason = %q, want RATE_LIMITED; body %s", st.reason(), body)
	}
	var retryInfo bool
	for _, d := range st.Details {
		if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo" {
			retryInfo = true
		}
	}
	if !retryInfo {
		t.Errorf("no RetryInfo in %s", body)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 2 {
		t.Errorf("Retry-After = %q, want a whole number of seconds, 1 at 2 requests a second", resp.Header.Get("Retry-After"))
	}
	if strings.Contains(string(body), e.apiKey) {
		t.Error("the 429 repeats the key")
	}
	if n := e.recorders["store"].count("/ListMessages"); n != 3 {
		t.Errorf("the store received %d calls, want the 3 within the burst", n)
	}

	// Another caller has its own bucket.
	resp, body = e.do(t, request{method: "GET", path: path, key: "mr_someone_else_0123456789"})
	wantStatus(t, resp, body, http.StatusUnauthorized, 16)

	// The bucket refills: at 2 a second, a token is back within 500 ms.
	time.Sleep(600 * time.Millisecond)
	if resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey}); resp.StatusCode != http.StatusOK {
		t.Errorf("after a refill: %d %s", resp.StatusCode, body)
	}

	// Health, readiness and metrics are not API routes: not limited.
	for range 5 {
		if resp, _ := e.do(t, request{method: "GET", path: "/healthz", key: e.apiKey}); resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: %d", resp.StatusCode)
		}
	}
	resp, body = e.do(t, request{method: "GET", path: "/metrics", key: e.adminKey(t)})
	if want := `mailroom_http_requests_total{code="429",method="GET",route="rate-limited"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestZeroKeyRateDisablesTheLimit(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.KeyRate, c.KeyBurst = 0, 1 })
	for i := range 10 {
		if resp, body := e.do(t, request{method: "GET", path: "/v1/users/me/messages", key: e.apiKey}); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
}

// A flood of invalid keys does not reach auth: the same key is refused from
// memory, and distinct ones stop after the address's failure budget, while
// a key that exchanged before keeps working.
func TestInvalidKeysSpareAuth(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.KeyRate, c.KeyBurst = 1000, 1000 })
	const path = "/v1/users/me/messages"
	if resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey}); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid key: %d %s", resp.StatusCode, body)
	}
	before := e.auth.Exchanges.Load()

	const bad = "mr_made_up_key_0123456789"
	for range 10 {
		resp, body := e.do(t, request{method: "GET", path: path, key: bad})
		st := wantStatus(t, resp, body, http.StatusUnauthorized, 16)
		if st.Message != "invalid API key" {
			t.Errorf("message = %q", st.Message)
		}
	}
	if got := e.auth.Exchanges.Load() - before; got != 1 {
		t.Errorf("10 requests with one invalid key made %d exchanges with auth, want 1", got)
	}

	// Distinct made-up keys: auth sees the first 20 or so, then the gateway
	// answers 429 by itself.
	var limited *http.Response
	var limitedBody []byte
	for i := range 60 {
		resp, body := e.do(t, request{method: "GET", path: path, key: fmt.Sprintf("mr_flood_%04d_abcdefghij", i)})
		if resp.StatusCode == http.StatusTooManyRequests {
			limited, limitedBody = resp, body
			break
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("flood key %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if limited == nil {
		t.Fatal("60 distinct invalid keys from one address were never limited")
	}
	wantStatus(t, limited, limitedBody, http.StatusTooManyRequests, 8)
	if ra, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", limited.Header.Get("Retry-After"))
	}
	if got := e.auth.Exchanges.Load() - before; got > 25 {
		t.Errorf("the flood made %d exchanges with auth, want about 20", got)
	}
	// The key that exchanged before still works.
	if resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey}); resp.StatusCode != http.StatusOK {
		t.Errorf("the valid key during the flood: %d %s", resp.StatusCode, body)
	}
	logs := e.logs.String()
	for _, k := range []string{e.apiKey, bad, "mr_flood_0000_abcdefghij"} {
		if strings.Contains(logs, k) {
			t.Errorf("the logs hold a key")
		}
	}
}

// Identity tokens that the services refuse count against the address's
// failure budget as refused keys do: a flood of made-up tokens is cut off
// by the gateway, and one refused token is refused again from memory.
func TestInvalidTokensUseTheFailureBudget(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.KeyRate, c.KeyBurst = 1000, 1000 })
	const path = "/v1/users/me/messages"
	if resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey}); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid key: %d %s", resp.StatusCode, body)
	}
	refused := 0
	var limited *http.Response
	for i := range 60 {
		forged := fmt.Sprintf("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2Vycy9hZGEiLCJuIjoi%04d.c2lnbmF0dXJl", i)
		resp, body := e.do(t, request{method: "GET", path: path, key: forged})
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
			break
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged token %d: %d %s", i, resp.StatusCode, body)
		}
		refused++
	}
	if limited == nil {
		t.Fatal("60 distinct forged identity tokens from one address were never limited")
	}
	if ra, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", limited.Header.Get("Retry-After"))
	}
	if refused > 25 {
		t.Errorf("%d forged tokens reached the services before the limit, want about 20", refused)
	}
	// The key that exchanged before still works.
	if resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey}); resp.StatusCode != http.StatusOK {
		t.Errorf("the valid key during the flood: %d %s", resp.StatusCode, body)
	}
}

// TestUserRateLimitAcrossKeys: a user cannot multiply their request rate by
// making many API keys; the limit counts per user as well as per key.
func TestUserRateLimitAcrossKeys(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.KeyRate, c.KeyBurst, c.UserRate, c.UserBurst = 100, 100, 1, 4 })
	keys := []string{e.apiKey}
	for i := range 3 {
		k := fmt.Sprintf("mr_test_second_key_%d_0123456789", i)
		e.auth.AddAPIKey(k, "ada", false)
		keys = append(keys, k)
	}
	const path = "/v1/users/me/messages"
	for i, k := range keys {
		if resp, body := e.do(t, request{method: "GET", path: path, key: k}); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d (key %d) within the user's burst of 4: %d %s", i+1, i+1, resp.StatusCode, body)
		}
	}
	resp, body := e.do(t, request{method: "GET", path: path, key: keys[3]})
	st := wantStatus(t, resp, body, http.StatusTooManyRequests, 8)
	if st.reason() != "RATE_LIMITED" || !strings.Contains(st.Message, "across all of its API keys") {
		t.Errorf("5th request of the user: %s; want RATE_LIMITED for the user", body)
	}
	// Another user is not held back.
	e.auth.AddAPIKey("mr_test_bob_key_0123456789", "bob", false)
	if resp, body := e.do(t, request{method: "GET", path: path, key: "mr_test_bob_key_0123456789"}); resp.StatusCode != http.StatusOK {
		t.Errorf("another user: %d %s", resp.StatusCode, body)
	}
}
