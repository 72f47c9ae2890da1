package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DovecotBinary is where Debian's dovecot-imapd puts Dovecot.
const DovecotBinary = "/usr/sbin/dovecot"

// Dovecot is a private Dovecot IMAP server that a test started as a child
// process: plain IMAP (no TLS) on a loopback port, one user with the
// password Password, mail in a Maildir under a temporary directory.
type Dovecot struct {
	// Addr is host:port of its IMAP listener (127.0.0.1).
	Addr string
	// User and Password are the test user's login.
	User, Password string
	// Dir is the directory holding its configuration, state, log and mail.
	Dir string
}

// Log returns what Dovecot logged so far.
func (d *Dovecot) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
	return string(b)
}

// StartDovecot starts a private Dovecot (DovecotBinary) with its own
// configuration in a temporary directory, for user with password; it
// stops when the test ends. The test is skipped when Dovecot is not
// installed, unless MAILROOM_REQUIRE_DOVECOT=1, where it fails.
//
// Dovecot refuses to run mail processes as root: as root, its internal
// processes run as the users dovecot and dovenull (the Debian package's)
// and the mail user's as nobody, who own what they write; as another user,
// everything runs as that user.
func StartDovecot(t testing.TB, username, password string) *Dovecot {
	t.Helper()
	if _, err := os.Stat(DovecotBinary); err != nil {
		if os.Getenv("MAILROOM_REQUIRE_DOVECOT") == "1" {
			t.Fatalf("testenv: Dovecot is required (MAILROOM_REQUIRE_DOVECOT=1): %v", err)
		}
		t.Skipf("testenv: no Dovecot (apt-get install dovecot-imapd): %v", err)
	}
	// Not t.TempDir: its parents are private to root, and Dovecot's
	// unprivileged processes must reach their sockets and the mail.
	dir, err := os.MkdirTemp("", "mailroom-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	internal, login, mailUser := "", "", ""
	if os.Geteuid() == 0 {
		internal, login, mailUser = "dovecot", "dovenull", "nobody"
	} else {
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		internal, login, mailUser = me.Username, me.Username, me.Username
	}
	mu, err := user.Lookup(mailUser)
	if err != nil {
		t.Fatalf("testenv: dovecot mail user %s: %v", mailUser, err)
	}
	uid, _ := strconv.Atoi(mu.Uid)
	gid, _ := strconv.Atoi(mu.Gid)

	mailDir := filepath.Join(dir, "mail")
	for _, d := range []string{"base", "state", mailDir} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(mailDir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// The passwd-file: read by the auth processes (the internal user).
	passwd := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", username, password, uid, gid, filepath.Join(mailDir, username))
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	conf := fmt.Sprintf(`# A private Dovecot for a test.
base_dir = %[1]s/base
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
instance_name = mailroom-test-%[2]d
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = %[3]s
default_internal_group = %[3]s
default_login_user = %[4]s
first_valid_uid = %[5]d
last_valid_uid = 0
first_valid_gid = %[6]d
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/users
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
protocol imap {
  mail_max_userip_connections = 100
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
`, dir, port, internal, login, uid, gid)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(DovecotBinary, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Its own process group (killed whole if it does not stop), and
	// stopped should the test process die without its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start dovecot: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	d := &Dovecot{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), User: username, Password: password, Dir: dir}

	// Ready when it greets.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("testenv: dovecot exited: %v\n%s", err, d.Log())
		default:
		}
		if c, err := net.DialTimeout("tcp", d.Addr, time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "* OK") {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: dovecot did not greet on %s within 30s\n%s", d.Addr, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
