package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
)

// cliRun is one run of the mailroom binary: what it printed and its exit status.
type cliRun struct {
	stdout, stderr string
	code           int
}

// cliEnv is a `mailroom dev` on free ports and a mailroom binary to drive
// it with, with a config directory of its own.
type cliEnv struct {
	t       *testing.T
	work    string
	bin     string
	env     []string
	gateway string
}

// startCLIDev builds the mailroom binary and runs `mailroom dev` in a fresh
// directory on free ports (stopped with SIGINT when the test ends).
func startCLIDev(t *testing.T, extra ...string) *cliEnv {
	t.Helper()
	work := t.TempDir()
	binDir := filepath.Join(work, ".bin")
	build(t, binDir, "../../cmd/mailroom", "mailroom", "")
	env := withoutVars(os.Environ(), "DATABASE_URL", "NATS_URL", "MAILROOM_BOOTSTRAP_TOKEN", "OPENAI_API_KEY", "OPENAI_API_KEYS",
		"MAILROOM_NATS_PREFIX", "MAILROOM_KEY", "MAILROOM", "MAILROOM_URL", "NO_COLOR", "XDG_CONFIG_HOME", "EDITOR", "VISUAL")
	env = append(env, "XDG_CONFIG_HOME="+filepath.Join(work, "config"))
	env = append(env, extra...)
	addrs := map[string]string{}
	for _, v := range []string{"MAILROOM_HTTP_ADDR", "MAILROOM_AUTH_ADDR", "MAILROOM_INGEST_ADDR", "MAILROOM_CLASSIFIER_ADDR", "MAILROOM_STORE_ADDR"} {
		addrs[v] = freeAddr(t)
		env = append(env, v+"="+addrs[v])
	}
	var out syncBuffer
	dev := exec.Command(filepath.Join(binDir, "mailroom"), "dev")
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
	gateway := "http://" + addrs["MAILROOM_HTTP_ADDR"]
	waitHTTP(t, gateway+"/readyz", 60*time.Second)
	return &cliEnv{t: t, work: work, bin: filepath.Join(binDir, "mailroom"), env: env, gateway: gateway}
}

