package e2e_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeWalkthrough builds the mailroom binary, runs `mailroom dev` as a
// newcomer would (in a fresh directory, no configuration), and runs the
// README's curl, real-time (watch, webhooks, Gmail push), grpcurl and CLI
// walkthroughs against it with bash, exactly as written, only with the
// loopback ports moved to free ones. Then it stops
// `mailroom dev` with SIGINT, as Ctrl-C does, and expects a clean exit.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	curlScript := walkthrough(t, readme, "curl")
	grpcurlScript := walkthrough(t, readme, "grpcurl")

	work := t.TempDir()
	bin := filepath.Join(work, ".bin")
	build(t, bin, "../../cmd/mailroom", "mailroom", "")
	build(t, bin, "", "grpcurl", "github.com/fullstorydev/grpcurl/cmd/grpcurl")

	// The README names the default ports; give each a free one instead.
	ports := map[string]string{}
	env := os.Environ()
	for _, p := range []struct{ def, envVar string }{
		{"127.0.0.1:8080", "MAILROOM_HTTP_ADDR"},
		{"127.0.0.1:9101", "MAILROOM_AUTH_ADDR"},
		{"127.0.0.1:9102", "MAILROOM_INGEST_ADDR"},
		{"127.0.0.1:9103", "MAILROOM_CLASSIFIER_ADDR"},
		{"127.0.0.1:9104", "MAILROOM_STORE_ADDR"},
		{"127.0.0.1:8025", ""}, // the fake Gmail's delivery door (mailroom dev --fake-gmail)
		{"127.0.0.1:8099", ""}, // the webhook receiver of the webhooks walkthrough
		{"127.0.0.1:1143", ""}, // the IMAP server of mailroom dev --fake-imap
	} {
		ports[p.def] = freeAddr(t)
		if p.envVar != "" {
			env = append(env, p.envVar+"="+ports[p.def])
		}
	}
	// A newcomer's machine: no database, NATS or token configured.
	env = withoutVars(env, "DATABASE_URL", "NATS_URL", "MAILROOM_BOOTSTRAP_TOKEN", "OPENAI_API_KEY", "OPENAI_API_KEYS", "MAILROOM_NATS_PREFIX")

	// As the README's Gmail push and IMAP IDLE walkthroughs have it
	// started: with the fake Gmail and IMAP server, which the other
	// walkthroughs do not use.
	var devOut syncBuffer
	dev := exec.Command(filepath.Join(bin, "mailroom"), "dev", "--fake-gmail", ports["127.0.0.1:8025"], "--fake-imap", ports["127.0.0.1:1143"])
	dev.Dir, dev.Env, dev.Stdout, dev.Stderr = work, env, &devOut, &devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = dev.Process.Kill()
			_ = dev.Wait()
		}
		if t.Failed() {
			t.Logf("mailroom dev printed:\n%s", devOut.String())
		}
	})
	gateway := "http://" + ports["127.0.0.1:8080"]
	waitHTTP(t, gateway+"/readyz", 60*time.Second)
	// The gateway may answer before the banner, copied from the process's
	// stdout by another goroutine, has reached devOut.
	printed := func() bool {
		return strings.Contains(devOut.String(), gateway) && strings.Contains(devOut.String(), "admin-key")
	}
	for deadline := time.Now().Add(5 * time.Second); !printed() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !printed() {
		t.Errorf("mailroom dev should print the gateway address and how to get the admin key; it printed:\n%s", devOut.String())
	}

	out := runScript(t, work, env, curlScript, ports)
	if !regexp.MustCompile(`"category":\s*"newsletters"`).MatchString(out) {
		t.Fatalf("the curl walkthrough did not list the newsletter classified as newsletters; it printed:\n%s", out)
	}
	// The real-time walkthrough continues the curl one (it uses ADA_KEY and
	// the inbox): the watch saw the digest stored and classified.
	// The webhooks, Gmail push and IMAP IDLE walkthroughs continue it: a
	// receiver on this machine verifies a signed delivery (mailroom dev lets
	// webhooks reach loopback); mail delivered at the fake Gmail is pushed,
	// synced and classified; mail appended on the IMAP server is announced
	// to ingest's IDLE, synced and classified.
	out = runScript(t, work, env, curlScript+"\n"+walkthrough(t, readme, "realtime")+"\n"+
		walkthrough(t, readme, "webhooks")+"\n"+walkthrough(t, readme, "gmail-push")+"\n"+walkthrough(t, readme, "imap-idle"), ports)
	if !strings.Contains(out, `"subject":"Rust Digest #90"`) {
		t.Errorf("the real-time walkthrough did not watch the digest arrive; it printed:\n%s", out)
	}
	for _, issue := range []string{"#300", "#301"} { // #301 after the secret was rotated
		if !regexp.MustCompile(`(?m)^verified evt_[0-9a-f]+ Go Time `+issue+` -> newsletters$`).MatchString(out) || strings.Contains(out, "REFUSED") {
			t.Errorf("the webhooks walkthrough's receiver did not verify a signed delivery of Go Time %s; it printed:\n%s", issue, out)
		}
	}
	if !strings.Contains(out, "\"state\":\"WEBHOOK_STATE_ACTIVE\"\n\"state\":\"WEBHOOK_STATE_DISABLED\"\n\"state\":\"WEBHOOK_STATE_ACTIVE\"\n") {
		t.Errorf("the webhooks walkthrough did not pause and re-enable the webhook; it printed:\n%s", out)
	}
	for _, want := range []string{"Gmail connected", `"subject":"Changelog Weekly #512"`, `"category":"newsletters"`, `"watching":true`, `"mode":"SYNC_MODE_INCREMENTAL"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the Gmail push walkthrough did not print %s; it printed:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`"pushes":(\d+)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("the fake Gmail made no push the gateway accepted (%v); the walkthrough printed:\n%s", m, out)
	}
	if !strings.Contains(out, "\"subject\":\"Idle Weekly #1\"\n\"state\":\"MESSAGE_STATE_CLASSIFIED\"\n\"category\":\"newsletters\"") {
		t.Errorf("the IMAP IDLE walkthrough did not list the appended mail classified; it printed:\n%s", out)
	}

	// The admin key never appears in the printed output of mailroom dev.
	key, _ := os.ReadFile(filepath.Join(work, ".mailroom", "admin-key"))
	if k := strings.TrimSpace(string(key)); k == "" || strings.Contains(devOut.String(), k) {
		t.Errorf("admin key missing (%d bytes) or printed by mailroom dev", len(k))
	}

	// The grpcurl walkthrough continues the curl one (it uses ADA_KEY).
	out = runScript(t, work, env, curlScript+"\n"+grpcurlScript, ports)
	for _, want := range []string{"mailroom.store.v1.StoreService", `"name": "users/ada"`, "Dinner on Friday?", `"status": "SERVING"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the grpcurl walkthrough did not print %q; it printed:\n%s", want, out)
		}
	}

	// The CLI walkthrough, with the mailroom just built on PATH and a config
	// directory of its own.
	cliEnv := append(append([]string{}, env...), "XDG_CONFIG_HOME="+filepath.Join(work, "config"))
	out = runScript(t, work, cliEnv, walkthrough(t, readme, "cli"), ports)
	for _, want := range []string{"users/charles", "Engine Weekly #7", "newsletters", `"category": "newsletters"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the CLI walkthrough did not print %q; it printed:\n%s", want, out)
		}
	}

	// Ctrl-C stops it cleanly.
	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("mailroom dev exited with %v after SIGINT", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mailroom dev did not stop within 20s of SIGINT")
	}
	if !strings.Contains(devOut.String(), "stopped") {
		t.Errorf("mailroom dev did not say it stopped")
	}
}

