package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/cmd/mailroom/suite"
	"mailroom.dev/platform/testenv"
)

// env is a running suite and a REST client for it.
type env struct {
	t     *testing.T
	suite *suite.Suite
	url   string
	admin string
	extra http.Header
	// dir is the suite's state directory; logs every service's log lines.
	dir  string
	logs *syncBuffer
}

// options choose the suite's backends.
type options struct {
	databaseURL string // "" → SQLite under the test's temp dir
	natsURL     string // "" → the suite's embedded server
	natsPrefix  string
	extra       map[string]string
}

// start runs the whole suite in-process on loopback :0 ports.
func start(t *testing.T, o options) *env {
	t.Helper()
	vars := map[string]string{
		"MAILROOM_HTTP_ADDR":       "127.0.0.1:0",
		"MAILROOM_AUTH_ADDR":       "127.0.0.1:0",
		"MAILROOM_INGEST_ADDR":     "127.0.0.1:0",
		"MAILROOM_CLASSIFIER_ADDR": "127.0.0.1:0",
		"MAILROOM_STORE_ADDR":      "127.0.0.1:0",
		"MAILROOM_BOOTSTRAP_TOKEN": "e2e-admin-" + testenv.RandomID(16),
		"DATABASE_URL":             o.databaseURL,
		"NATS_URL":                 o.natsURL,
		"MAILROOM_NATS_PREFIX":     o.natsPrefix,
	}
	for k, v := range o.extra {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	logger, logs := testLogger(t)
	s, err := suite.Start(ctx, suite.Config{Dir: dir, Env: envconfig.MapLookuper(vars), Logger: logger, Telemetry: tel})
	if err != nil {
		cancel()
		t.Fatalf("suite.Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Wait(); err != nil {
			t.Errorf("suite stopped with %v", err)
		}
	})
	e := &env{t: t, suite: s, url: s.HTTPURL, admin: s.AdminKey, dir: dir, logs: logs}
	e.waitReady()
	return e
}

// header sets a header on every later request; an empty value removes it.
func (e *env) header(key, value string) {
	if e.extra == nil {
		e.extra = http.Header{}
	}
	if value == "" {
		e.extra.Del(key)
		return
	}
	e.extra.Set(key, value)
}

func (e *env) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(e.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("gateway not ready after 20s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends a JSON request with key as the bearer credential and returns
// the status and the decoded JSON body.
func (e *env) call(method, path, key string, body any) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.extra {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				e.t.Fatalf("%s %s: status %d, body is not JSON: %.200s", method, path, resp.StatusCode, raw)
			}
			out = map[string]any{"_text": string(raw)}
		}
	}
	return resp.StatusCode, out
}

// must is call that fails the test unless the status is want.
func (e *env) must(want int, method, path, key string, body any) map[string]any {
	e.t.Helper()
	got, out := e.call(method, path, key, body)
	if got != want {
		e.t.Fatalf("%s %s: status %d, want %d: %v", method, path, got, want, out)
	}
	return out
}

// user creates a user with an API key of its own and returns the key.
func (e *env) user(id string) string {
	e.t.Helper()
	e.must(200, "POST", "/v1/users?userId="+id, e.admin, map[string]any{"displayName": id})
	k := e.must(200, "POST", "/v1/users/"+id+"/apiKeys", e.admin, map[string]any{"displayName": "e2e"})
	key, _ := k["key"].(string)
	if key == "" {
		e.t.Fatalf("CreateApiKey returned no key: %v", k)
	}
	return key
}

// mailbox creates an IMPORT mailbox and returns its resource name.
func (e *env) mailbox(user, key, id string) string {
	e.t.Helper()
	mb := e.must(200, "POST", "/v1/users/"+user+"/mailboxes?mailboxId="+id, key, map[string]any{"provider": "IMPORT", "displayName": id})
	name, _ := mb["name"].(string)
	if name != "users/"+user+"/mailboxes/"+id {
		e.t.Fatalf("mailbox name = %q", name)
	}
	return name
}

// dateLine is the Date header of a fixture.
var dateLine = regexp.MustCompile(`(?m)^Date: ([^\r\n]*)`)

// fixturesWritten is a moment just after the fixtures' dates.
var fixturesWritten = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// fixtureShift is how far redate moves a fixture's date: taken once, so
// that the same fixture gives the same bytes all through a test run (a
// re-import is the same mail, not another one dated a second later).
var fixtureShift = time.Since(fixturesWritten).Truncate(time.Second)

// redate moves a fixture's Date header by as much as now is past
// fixturesWritten: the fixtures keep their order and spacing and stay
// inside the store's retention however far the calendar moves.
func redate(t *testing.T, b []byte) []byte {
	t.Helper()
	m := dateLine.FindSubmatch(b)
	if m == nil {
		return b
	}
	d, err := mail.ParseDate(string(m[1]))
	if err != nil {
		t.Fatalf("fixture Date %q: %v", m[1], err)
	}
	moved := d.Add(fixtureShift).Format(time.RFC1123Z)
	return dateLine.ReplaceAll(b, []byte("Date: "+moved))
}

func raw(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	b = redate(t, b)
	// Mail travels with CRLF line ends.
	b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	return base64.StdEncoding.EncodeToString(b)
}

// classified polls the user's messages until n of them are classified.
func (e *env) classified(key, user string, n int) []map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := e.must(200, "GET", "/v1/users/"+user+"/messages?pageSize=100", key, nil)
		msgs, _ := out["messages"].([]any)
		var done []map[string]any
		for _, m := range msgs {
			mm := m.(map[string]any)
			if c, ok := mm["classification"].(map[string]any); ok && c["category"] != nil && c["category"] != "" {
				done = append(done, mm)
			}
		}
		if len(done) >= n {
			return done
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after 20s %d of %d messages are classified: %v", len(done), n, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
