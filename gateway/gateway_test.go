package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"mailroom.dev/gateway"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
)

// spans receives every span of the test binary.
var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "gateway-test", Exporter: spans})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = shutdown(context.Background())
	os.Exit(code)
}

// syncBuffer collects log lines written at once by many goroutines.
type syncBuffer = testenv.Buffer

type env struct {
	*backends
	url  string
	logs *syncBuffer
}

const maxBody = 64 << 10

// start runs the fakes and a gateway (New + Run on 127.0.0.1:0) in front
// of them.
func start(t *testing.T) *env { return startWith(t, nil) }

// startWith is start with the gateway's config changed by edit first.
func startWith(t *testing.T, edit func(*gateway.Config)) *env {
	t.Helper()
	b := startBackends(t)
	cfg := gateway.Config{MaxBodyBytes: maxBody, ReadyTimeout: time.Second}
	cfg.Addrs = grpcconn.Addrs{Auth: b.addrs["auth"], Ingest: b.addrs["ingest"], Classifier: b.addrs["classifier"], Store: b.addrs["store"]}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.KeyRate, cfg.UserRate = 0, 0 // the rate limits' own tests turn them on
	if edit != nil {
		edit(&cfg)
	}
	logs := &syncBuffer{}
	g, err := gateway.New(context.Background(), cfg, telemetry.NewLogger(logs, slog.LevelDebug, "gateway"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addr, _ := testenv.Serve(t, g)
	return &env{backends: b, url: "http://" + addr, logs: logs}
}

type request struct {
	method, path string
	key          string // sent as Authorization: Bearer <key> when set
	auth         string // the whole Authorization header, when set
	body         io.Reader
	header       http.Header
}

func (e *env) do(t *testing.T, r request) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(r.method, e.url+r.path, r.body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	switch {
	case r.auth != "":
		req.Header.Set("Authorization", r.auth)
	case r.key != "":
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// rpcStatus is google.rpc.Status in JSON.
type rpcStatus struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Details []map[string]any `json:"details"`
}

func decodeStatus(t *testing.T, body []byte) rpcStatus {
	t.Helper()
	var st rpcStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("body %q is not a google.rpc.Status: %v", body, err)
	}
	if st.Message == "" || st.Details == nil {
		t.Fatalf("body %s lacks a message or details", body)
	}
	return st
}

func (st rpcStatus) reason() string {
	for _, d := range st.Details {
		if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			r, _ := d["reason"].(string)
			return r
		}
	}
	return ""
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, wantHTTP, wantCode int) rpcStatus {
	t.Helper()
	if resp.StatusCode != wantHTTP {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, wantHTTP, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	st := decodeStatus(t, body)
	if st.Code != wantCode {
		t.Errorf("code = %d, want %d; body %s", st.Code, wantCode, body)
	}
	return st
}

func TestAuthentication(t *testing.T) {
	e := start(t)
	const path = "/v1/users/me/messages"

	t.Run("missing header", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: path})
		st := wantStatus(t, resp, body, http.StatusUnauthorized, 16)
		if len(st.Details) != 0 {
			t.Errorf("details = %v, want none", st.Details)
		}
	})
	t.Run("not bearer", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: path, auth: "Basic " + e.apiKey})
		wantStatus(t, resp, body, http.StatusUnauthorized, 16)
	})
	t.Run("invalid key", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: path, key: "mr_wrong_key_0123456789"})
		wantStatus(t, resp, body, http.StatusUnauthorized, 16)
	})
	if n := e.recorders["store"].count("/ListMessages"); n != 0 {
		t.Errorf("store received %d calls without a valid credential, want 0", n)
	}

	t.Run("valid key reaches the store with a token", func(t *testing.T) {
		for range 2 {
			resp, body := e.do(t, request{method: "GET", path: path, key: e.apiKey})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
			}
			var got struct {
				Messages []struct {
					Name           string `json:"name"`
					Subject        string `json:"subject"`
					From           string `json:"from"`
					ReceivedTime   string `json:"receivedTime"`
					Classification struct {
						Category string `json:"category"`
					} `json:"classification"`
				} `json:"messages"`
				NextPageToken *string `json:"nextPageToken"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Messages) != 1 {
				t.Fatalf("messages = %s, want one", body)
			}
			m := got.Messages[0]
			if m.Name != "users/ada/messages/m1" || m.Subject != "hello" || m.ReceivedTime != "2026-01-02T03:04:05Z" || m.Classification.Category != "newsletters" {
				t.Errorf("message = %+v", m)
			}
			if got.NextPageToken == nil {
				t.Error("nextPageToken is missing: unpopulated fields should be emitted")
			}
		}

		c := e.recorders["store"].last(t, "/ListMessages")
		if c.caller.User != "ada" {
			t.Errorf("caller = %+v, want user ada (verified by authn)", c.caller)
		}
		authz := c.md.Get("authorization")
		if len(authz) != 1 || !strings.HasPrefix(authz[0], "Bearer ") || !authn.LooksLikeJWT(strings.TrimPrefix(authz[0], "Bearer ")) {
			t.Errorf("authorization metadata = %q, want one Bearer JWT", authz)
		}
		for k, vs := range c.md {
			for _, v := range vs {
				if strings.Contains(v, e.apiKey) {
					t.Errorf("metadata %s carries the API key", k)
				}
			}
		}
		if got := e.auth.Exchanges.Load(); got != 2 { // the invalid key, then the valid one once
			t.Errorf("exchanges with auth = %d, want 2 (the token is cached)", got)
		}
	})

	t.Run("a token passes through", func(t *testing.T) {
		tok := strings.TrimPrefix(e.recorders["store"].last(t, "/ListMessages").md.Get("authorization")[0], "Bearer ")
		resp, body := e.do(t, request{method: "GET", path: path, key: tok})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
		}
	})

	t.Run("another user's resources", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: "/v1/users/bob/messages", key: e.apiKey})
		wantStatus(t, resp, body, http.StatusForbidden, 7)
	})

	logs := e.logs.String()
	for _, secret := range []string{e.apiKey, "mr_wrong_key_0123456789"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain an API key:\n%s", logs)
		}
	}
}

func TestEnumShortForms(t *testing.T) {
	e := start(t)
	tests := []struct {
		body         string
		wantProvider ingestv1.Provider
		wantSecurity ingestv1.ImapSecurity
	}{
		{`{"provider":"GMAIL"}`, ingestv1.Provider_PROVIDER_GMAIL, 0},
		{`{"provider":"PROVIDER_GMAIL"}`, ingestv1.Provider_PROVIDER_GMAIL, 0},
		{`{"provider":"IMPORT"}`, ingestv1.Provider_PROVIDER_IMPORT, 0},
		{`{"provider":"IMAP","address":"ada@example.com","imap":{"host":"imap.example.com","port":993,"username":"ada","password":"pw","security":"TLS"}}`,
			ingestv1.Provider_PROVIDER_IMAP, ingestv1.ImapSecurity_IMAP_SECURITY_TLS},
		{`{"provider":"IMAP","imap":{"security":"STARTTLS"}}`, ingestv1.Provider_PROVIDER_IMAP, ingestv1.ImapSecurity_IMAP_SECURITY_STARTTLS},
	}
	for _, tt := range tests {
		resp, body := e.do(t, request{method: "POST", path: "/v1/users/me/mailboxes", key: e.apiKey, body: strings.NewReader(tt.body)})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status = %d, want 200; body %s", tt.body, resp.StatusCode, body)
		}
		req := e.recorders["ingest"].last(t, "/CreateMailbox").req.(*ingestv1.CreateMailboxRequest)
		if got := req.GetMailbox().GetProvider(); got != tt.wantProvider {
			t.Errorf("%s: provider = %v, want %v", tt.body, got, tt.wantProvider)
		}
		if got := req.GetMailbox().GetImap().GetSecurity(); got != tt.wantSecurity {
			t.Errorf("%s: imap.security = %v, want %v", tt.body, got, tt.wantSecurity)
		}
		if got := req.GetParent(); got != "users/me" {
			t.Errorf("parent = %q, want users/me", got)
		}
		// Responses keep the full names.
		var mb struct {
			Name     string `json:"name"`
			Provider string `json:"provider"`
		}
		if err := json.Unmarshal(body, &mb); err != nil {
			t.Fatal(err)
		}
		if mb.Name != "users/ada/mailboxes/mb1" || mb.Provider != tt.wantProvider.String() {
			t.Errorf("%s: response %s", tt.body, body)
		}
	}
}

func TestErrors(t *testing.T) {
	e := start(t)

	t.Run("InvalidArgument is 400", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: "/v1/users/me/messages?filter=bad", key: e.apiKey})
		st := wantStatus(t, resp, body, http.StatusBadRequest, 3)
		if st.Message != "filter: cannot parse the filter" || st.reason() != "INVALID_ARGUMENT" {
			t.Errorf("status = %s", body)
		}
	})
	t.Run("MESSAGE_TOO_LARGE is 413", func(t *testing.T) {
		raw := strings.Repeat("A", 4000) // base64 of 3000 bytes: over the fake's 1 KiB, under the gateway's cap
		resp, body := e.do(t, request{method: "POST", path: "/v1/users/me/mailboxes/mb1/messages:import", key: e.apiKey,
			body: strings.NewReader(`{"messages":[{"raw":"` + raw + `"}]}`)})
		st := wantStatus(t, resp, body, http.StatusRequestEntityTooLarge, 3)
		if st.reason() != "MESSAGE_TOO_LARGE" || st.Message != "messages.raw: a message is larger than 1 KiB" {
			t.Errorf("status = %s", body)
		}
	})
	t.Run("gRPC's message size limit is 413", func(t *testing.T) {
		body := `{"subject":"` + strings.Repeat("x", classifierMaxRecv) + `"}` // under the gateway's cap
		resp, b := e.do(t, request{method: "POST", path: "/v1/classify", key: e.apiKey, body: strings.NewReader(body)})
		wantStatus(t, resp, b, http.StatusRequestEntityTooLarge, 8)
	})
	t.Run("body over the cap is 413", func(t *testing.T) {
		big := `{"subject":"` + strings.Repeat("x", maxBody) + `"}`
		for _, tc := range []struct {
			name string
			body io.Reader
		}{
			{"with Content-Length", strings.NewReader(big)},
			{"chunked", struct{ io.Reader }{strings.NewReader(big)}}, // unknown length: read until the cap
		} {
			resp, body := e.do(t, request{method: "POST", path: "/v1/classify", key: e.apiKey, body: tc.body})
			st := wantStatus(t, resp, body, http.StatusRequestEntityTooLarge, 3)
			if !strings.Contains(st.Message, fmt.Sprint(maxBody)) || st.reason() != "MESSAGE_TOO_LARGE" {
				t.Errorf("%s: status = %s", tc.name, body)
			}
		}
		if n := e.recorders["classifier"].count("/Classify"); n != 0 {
			t.Errorf("classifier received %d oversized requests, want 0", n)
		}
		resp, body := e.do(t, request{method: "POST", path: "/v1/classify", key: e.apiKey, body: strings.NewReader(`{"subject":"hi"}`)})
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"newsletters"`) {
			t.Errorf("small body: status %d, body %s", resp.StatusCode, body)
		}
	})
	t.Run("malformed JSON is 400", func(t *testing.T) {
		resp, body := e.do(t, request{method: "POST", path: "/v1/classify", key: e.apiKey, body: strings.NewReader(`{"subject":`)})
		wantStatus(t, resp, body, http.StatusBadRequest, 3)
	})
	t.Run("decoding errors name the field, not the value", func(t *testing.T) {
		sent := func() int {
			return e.recorders["ingest"].count("/ImportMessages") + e.recorders["ingest"].count("/CreateMailbox") + e.recorders["classifier"].count("/Classify")
		}
		before := sent()
		for _, tc := range []struct{ method, path, body, want string }{
			{"POST", "/v1/users/me/mailboxes/mb1/messages:import", `{"messages": "Dinner at eight"}`,
				"invalid request body: messages: want a list, got a string"},
			{"POST", "/v1/users/me/mailboxes/mb1/messages:import", `{"messages": [{"raw": "aGk="}, {"raw": "Dinner%"}]}`,
				"invalid request body: messages[1].raw: not valid base64"},
			{"POST", "/v1/users/me/mailboxes", `{"provider": "Dinner"}`,
				"invalid request body: provider: unknown value; want one of PROVIDER_IMPORT, PROVIDER_GMAIL, PROVIDER_IMAP (or IMPORT, GMAIL, IMAP)"},
			{"POST", "/v1/classify", "{\"subject\":\n  \"Dinner\" 5}", "invalid request body: malformed JSON at line 2, column 12"},
			{"GET", "/v1/users/me/mailboxes?pageSize=Dinner", "", "invalid query parameter pageSize: want an integer"},
		} {
			r := request{method: tc.method, path: tc.path, key: e.apiKey}
			if tc.body != "" {
				r.body = strings.NewReader(tc.body)
			}
			resp, body := e.do(t, r)
			st := wantStatus(t, resp, body, http.StatusBadRequest, 3)
			if st.Message != tc.want {
				t.Errorf("%s %s %s: message %q, want %q", tc.method, tc.path, tc.body, st.Message, tc.want)
			}
		}
		if n := sent() - before; n != 0 {
			t.Errorf("the services received %d undecodable requests, want 0", n)
		}
	})
	t.Run("unknown route is 404", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: "/v1/nothing/here", key: e.apiKey})
		wantStatus(t, resp, body, http.StatusNotFound, 5)
	})
	t.Run("Gmail callback needs no API key and hides the code", func(t *testing.T) {
		resp, body := e.do(t, request{method: "GET", path: "/oauth/google/callback?code=secret-code&state=s"})
		// The fake ingest refuses CompleteAuthorization (it guards every
		// method); the page says so without the code.
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if strings.Contains(string(body), "secret-code") {
			t.Errorf("the page shows the code: %s", body)
		}
	})
}

