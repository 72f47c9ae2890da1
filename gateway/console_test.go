package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"mailroom.dev/gateway"
	"mailroom.dev/platform/authn"
)

// The web console is served under /console/ with its security headers;
// the API routes are untouched by it.
func TestConsoleServed(t *testing.T) {
	e := start(t)
	resp, body := e.do(t, request{method: "GET", path: "/console/"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<main id="main"`) {
		t.Fatalf("GET /console/: %d %.200s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	resp, _ = e.do(t, request{method: "GET", path: "/console"})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/" {
		t.Errorf("GET /console: %d at %s, want the redirect to /console/ followed", resp.StatusCode, resp.Request.URL.Path)
	}
	resp, _ = e.do(t, request{method: "GET", path: "/console/nope.js"})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /console/nope.js: %d", resp.StatusCode)
	}
}

// POST /v1/apiKeys:exchange trades the API key in its body for an identity
// token, with no bearer credential; the token then works as one.
func TestExchangeRoute(t *testing.T) {
	e := start(t)
	resp, body := e.do(t, request{method: "POST", path: "/v1/apiKeys:exchange", body: strings.NewReader(fmt.Sprintf(`{"apiKey": %q}`, e.apiKey))})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	var got struct{ Token, ExpireTime, User, Role string }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if !authn.LooksLikeJWT(got.Token) || got.User != "users/ada" || got.Role != "ROLE_USER" || got.ExpireTime == "" {
		t.Fatalf("exchange answered %s", body)
	}
	if strings.Contains(e.logs.String(), e.apiKey) || strings.Contains(e.logs.String(), got.Token) {
		t.Error("the key or the token is in the gateway's log")
	}
	resp, body = e.do(t, request{method: "GET", path: "/v1/users/me/messages", key: got.Token})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a call with the exchanged token: %d %s", resp.StatusCode, body)
	}

	// A service key is no user's: it does not sign in to the console.
	serviceKey := "mr_test_service_" + strings.Repeat("s", 20)
	e.auth.AddKey(serviceKey, authn.Caller{Service: "ingest"})
	resp, body = e.do(t, request{method: "POST", path: "/v1/apiKeys:exchange", body: strings.NewReader(fmt.Sprintf(`{"apiKey": %q}`, serviceKey))})
	if st := wantStatus(t, resp, body, http.StatusForbidden, 7); !strings.Contains(st.Message, "service key") {
		t.Errorf("a service key's exchange: %s", body)
	}

	for _, tc := range []struct {
		name, body  string
		http, code  int
		wantMessage string
	}{
		{"no key", `{}`, 400, 3, "api_key is required"},
		{"not JSON", `apiKey=x`, 400, 3, "the body must be a JSON object"},
		{"wrong key", `{"apiKey": "mr_test_not-a-key-of-anyone"}`, 401, 16, "invalid API key"},
		{"too large", `{"apiKey": "` + strings.Repeat("k", 5000) + `"}`, 413, 3, "request body exceeds the limit of 4096 bytes"},
	} {
		resp, body := e.do(t, request{method: "POST", path: "/v1/apiKeys:exchange", body: strings.NewReader(tc.body)})
		st := wantStatus(t, resp, body, tc.http, tc.code)
		if !strings.Contains(st.Message, tc.wantMessage) {
			t.Errorf("%s: message %q, want it to contain %q", tc.name, st.Message, tc.wantMessage)
		}
	}
}

// Made-up keys sent to the exchange route spend the address's budget of
// refused keys like made-up bearer keys do: past it, 429 without asking auth.
func TestExchangeRouteFailureBudget(t *testing.T) {
	e := start(t)
	asked := func() int { return e.recorders["auth"].count("/ExchangeApiKey") }
	var limited int
	for i := range 30 {
		resp, body := e.do(t, request{method: "POST", path: "/v1/apiKeys:exchange", body: strings.NewReader(fmt.Sprintf(`{"apiKey": "mr_test_made_up_%02d"}`, i))})
		switch resp.StatusCode {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Fatalf("made-up key %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if limited == 0 {
		t.Fatal("30 made-up keys from one address were all sent to auth")
	}
	if n := asked(); n > 21 {
		t.Errorf("auth was asked %d times for 30 made-up keys, want at most the budget of 20 (+1)", n)
	}
}

// The exchange route spends the key's bucket and the user's, as a call
// with the key as bearer does.
func TestExchangeRouteRateLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*gateway.Config)
		want string
	}{
		{"per key", func(c *gateway.Config) { c.KeyRate, c.KeyBurst = 0.001, 1 }, "this API key is over its rate limit"},
		{"per user", func(c *gateway.Config) { c.UserRate, c.UserBurst = 0.001, 1 }, "this user is over its rate limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startWith(t, tc.edit)
			body := fmt.Sprintf(`{"apiKey": %q}`, e.apiKey)
			if resp, out := e.do(t, request{method: "POST", path: "/v1/apiKeys:exchange", body: strings.NewReader(body)}); resp.StatusCode != http.StatusOK {
				t.Fatalf("first exchange: %d %s", resp.StatusCode, out)
			}
			resp, out := e.do(t, request{method: "POST", path: "/v1/apiKeys:exchange", body: strings.NewReader(body)})
			st := wantStatus(t, resp, out, http.StatusTooManyRequests, 8)
			if !strings.Contains(st.Message, tc.want) || resp.Header.Get("Retry-After") == "" {
				t.Errorf("second exchange: %s (Retry-After %q), want %q", out, resp.Header.Get("Retry-After"), tc.want)
			}
		})
	}
}
