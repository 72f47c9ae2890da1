package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mailroom.dev/gateway"
	"mailroom.dev/platform/config"
)

// The body cap defaults to an import of one message of
// MAILROOM_MAX_MESSAGE_BYTES in base64, plus JSON framing.
func TestBodyLimitFollowsTheMessageLimit(t *testing.T) {
	var cfg gateway.Config
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.BodyLimit(), int64(4*((25<<20+2)/3)+1<<20); got != want {
		t.Errorf("default body limit = %d, want %d (25 MiB in base64 plus 1 MiB)", got, want)
	}

	e := startWith(t, func(c *gateway.Config) { c.MaxBodyBytes, c.MaxMessageBytes = 0, 3<<20 })
	const limit = 4<<20 + 1<<20
	const path = "/v1/users/me/mailboxes/mb1/messages:import"
	// The largest body passes the gateway (the fake ingest then refuses the message).
	body := `{"messages":[{"raw":"aGk="}]}`
	body += strings.Repeat(" ", limit-len(body))
	resp, out := e.do(t, request{method: "POST", path: path, key: e.apiKey, body: strings.NewReader(body)})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a body of exactly %d bytes: %d %s", limit, resp.StatusCode, out)
	}
	resp, out = e.do(t, request{method: "POST", path: path, key: e.apiKey, body: strings.NewReader(body + " ")})
	st := wantStatus(t, resp, out, http.StatusRequestEntityTooLarge, 3)
	if want := fmt.Sprintf("request body exceeds the limit of %d bytes", limit); st.Message != want {
		t.Errorf("message = %q, want %q", st.Message, want)
	}
}

// Request bodies together hold at most MaxBodyBytesInFlight: past it, 503
// with Retry-After, and room comes back when a request ends.
func TestBodyBytesInFlight(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.MaxBodyBytesInFlight = 100 << 10 })
	const path = "/v1/users/me/mailboxes/mb1/messages:import"
	body := func() string {
		b := `{"messages":[{"raw":"aGk="}]}`
		return b + strings.Repeat(" ", 60<<10-len(b))
	}

	// A first request of 60 KiB whose body is still arriving.
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", e.url+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 60 << 10
	req.Header.Set("Authorization", "Bearer "+e.apiKey)
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	b := body()
	if _, err := pw.Write([]byte(b[:1024])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	// A second one does not fit beside it: 60 + 60 > 100 KiB.
	resp, out := e.do(t, request{method: "POST", path: path, key: e.apiKey, body: strings.NewReader(body())})
	st := wantStatus(t, resp, out, http.StatusServiceUnavailable, 14)
	if st.reason() != "OVERLOADED" || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("reason %q, Retry-After %q; want OVERLOADED and 1", st.reason(), resp.Header.Get("Retry-After"))
	}
	// A request without a body is not held up.
	if resp, out := e.do(t, request{method: "GET", path: "/v1/users/me/messages", key: e.apiKey}); resp.StatusCode != http.StatusOK {
		t.Errorf("a GET beside the full budget: %d %s", resp.StatusCode, out)
	}

	// The first one finishes; then there is room again.
	if _, err := pw.Write([]byte(b[1024:])); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the first request: %d", code)
	}
	if resp, out := e.do(t, request{method: "POST", path: path, key: e.apiKey, body: strings.NewReader(body())}); resp.StatusCode != http.StatusOK {
		t.Errorf("after the first ended: %d %s", resp.StatusCode, out)
	}
}

// ReadTimeout bounds the reading of a request, not the call: a body that
// trickles in slower than it is cut off, while a …:watch stream goes on
// long after it.
func TestReadTimeout(t *testing.T) {
	e := startWith(t, func(c *gateway.Config) { c.ReadTimeout = 300 * time.Millisecond })

	// A stream outlives the read timeout.
	resp, out := e.do(t, request{method: "GET", path: "/v1/users/ada/syncJobs/j1:watch", key: e.apiKey})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "SYNC_JOB_STATE_SUCCEEDED") {
		t.Errorf("watch across %s of silence: %d %s", watchPause, resp.StatusCode, out)
	}

	// A body that does not arrive within the read timeout is cut off.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"messages":[{"raw":"aGk="}]}`
	fmt.Fprintf(conn, "POST /v1/users/me/mailboxes/mb1/messages:import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", e.apiKey, len(body), body[:5])
	time.Sleep(600 * time.Millisecond)
	_, _ = conn.Write([]byte(body[5:]))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	slow, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		defer slow.Body.Close()
		if slow.StatusCode == http.StatusOK {
			t.Errorf("a body that took twice the read timeout was accepted")
		}
	}
}

// adminKey returns an API key of an admin.
func (e *env) adminKey(t *testing.T) string {
	t.Helper()
	const key = "mr_test_admin_" + "aaaaaaaaaaaaaaaaaaaa"
	e.auth.AddAPIKey(key, "root", true)
	return key
}

// /metrics answers admins on the public address, and anyone on the
// internal MAILROOM_METRICS_ADDR.
func TestMetricsForAdminsOrInternalAddress(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internal := lis.Addr().String()
	lis.Close()
	e := startWith(t, func(c *gateway.Config) { c.MetricsAddr = internal })

	resp, out := e.do(t, request{method: "GET", path: "/metrics"})
	wantStatus(t, resp, out, http.StatusUnauthorized, 16)
	resp, out = e.do(t, request{method: "GET", path: "/metrics", key: e.apiKey})
	wantStatus(t, resp, out, http.StatusForbidden, 7)
	if resp, out := e.do(t, request{method: "GET", path: "/metrics", key: e.adminKey(t)}); resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "mailroom_http_requests_total") {
		t.Errorf("/metrics as an admin: %d", resp.StatusCode)
	}

	var got *http.Response
	for range 50 { // the internal listener opens beside the public one
		if got, err = http.Get("http://" + internal + "/metrics"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("internal /metrics: %v", err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if got.StatusCode != http.StatusOK || !strings.Contains(string(body), "mailroom_http_requests_total") {
		t.Errorf("internal /metrics: %d", got.StatusCode)
	}
	if r, err := http.Get("http://" + internal + "/v1/users/me/messages"); err == nil {
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("the internal address serves the API: %d", r.StatusCode)
		}
	}
}