func TestEndpoints(t *testing.T) {
	e := start(t)

	resp, body := e.do(t, request{method: "GET", path: "/healthz"})
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}

	resp, body = e.do(t, request{method: "GET", path: "/openapi.json"})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/openapi.json: %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if _, ok := doc.Paths["/v1/classify"]; !ok {
		t.Errorf("/openapi.json lists no /v1/classify among %d paths", len(doc.Paths))
	}

	// Some traffic to count.
	e.do(t, request{method: "GET", path: "/v1/users/me/messages", key: e.apiKey})
	e.do(t, request{method: "GET", path: "/v1/users/me/messages"})

	resp, body = e.do(t, request{method: "GET", path: "/metrics", key: e.adminKey(t)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	text := string(body)
	for _, want := range []string{
		`mailroom_http_requests_total{code="200",method="GET",route="/v1/{parent=users/*}/messages"} 1`,
		`mailroom_http_requests_total{code="401",method="GET",route="/v1/{parent=users/*}/messages"} 1`,
		`mailroom_http_requests_total{code="200",method="GET",route="/openapi.json"} 1`,
		`mailroom_http_request_duration_seconds_bucket{code="200",method="GET",route="/v1/{parent=users/*}/messages",le="+Inf"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "users/me") {
		t.Error("/metrics has a raw path as a label")
	}

	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"/v1/{parent=users/*}/messages"`) || !strings.Contains(logs, `"status":401`) {
		t.Errorf("no access log line with the route pattern:\n%s", logs)
	}
	if strings.Contains(logs, "users/me") {
		t.Errorf("the access log holds a raw path:\n%s", logs)
	}
}

func TestReadyz(t *testing.T) {
	e := start(t)
	resp, body := e.do(t, request{method: "GET", path: "/readyz"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz with every backend serving: %d %s", resp.StatusCode, body)
	}

	e.stoppers["classifier"]()
	resp, body = e.do(t, request{method: "GET", path: "/readyz"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the classifier stopped: %d %s, want 503", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "classifier") || strings.Contains(string(body), "store") {
		t.Errorf("/readyz body %q should name the classifier alone", body)
	}
	resp, _ = e.do(t, request{method: "GET", path: "/healthz"})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 while the process runs", resp.StatusCode)
	}
}

func TestTracing(t *testing.T) {
	e := start(t)
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, body := e.do(t, request{method: "GET", path: "/v1/users/me/messages", key: e.apiKey,
		header: http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d; body %s", resp.StatusCode, body)
	}
	if got := e.recorders["store"].last(t, "/ListMessages").traceID.String(); got != traceID {
		t.Errorf("the store saw trace %s, want the caller's %s", got, traceID)
	}

	var server bool
	for _, s := range spans.GetSpans() {
		if strings.Contains(s.Name, "users/me") {
			t.Errorf("span %q is named after a raw path", s.Name)
		}
		if s.SpanContext.TraceID().String() != traceID || s.SpanKind != trace.SpanKindServer || !strings.HasPrefix(s.Name, "GET /") {
			continue
		}
		server = true
		if want := "GET /v1/{parent=users/*}/messages"; s.Name != want {
			t.Errorf("span name = %q, want %q", s.Name, want)
		}
		for _, a := range s.Attributes {
			if k := string(a.Key); strings.Contains(k, "authorization") || strings.Contains(k, "header") {
				t.Errorf("span attribute %s = %v", k, a.Value.Emit())
			}
		}
	}
	if !server {
		t.Error("no gateway server span in the caller's trace")
	}
	if !strings.Contains(e.logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Error("the access log line does not carry the trace id")
	}
}
