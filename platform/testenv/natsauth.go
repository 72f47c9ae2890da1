package testenv

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSAuth is an embedded NATS server with JetStream whose users and
// subject permissions are those of deploy/k8s (the auth.conf of the NATS
// component's ConfigMap), with made-up passwords.
type NATSAuth struct {
	// Server is the embedded server.
	Server *server.Server
	host   string
	pw     map[string]string
}

// URL is the server's URL with the credentials of user (a service name:
// auth, ingest, classifier, store, gateway).
func (n *NATSAuth) URL(user string) string {
	return "nats://" + url.UserPassword(user, n.pw[user]).String() + "@" + n.host
}

// NATSWithDeployAuth starts an embedded NATS server with JetStream and the
// authorization block of the deployment's NATS configuration, read from
// manifest (deploy/k8s/components/nats/nats.yaml, relative to the test's
// package directory). It stops when the test ends.
func NATSWithDeployAuth(t testing.TB, manifest string) *NATSAuth {
	t.Helper()
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	authConf := configMapEntry(string(raw), "auth.conf")
	if authConf == "" {
		t.Fatalf("testenv: %s has no auth.conf", manifest)
	}
	n := &NATSAuth{pw: map[string]string{}}
	for _, user := range []string{"auth", "ingest", "classifier", "store", "gateway"} {
		n.pw[user] = "pw-" + RandomID(12)
		t.Setenv(strings.ToUpper(user)+"_PASSWORD", n.pw[user])
	}
	dir := t.TempDir()
	conf := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream {\n  store_dir: %q\n}\ninclude ./auth.conf\n", filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(authConf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("testenv: nats config: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("testenv: nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("testenv: nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	n.Server = s
	n.host = s.Addr().String()
	return n
}

// configMapEntry returns the block scalar of key ("auth.conf: |") in a
// ConfigMap manifest, its indentation removed.
func configMapEntry(manifest, key string) string {
	lines := strings.Split(manifest, "\n")
	var out []string
	indent := -1
	for i, l := range lines {
		if indent < 0 {
			if strings.TrimSpace(l) == key+": |" {
				indent = len(l) - len(strings.TrimLeft(l, " ")) + 2
				_ = i
			}
			continue
		}
		if strings.TrimSpace(l) != "" && len(l)-len(strings.TrimLeft(l, " ")) < indent {
			break
		}
		if len(l) >= indent {
			out = append(out, l[indent:])
		} else {
			out = append(out, "")
		}
	}
	return strings.Join(out, "\n")
}