// run runs mailroom with args, stdin and extra environment, and returns
// what happened; it never fails the test itself.
func (e *cliEnv) run(stdin string, extraEnv []string, args ...string) cliRun {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Dir, cmd.Env = e.work, append(append([]string{}, e.env...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		e.t.Fatalf("mailroom %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs mailroom and fails the test unless it exits 0; it returns stdout.
func (e *cliEnv) ok(args ...string) string {
	e.t.Helper()
	r := e.run("", nil, args...)
	if r.code != 0 {
		e.t.Fatalf("mailroom %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs mailroom and expects exit status code and stderr containing want.
func (e *cliEnv) fails(code int, want string, args ...string) {
	e.t.Helper()
	r := e.run("", nil, args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		e.t.Errorf("mailroom %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
}

// eventually runs mailroom until stdout matches re (10s at most).
func (e *cliEnv) eventually(re string, args ...string) string {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := e.ok(args...)
		if regexp.MustCompile(re).MatchString(out) {
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("mailroom %s never printed %s; last:\n%s", strings.Join(args, " "), re, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func wantIn(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: no %q in:\n%s", what, w, out)
		}
	}
}

// TestCLI drives every command of the mailroom CLI against `mailroom dev`:
// login and contexts, each noun and verb, output formats, exit codes and
// completion from the server.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs mailroom dev")
	}
	mails := [][]byte{
		[]byte("From: Grace <grace@example.org>\r\nTo: ada@example.com\r\nSubject: Dinner on Friday?\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <dinner@example.org>\r\n\r\nAre you free on Friday?\r\n"),
		[]byte("From: Shop <news@shop.example>\r\nTo: ada@example.com\r\nSubject: Spring sale\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <sale@shop.example>\r\nList-Unsubscribe: <https://shop.example/u>\r\n\r\nEverything half price.\r\n"),
	}
	imapPassword := "imap-pw-cli"
	imapAddr := startIMAP(t, "ada", imapPassword, mails...)
	e := startCLIDev(t, "MAILROOM_IMAP_ALLOW_HOSTS=127.0.0.1", "MAILROOM_SYNC_INTERVAL=0")
	adminKey, err := os.ReadFile(filepath.Join(e.work, ".mailroom", "admin-key"))
	if err != nil {
		t.Fatal(err)
	}

	// login: the key from stdin, checked, stored 0600; no terminal and no --key-stdin is a usage error.
	r := e.run(string(adminKey), nil, "login", "--server", e.gateway, "--name", "admin", "--key-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "users/admin") {
		t.Fatalf("login: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	cfgPath := filepath.Join(e.work, "config", "mailroom", "config.yaml")
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config %s: %v, mode %v; want 0600", cfgPath, err, fi.Mode())
	}
	if r := e.run("", nil, "login", "--server", e.gateway); r.code != 2 || !strings.Contains(r.stderr, "--key-stdin") {
		t.Errorf("login without a terminal: exit %d %q, want 2 naming --key-stdin", r.code, r.stderr)
	}
	if r := e.run("mr_not_a_key\n", nil, "login", "--server", e.gateway, "--name", "bad", "--key-stdin"); r.code != 1 {
		t.Errorf("login with a wrong key: exit %d %q, want 1", r.code, r.stderr)
	}

	// users and keys, as the admin.
	wantIn(t, "users create", e.ok("users", "create", "ada", "--display-name", "Ada Lovelace", "--email", "ada@example.com"), "ada", "Ada Lovelace")
	e.fails(1, "already exists", "users", "create", "ada")
	adaKey := strings.TrimSpace(e.ok("keys", "create", "--user", "ada", "--display-name", "laptop", "-q"))
	if !strings.HasPrefix(adaKey, "mr_") {
		t.Fatalf("keys create -q printed %q", adaKey)
	}
	if r := e.run(adaKey+"\n", nil, "login", "--server", e.gateway, "--name", "ada", "--key-stdin"); r.code != 0 {
		t.Fatalf("login as ada: %d %s", r.code, r.stderr)
	}

	// contexts: ada is current after her login; use-context switches; --context and MAILROOM_KEY override.
	wantIn(t, "get-contexts", e.ok("config", "get-contexts"), "admin", "*        ada")
	wantIn(t, "users get", e.ok("users", "get", "-o", "json"), `"name": "users/ada"`)
	wantIn(t, "--context admin", e.ok("users", "get", "--context", "admin", "-o", "json"), `"name": "users/admin"`)
	e.ok("config", "use-context", "admin")
	wantIn(t, "current-context", e.ok("config", "current-context"), "admin")
	if r := e.run("", []string{"MAILROOM_KEY=" + adaKey}, "users", "get", "-o", "yaml"); !strings.Contains(r.stdout, "name: users/ada") {
		t.Errorf("MAILROOM_KEY should override the context: %q %q", r.stdout, r.stderr)
	}
	if r := e.run("", []string{"MAILROOM=http://" + freeAddr(t)}, "users", "get"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach") {
		t.Errorf("MAILROOM should override the server: exit %d %q", r.code, r.stderr)
	}
	wantIn(t, "users list", e.ok("users", "list"), "admin", "ada", "Ada Lovelace")
	e.ok("users", "create", "temp")
	e.fails(2, "--yes", "users", "delete", "temp")
	e.ok("users", "delete", "temp", "--yes")
	e.fails(1, "", "users", "get", "temp")
	e.fails(2, "no context", "config", "use-context", "nope")
	e.ok("config", "use-context", "ada")

	// keys list and revoke.
	ci := strings.TrimSpace(e.ok("keys", "create", "--display-name", "ci", "-q"))
	keys := e.ok("keys", "list")
	wantIn(t, "keys list", keys, "laptop", "ci")
	m := regexp.MustCompile(`(?m)^(\S+)\s+ci\s`).FindStringSubmatch(keys)
	if m == nil {
		t.Fatalf("keys list has no ci row:\n%s", keys)
	}
	e.ok("keys", "revoke", m[1])
	if r := e.run("", []string{"MAILROOM_KEY=" + ci}, "users", "get"); r.code != 1 {
		t.Errorf("a revoked key still works: exit %d %q", r.code, r.stdout)
	}

	// mailboxes, import, messages.
	wantIn(t, "mailboxes create", e.ok("mailboxes", "create", "inbox", "--display-name", "Imported mail"), "inbox", "IMPORT", "ACTIVE")
	wantIn(t, "mailboxes get -o yaml", e.ok("mailboxes", "get", "inbox", "-o", "yaml"), "name: users/ada/mailboxes/inbox", "provider: PROVIDER_IMPORT")
	newsletter := fmt.Sprintf("From: \"The Gopher Weekly\" <news@gopherweekly.example>\r\nTo: ada@example.com\r\nSubject: Gopher Weekly #412\r\nDate: %s\r\nMessage-ID: <gw412@gopherweekly.example>\r\nList-Id: Gopher Weekly <weekly.gopherweekly.example>\r\nList-Unsubscribe: <https://gopherweekly.example/unsubscribe>\r\n\r\nThis week: generics.\r\n", time.Now().Format(time.RFC1123Z))
	if err := os.WriteFile(filepath.Join(e.work, "newsletter.eml"), []byte(newsletter), 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok("import", "--mailbox", "inbox", "newsletter.eml")
	out := e.eventually(`"category": "newsletters"`, "messages", "list", "--category", "newsletters", "-o", "json")
	id := regexp.MustCompile(`"name": "users/ada/messages/([^"]+)"`).FindStringSubmatch(out)[1]
	table := e.ok("messages", "list")
	wantIn(t, "messages list (table)", table, "ID", "SUBJECT", "Gopher Weekly #412", "newsletters")
	if strings.Contains(table, "\x1b[") {
		t.Errorf("colour written to a pipe:\n%q", table)
	}
	if out := e.ok("messages", "list", "--category", "work", "-o", "json"); strings.Contains(out, "Gopher") {
		t.Errorf("--category work lists the newsletter:\n%s", out)
	}
	if out := e.ok("messages", "list", "--filter", `received_time > "2000-01-01T00:00:00Z"`, "--limit", "1", "-o", "yaml"); !strings.Contains(out, "subject: 'Gopher Weekly #412'") {
		t.Errorf("--filter: %s", out)
	}
	wantIn(t, "messages get", e.ok("messages", "get", id), "Subject:", "Gopher Weekly #412", "Category:", "newsletters")
	e.fails(1, "", "messages", "get", "nope")

	// messages watch prints what is there, then what arrives, from the
	// server's stream.
	watchCtx, stopWatch := context.WithTimeout(context.Background(), time.Minute)
	defer stopWatch()
	watch := exec.CommandContext(watchCtx, e.bin, "messages", "watch", "-o", "json")
	watch.Dir, watch.Env = e.work, e.env
	watchOut, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	var watched bytes.Buffer
	readUntil := func(from int, want ...string) {
		t.Helper()
		buf := make([]byte, 4096)
		for {
			all := true
			for _, w := range want {
				all = all && strings.Contains(watched.String()[from:], w)
			}
			if all {
				return
			}
			n, err := watchOut.Read(buf)
			watched.Write(buf[:n])
			if err != nil {
				t.Fatalf("messages watch ended (%v) without %q:\n%s", err, want, watched.String())
			}
		}
	}
	readUntil(0, "Gopher Weekly #412")
	next := strings.NewReplacer("#412", "#413", "gw412@", "gw413@").Replace(newsletter)
	if err := os.WriteFile(filepath.Join(e.work, "newsletter-413.eml"), []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	from := watched.Len()
	e.ok("import", "--mailbox", "inbox", "newsletter-413.eml")
	readUntil(from, "Gopher Weekly #413", "MESSAGE_STATE_CLASSIFIED")
	stopWatch()
	_ = watch.Wait()

	// classify, stats, usage, limits.
	wantIn(t, "classify", e.ok("classify", "newsletter.eml"), "newsletters", "rules")
	wantIn(t, "stats", e.ok("stats", "-o", "json"), `"category": "newsletters"`)
	wantIn(t, "stats table", e.ok("stats"), "CATEGORY", "newsletters")
	wantIn(t, "usage", e.ok("usage", "-o", "json"), `"classifications"`)
	wantIn(t, "limits", e.ok("limits", "-o", "json"), `"lanes"`)

	// taxonomy get and edit (the editor replaces the YAML with ours).
	wantIn(t, "taxonomy get", e.ok("taxonomy", "get", "-o", "yaml"), "name: newsletters")
	tax := filepath.Join(e.work, "taxonomy.yaml")
	var yamlCats strings.Builder
	for _, c := range []string{"important", "personal", "work", "finance", "shopping", "travel", "newsletters", "promotions", "social", "notifications", "security", "other", "receipts"} {
		fmt.Fprintf(&yamlCats, "- name: %s\n  description: mail about %s\n", c, c)
	}
	if err := os.WriteFile(tax, []byte("categories:\n"+yamlCats.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run("", []string{"EDITOR=cp " + tax}, "taxonomy", "edit"); r.code != 0 || !strings.Contains(r.stdout, "receipts") {
		t.Errorf("taxonomy edit: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	wantIn(t, "taxonomy after edit", e.ok("taxonomy", "get"), "receipts", "mail about receipts")
	if r := e.run("", []string{"EDITOR=true"}, "taxonomy", "edit"); r.code != 0 || !strings.Contains(r.stderr, "unchanged") {
		t.Errorf("taxonomy edit without change: %d %q", r.code, r.stderr)
	}

	// messages correct: the new taxonomy's receipts; a category outside it
	// is the server's error, naming the taxonomy.
	wantIn(t, "messages correct", e.ok("messages", "correct", id, "receipts"), "Gopher Weekly #412", "receipts")
	wantIn(t, "messages get after correct", e.ok("messages", "get", id), "Category:", "receipts")
	e.fails(1, `category "vacation" is not in the user's taxonomy`, "messages", "correct", id, "vacation")

	// dead letters: none here; replaying a missing one is the server's error.
	e.ok("dead-letters", "list")
	e.fails(1, "", "dead-letters", "replay", "nope")

	// IMAP: connect with the password on stdin, sync and watch it to the end.
	host, port, _ := net.SplitHostPort(imapAddr)
	r = e.run(imapPassword+"\n", nil, "mailboxes", "connect", "imap", "work", "--host", host, "--port", port,
		"--username", "ada", "--address", "ada@example.com", "--security", "none", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "IMAP") || strings.Contains(r.stdout+r.stderr, imapPassword) {
		t.Fatalf("connect imap: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = e.run("", nil, "sync", "work", "--watch")
	if r.code != 0 || !strings.Contains(r.stderr, "succeeded") || !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Errorf("sync --watch: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	e.eventually("Dinner on Friday", "messages", "list")
	jobs := e.ok("sync", "list", "-o", "json")
	job := regexp.MustCompile(`"name": "users/ada/syncJobs/([^"]+)"`).FindStringSubmatch(jobs)
	if job == nil {
		t.Fatalf("sync list: %s", jobs)
	}
	wantIn(t, "sync get", e.ok("sync", "get", job[1]), job[1], "work", "SUCCEEDED")
	wantIn(t, "mailboxes list", e.ok("mailboxes", "list"), "inbox", "work", "IMAP")

	// Completion: scripts for each shell, ids from the server.
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out := e.ok("completion", sh); !strings.Contains(out, "mailroom") {
			t.Errorf("completion %s printed %q", sh, out)
		}
	}
	wantIn(t, "completing mailboxes", e.ok("__complete", "mailboxes", "get", ""), "inbox", "work")
	wantIn(t, "completing messages", e.ok("__complete", "messages", "get", ""), id)
	wantIn(t, "completing sync", e.ok("__complete", "sync", ""), "inbox")
	wantIn(t, "completing categories", e.ok("__complete", "messages", "list", "--category", ""), "newsletters")

	// Colour on a terminal (script(1) gives it one), never with NO_COLOR.
	if script, err := exec.LookPath("script"); err == nil {
		for _, noColor := range []bool{false, true} {
			cmd := exec.Command(script, "-qc", e.bin+" mailboxes list", "/dev/null")
			cmd.Dir, cmd.Env = e.work, e.env
			if noColor {
				cmd.Env = append(cmd.Env, "NO_COLOR=1")
			}
			out, err := cmd.CombinedOutput()
			if bold := strings.Contains(string(out), "\x1b[1mID"); err != nil || bold == noColor || !strings.Contains(string(out), "inbox") {
				t.Errorf("mailboxes list on a terminal (NO_COLOR %v): %v, bold header %v:\n%q", noColor, err, bold, out)
			}
		}
	}

	// Usage errors exit 2, server errors 1.
	e.fails(2, "unknown command", "nope")
	e.fails(2, "unknown flag", "mailboxes", "list", "--nope")
	e.fails(2, "wants 1 argument", "mailboxes", "get")
	e.fails(2, "-o", "mailboxes", "list", "-o", "xml")
	e.fails(2, "name a command", "mailboxes")
	e.ok("mailboxes", "delete", "inbox")
	e.fails(1, "does not exist", "mailboxes", "get", "inbox")

	// The older commands still parse their own flags.
	if r := e.run("", nil, "migrate", "-h"); r.code != 2 || !strings.Contains(r.stderr, "-database-url") {
		t.Errorf("migrate -h: exit %d %q", r.code, r.stderr)
	}
}

// TestCLIGmail connects a Gmail mailbox (a fake Google) with `mailroom
// mailboxes connect gmail`, which prints the consent URL and waits until the
// mailbox is ACTIVE, syncs it with --watch, and gives a mailbox whose consent
// never came a new one with `mailboxes reconnect`.
func TestCLIGmail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs mailroom dev")
	}
	fake := fakegmail.New()
	defer fake.Close()
	fake.AddAccount("ada@gmail.example").AddMessages(5)
	e := startCLIDev(t,
		"GOOGLE_OAUTH_CLIENT_ID="+fake.ClientID, "GOOGLE_OAUTH_CLIENT_SECRET="+fake.ClientSecret,
		"MAILROOM_PUBLIC_URL=http://mailroom.invalid", "MAILROOM_GOOGLE_AUTH_URL="+fake.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL="+fake.TokenURL, "MAILROOM_GOOGLE_REVOKE_URL="+fake.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT="+fake.URL, "MAILROOM_GMAIL_QUOTA_PER_MINUTE=1000000",
		"MAILROOM_SYNC_INTERVAL=0", "MAILROOM_RETENTION_DAYS=0")
	adminKey, err := os.ReadFile(filepath.Join(e.work, ".mailroom", "admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	if r := e.run(string(adminKey), nil, "login", "--server", e.gateway, "--name", "admin", "--key-stdin"); r.code != 0 {
		t.Fatalf("login: %d %s", r.code, r.stderr)
	}
	e.ok("users", "create", "ada")
	if r := e.run(strings.TrimSpace(e.ok("keys", "create", "--user", "ada", "-q"))+"\n", nil, "login", "--server", e.gateway, "--name", "ada", "--key-stdin"); r.code != 0 {
		t.Fatalf("login as ada: %d %s", r.code, r.stderr)
	}

	// consent plays the browser: it reads the URL the command prints, lets the
	// fake Google consent and follows its redirect to the gateway's callback.
	consent := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, e.bin, args...)
		cmd.Dir, cmd.Env = e.work, e.env
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var printed strings.Builder
		authURL := ""
		buf := make([]byte, 4096)
		for authURL == "" {
			n, err := stderr.Read(buf)
			printed.Write(buf[:n])
			if m := regexp.MustCompile(`(?m)^\s+(http\S+)\s*$`).FindStringSubmatch(printed.String()); m != nil {
				authURL = m[1]
			}
			if err != nil && authURL == "" {
				t.Fatalf("mailroom %s printed no consent URL: %v\n%s", strings.Join(args, " "), err, printed.String())
			}
		}
		browse(t, e.gateway, authURL, nil)
		go func() { _, _ = io.Copy(io.Discard, stderr) }()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("mailroom %s: %v\n%s", strings.Join(args, " "), err, printed.String())
		}
		return stdout.String()
	}
	wantIn(t, "connect gmail", consent("mailboxes", "connect", "gmail", "gm", "--no-browser"), "gm", "GMAIL", "ACTIVE", "ada@gmail.example")

	r := e.run("", nil, "sync", "gm", "--watch", "--max", "50")
	if r.code != 0 || !strings.Contains(r.stderr, "succeeded") || !strings.Contains(r.stderr, "5 listed") {
		t.Errorf("sync --watch: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	wantIn(t, "sync list", e.ok("sync", "list"), "gm", "SUCCEEDED")
	e.eventually(`(?m)^\S+\s+\S+ \S+\s+.*$\n(.*\n){4}`, "messages", "list", "--filter", `received_time > "2000-01-01T00:00:00Z"`)

	// A consent that never comes: connect gives up at --timeout; reconnect starts again.
	if r := e.run("", nil, "mailboxes", "connect", "gmail", "gm2", "--no-browser", "--timeout", "1s"); r.code != 1 || !strings.Contains(r.stderr, "PENDING_AUTHORIZATION") {
		t.Errorf("connect gmail without consent: exit %d %q", r.code, r.stderr)
	}
	wantIn(t, "reconnect", consent("mailboxes", "reconnect", "gm2", "--no-browser"), "gm2", "ACTIVE")
}
