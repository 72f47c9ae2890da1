package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailroom.dev/gen/go/openapi"
)

// TestOpenAPIDocument checks the gateway's OpenAPI document is one a client
// generator can use: every path spelled out by resource (no /v1/{name}), one
// readable, unique operationId per operation, and the API key scheme declared
// and required. TestClients feeds it to a generator.
func TestOpenAPIDocument(t *testing.T) {
	var doc struct {
		Paths               map[string]map[string]struct{ OperationID string }
		SecurityDefinitions map[string]struct{ Type, In, Name string }
		Security            []map[string][]string
	}
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) < 10 {
		t.Fatalf("only %d paths", len(doc.Paths))
	}
	seen := map[string]string{}
	readable := regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
	collapsed := regexp.MustCompile(`\{(name|parent)[^}]*\}|\{[^}]*_\d+\}|\{[^}]*\.[^}]*\}`)
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/v1/") || collapsed.MatchString(path) {
			t.Errorf("path %s does not keep its resource structure", path)
		}
		for method, op := range ops {
			if !readable.MatchString(op.OperationID) {
				t.Errorf("%s %s: operationId %q is not an RPC name", method, path, op.OperationID)
			}
			if prev, dup := seen[op.OperationID]; dup {
				t.Errorf("operationId %s on both %s and %s %s", op.OperationID, prev, method, path)
			}
			seen[op.OperationID] = method + " " + path
		}
	}
	for _, want := range []string{"/v1/users/{user}/apiKeys/{apiKey}", "/v1/users/{user}/messages/{message}", "/v1/users/{user}/syncJobs/{syncJob}"} {
		if _, ok := doc.Paths[want]; !ok {
			t.Errorf("no path %s", want)
		}
	}
	scheme, ok := doc.SecurityDefinitions["bearer"]
	if !ok || scheme.Type != "apiKey" || scheme.In != "header" || scheme.Name != "Authorization" {
		t.Errorf("security scheme bearer = %+v, want an apiKey in the Authorization header", scheme)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("security = %v, want the bearer scheme required everywhere", doc.Security)
	}
}

// TestClients runs the clients' own tests (clients/*/test*), then `mailroom
// dev` and, against it, the Python and TypeScript examples (examples/) over
// the generated gRPC clients (clients/), and the REST walkthrough over the
// client that openapi-typescript generates from the OpenAPI document
// (clients/typescript/openapi). Each must print the mail it imported
// classified as newsletters. Python is Debian's /usr/bin/python3 with
// python3-grpcio and python3-protobuf; TypeScript needs node and npm. Without
// them the test skips, except in CI (CI=true), where it fails.
func TestClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs the clients")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	python := "/usr/bin/python3"
	var missing []string
	if err := exec.Command(python, "-c", "import grpc, google.protobuf").Run(); err != nil {
		missing = append(missing, "Debian's python3 with python3-grpcio and python3-protobuf")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := "missing " + strings.Join(missing, ", ") + " (apt-get install python3-grpcio python3-protobuf nodejs npm)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	ts := filepath.Join(repo, "clients", "typescript")
	if _, err := os.Stat(filepath.Join(ts, "node_modules", ".bin", "tsc")); err != nil {
		runClientCmd(t, ts, nil, "npm", "ci", "--no-audit", "--no-fund")
	}
	// The client, its tests and examples/typescript, compiled into
	// clients/typescript/dist (Node 20 cannot strip types) and the tests run;
	// the OpenAPI client generated and compiled.
	runClientCmd(t, ts, nil, "npm", "test")
	runClientCmd(t, ts, nil, "npm", "run", "openapi")
	pythonPath := "PYTHONPATH=" + filepath.Join(repo, "clients/python/gen") + ":" + filepath.Join(repo, "clients/python/src")
	runClientCmd(t, repo, append(os.Environ(), pythonPath), python, "-m", "unittest", "discover", "-s", "clients/python/tests")

	work, env, gateway := startClientsDev(t)
	key, err := os.ReadFile(filepath.Join(work, ".mailroom", "admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	classified := regexp.MustCompile(`(?m)^  category: newsletters `)
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"python", []string{pythonPath}, []string{python, filepath.Join(repo, "examples/python/list_newsletters.py")}},
		{"typescript", nil, []string{"node", filepath.Join(ts, "dist/examples/typescript/list-newsletters.js")}},
		{"openapi", []string{"MAILROOM=" + gateway, "MAILROOM_KEY=" + strings.TrimSpace(string(key))},
			[]string{"node", filepath.Join(ts, "openapi/out/js/list-newsletters.js")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The gRPC examples read the admin key from .mailroom/admin-key,
			// as they would where `make dev` runs.
			out := runClientCmd(t, work, append(append([]string{}, env...), c.env...), c.args[0], c.args[1:]...)
			if !classified.MatchString(out) {
				t.Errorf("%s printed no mail classified as newsletters:\n%s", c.name, out)
			}
		})
	}
}

// startClientsDev builds the mailroom binary and runs `mailroom dev` in a fresh
// directory on free ports; it returns the directory, the environment naming
// those ports (MAILROOM_*_ADDR, which the clients read too) and the gateway's
// URL. The process is stopped with SIGINT when the test ends.
func startClientsDev(t *testing.T) (work string, env []string, gateway string) {
	t.Helper()
	work = t.TempDir()
	bin := filepath.Join(work, ".bin")
	build(t, bin, "../../cmd/mailroom", "mailroom", "")
	env = withoutVars(os.Environ(), "DATABASE_URL", "NATS_URL", "MAILROOM_BOOTSTRAP_TOKEN", "OPENAI_API_KEY", "OPENAI_API_KEYS",
		"MAILROOM_NATS_PREFIX", "MAILROOM_KEY", "MAILROOM", "PYTHONPATH")
	addrs := map[string]string{}
	for _, v := range []string{"MAILROOM_HTTP_ADDR", "MAILROOM_AUTH_ADDR", "MAILROOM_INGEST_ADDR", "MAILROOM_CLASSIFIER_ADDR", "MAILROOM_STORE_ADDR"} {
		addrs[v] = freeAddr(t)
		env = append(env, v+"="+addrs[v])
	}
	var out syncBuffer
	dev := exec.Command(filepath.Join(bin, "mailroom"), "dev")
	dev.Dir, dev.Env, dev.Stdout, dev.Stderr = work, env, &out, &out
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = dev.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = dev.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mailroom dev printed:\n%s", out.String())
		}
	})
	gateway = "http://" + addrs["MAILROOM_HTTP_ADDR"]
	waitHTTP(t, gateway+"/readyz", 60*time.Second)
	return work, env, gateway
}

// runClientCmd runs a command in dir (with env, or the test's environment when nil)
// and returns what it printed; it fails the test when the command fails.
func runClientCmd(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
