package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeUsersAPI answers GET /v1/users/me for the keys it knows (the user's name)
// and everything else with a google.rpc.Status 404.
func fakeUsersAPI(t *testing.T, users map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		w.Header().Set("Content-Type", "application/json")
		switch {
		case !ok:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":16,"message":"invalid API key","details":[]}`))
		case r.URL.Path == "/v1/users/me":
			_, _ = w.Write([]byte(`{"name":"users/` + user + `","displayName":"` + user + `","role":"ROLE_USER","someNewField":1}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":5,"message":"mailbox users/` + user + `/mailboxes/x does not exist","details":[]}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// withStdin makes s the process's standard input for the test.
func withStdin(t *testing.T, s string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; f.Close() })
}

func TestLoginContextsAndOverrides(t *testing.T) {
	cfgDir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgDir)
	t.Setenv("MAILROOM", "")
	t.Setenv("MAILROOM_URL", "")
	t.Setenv("MAILROOM_KEY", "")
	srv := fakeUsersAPI(t, map[string]string{"mr_ada": "ada", "mr_bob": "bob"})
	ctx := context.Background()
	var out, errOut bytes.Buffer

	if err := run(ctx, []string{"users", "get"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "mailroom login") {
		t.Errorf("without a login or MAILROOM_KEY: %v", err)
	}
	for _, c := range []struct{ name, key string }{{"ada", "mr_ada"}, {"bob", "mr_bob"}} {
		withStdin(t, c.key+"\n")
		out.Reset()
		if err := run(ctx, []string{"login", "--server", srv.URL + "/", "--name", c.name, "--key-stdin"}, &out, &errOut); err != nil {
			t.Fatalf("login %s: %v", c.name, err)
		}
		if !strings.Contains(out.String(), "users/"+c.name) {
			t.Errorf("login printed %q", out.String())
		}
	}
	withStdin(t, "mr_wrong\n")
	if err := run(ctx, []string{"login", "--server", srv.URL, "--name", "x", "--key-stdin"}, &out, &errOut); err == nil || isUsageError(err) || !strings.Contains(err.Error(), "invalid API key") {
		t.Errorf("login with a wrong key: %v", err)
	}
	path := filepath.Join(cfgDir, "mailroom", "config.yaml")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config: %v %v", err, fi)
	}
	b, _ := os.ReadFile(path)
	if s := string(b); !strings.Contains(s, "current-context: bob") || !strings.Contains(s, "name: ada") || strings.Contains(s, "name: x") {
		t.Errorf("config:\n%s", s)
	}

	get := func(args ...string) string {
		t.Helper()
		out.Reset()
		if err := run(ctx, append([]string{"users", "get", "-o", "json"}, args...), &out, &errOut); err != nil {
			t.Fatalf("users get %v: %v", args, err)
		}
		return out.String()
	}
	if s := get(); !strings.Contains(s, `"name": "users/bob"`) {
		t.Errorf("current context bob: %s", s)
	}
	if s := get("--context", "ada"); !strings.Contains(s, `"name": "users/ada"`) {
		t.Errorf("--context ada: %s", s)
	}
	if err := run(ctx, []string{"config", "use-context", "ada"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if s := get(); !strings.Contains(s, `"name": "users/ada"`) {
		t.Errorf("after use-context ada: %s", s)
	}
	t.Setenv("MAILROOM_KEY", "mr_bob")
	if s := get(); !strings.Contains(s, `"name": "users/bob"`) {
		t.Errorf("MAILROOM_KEY should win over the context: %s", s)
	}
	t.Setenv("MAILROOM", "http://127.0.0.1:1")
	if err := run(ctx, []string{"users", "get"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("MAILROOM should win over the context's server: %v", err)
	}
	t.Setenv("MAILROOM", "")
	t.Setenv("MAILROOM_KEY", "")

	// The server's errors are its message, exit 1; mistakes of the caller exit 2.
	err = run(ctx, []string{"mailboxes", "get", "x"}, &out, &errOut)
	if err == nil || err.Error() != "mailbox users/ada/mailboxes/x does not exist" || isUsageError(err) {
		t.Errorf("a 404: %v (usage error %v)", err, err != nil && isUsageError(err))
	}
	for _, args := range [][]string{
		{"mailboxes", "get"}, {"nope"}, {"mailboxes", "list", "--nope"}, {"mailboxes", "list", "-o", "xml"},
		{"config", "use-context", "nope"}, {"users", "get", "--context", "nope"}, {"mailboxes"}, {"login", "--server", srv.URL},
	} {
		withStdin(t, "")
		if err := run(ctx, args, &out, &errOut); err == nil || !isUsageError(err) {
			t.Errorf("mailroom %v: %v, want a usage error", args, err)
		}
	}

	// Completion of contexts from the config.
	out.Reset()
	if err := run(ctx, []string{"__complete", "config", "use-context", ""}, &out, &errOut); err != nil || !strings.Contains(out.String(), "ada\nbob\n") {
		t.Errorf("completing contexts: %v %q", err, out.String())
	}
	if err := run(ctx, []string{"config", "delete-context", "bob"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"config", "get-contexts"}, &out, &errOut); err != nil || strings.Contains(out.String(), "bob") || !strings.Contains(out.String(), "*        ada") {
		t.Errorf("get-contexts after delete-context bob: %v\n%s", err, out.String())
	}
}