// walkthrough returns the shell block between <!-- walkthrough: name --> and
// <!-- /walkthrough --> in the README.
func walkthrough(t *testing.T, readme []byte, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- walkthrough: " + name + " -->\\s*```sh\\n(.*?)```\\s*<!-- /walkthrough -->")
	m := re.FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README has no %q walkthrough block", name)
	}
	return string(m[1])
}

func runScript(t *testing.T, dir string, env []string, script string, ports map[string]string) string {
	t.Helper()
	for def, addr := range ports {
		script = strings.ReplaceAll(script, def, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	// A walkthrough that fails before it kills what it started in the
	// background must not leave Wait waiting on their output.
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out.String())
	}
	return out.String()
}

// build builds a binary into dir: a package of this workspace by path, or a
// tool pinned in tools/go.mod by import path.
func build(t *testing.T, dir, pkgDir, name, toolPkg string) {
	t.Helper()
	var cmd *exec.Cmd
	out := filepath.Join(dir, name)
	if toolPkg != "" {
		cmd = exec.Command("go", "build", "-o", out, toolPkg)
		cmd.Dir = "../../tools"
		cmd.Env = append(os.Environ(), "GOWORK=off")
	} else {
		cmd = exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = pkgDir
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(t *testing.T, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s", url, within)
}

func withoutVars(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
