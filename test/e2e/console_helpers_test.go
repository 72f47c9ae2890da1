package e2e_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The browser tests drive Debian's chromium with playwright-core (from
// console/node_modules, installed by `npm ci` in console/) through a
// Node script in test/console, against the suite started in-process.

// chromiumPath is where Debian installs chromium.
const chromiumPath = "/usr/bin/chromium"

// browserTools returns node's path, or skips the test when node, chromium
// or console/node_modules is missing — unless MAILROOM_REQUIRE_CHROMIUM=1,
// then it fails (CI sets it).
func browserTools(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("MAILROOM_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("MAILROOM_REQUIRE_CHROMIUM=1 but %s", what)
		}
		t.Skipf("skipping the browser test: %s (set MAILROOM_REQUIRE_CHROMIUM=1 to make this a failure)", what)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(chromiumPath + " is absent (apt-get install chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), "console", "node_modules", "playwright-core")); err != nil {
		missing("console/node_modules has no playwright-core (run: cd console && npm ci)")
	}
	return node
}

// repoRoot is the repository's top directory (the tests run in test/e2e).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// screenshotDir is where the browser tests save their screenshots:
// $MAILROOM_SCREENSHOTS, or a new temporary directory that is kept after
// the test (its path is logged) so that a reviewer can look.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MAILROOM_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "mailroom-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, _ = filepath.Abs(dir)
	t.Logf("screenshots in %s", dir)
	return dir
}

// runBrowserScript runs `node test/console/<script>` with env added to the
// test's environment, logging its output line by line, and fails the test
// when it exits non-zero or outlives timeout.
func runBrowserScript(t *testing.T, node, script string, env map[string]string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("test", "console", script))
	cmd.Dir = repoRoot(t)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Logf("%s: %s", script, sc.Text())
		}
	}()
	err := cmd.Run()
	_ = pw.Close()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s", script, timeout)
	}
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// secretsIn returns which of secrets occur in text (for the logs check).
func secretsIn(text string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			found = append(found, s[:min(len(s), 8)]+"…")
		}
	}
	return found
}
