// Package testenv gives tests the real parts they run against: an embedded
// NATS server with JetStream, a fresh Postgres database on the server named by
// TEST_DATABASE_URL, a SQLite file, and a unique subject prefix for tests that
// share the NATS server on :4222.
//
// Without TEST_DATABASE_URL, Postgres tests are skipped, unless
// MAILROOM_REQUIRE_POSTGRES=1 (as in CI), where they fail.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS starts an embedded NATS server with JetStream, storing under a
// temporary directory, and returns its URL. It stops when the test ends.
func NATS(t testing.TB) string {
	t.Helper()
	return StartNATS(t).URL
}

// EmbeddedNATS is an embedded NATS server with JetStream that a test can
// stop and start again, on the same port and with the same store.
type EmbeddedNATS struct {
	// URL is the server's client URL.
	URL  string
	t    testing.TB
	opts server.Options
	mu   sync.Mutex
	s    *server.Server
}

// StartNATS starts an embedded NATS server with JetStream, storing under
// a temporary directory. It stops when the test ends.
func StartNATS(t testing.TB) *EmbeddedNATS {
	t.Helper()
	n := &EmbeddedNATS{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	n.Start()
	n.opts.Port = n.s.Addr().(*net.TCPAddr).Port
	n.URL = n.s.ClientURL()
	t.Cleanup(n.Stop)
	return n
}

// Start starts the server (again).
func (n *EmbeddedNATS) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	opts := n.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("testenv: nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("testenv: nats server not ready")
	}
	n.s = s
}

// Stop shuts the server down; Start starts it again.
func (n *EmbeddedNATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

// ExternalNATS returns the URL of the shared NATS server (NATS_TEST_URL,
// default nats://127.0.0.1:4222) and a unique prefix for this test's
// subjects and streams. The test is skipped when the server is not reachable,
// unless MAILROOM_REQUIRE_NATS=1.
func ExternalNATS(t testing.TB) (url, prefix string) {
	t.Helper()
	url = os.Getenv("NATS_TEST_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	host := strings.TrimPrefix(url, "nats://")
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		if os.Getenv("MAILROOM_REQUIRE_NATS") == "1" {
			t.Fatalf("testenv: NATS at %s is required (MAILROOM_REQUIRE_NATS=1): %v", url, err)
		}
		t.Skipf("testenv: no NATS server at %s: %v", url, err)
	}
	c.Close()
	prefix = "t" + RandomID(6) + "."
	t.Cleanup(func() { deleteStreams(url, prefix) })
	return url, prefix
}

// deleteStreams deletes the streams (and key-value buckets) that a test
// made under prefix on the shared server: each work stream reserves its
// byte limit of the server's storage, and what tests leave behind would
// fill it for everyone.
func deleteStreams(url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mark := strings.ToUpper(strings.TrimSuffix(prefix, ".")) + "_"
	names := js.StreamNames(ctx)
	var mine []string
	for name := range names.Name() {
		if strings.HasPrefix(name, mark) || strings.HasPrefix(name, "KV_"+mark) {
			mine = append(mine, name)
		}
	}
	for _, name := range mine {
		_ = js.DeleteStream(ctx, name)
	}
}

// RandomID returns n random bytes, hex encoded.
func RandomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PostgresURL creates a fresh, empty database on the server named by
// TEST_DATABASE_URL, returns its URL, and drops it when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		if os.Getenv("MAILROOM_REQUIRE_POSTGRES") == "1" {
			t.Fatal("testenv: TEST_DATABASE_URL is not set and MAILROOM_REQUIRE_POSTGRES=1")
		}
		t.Skip("testenv: TEST_DATABASE_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: connect TEST_DATABASE_URL: %v", err)
	}
	defer admin.Close(context.Background())
	name := "mailroom_test_" + RandomID(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: parse TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// SQLiteURL returns a sqlite:// URL of a new file in a temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "mailroom.db")
}

// DatabaseURLs returns the backends a contract test runs on: "sqlite" always,
// "postgres" when TEST_DATABASE_URL is set (or required). Each value is a
// function, so that a database is created only for the subtest that runs.
func DatabaseURLs() map[string]func(testing.TB) string {
	return map[string]func(testing.TB) string{
		"sqlite":   SQLiteURL,
		"postgres": PostgresURL,
	}
}

// Buffer is a bytes.Buffer that goroutines may write to at once: the
// destination of a service's logs in a test, read back with String.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Service is what a service's public package builds: served on a listener
// until its context ends, then closed.
type Service interface {
	Run(ctx context.Context, lis net.Listener) error
	Close() error
}

// Serve runs svc on a loopback port and returns its address and a stop
// function, which the test's cleanup calls too: stop ends Run, waits for it
// (an error it returns, or a Run still going 20 s later, fails the test)
// and closes svc. Calling stop again does nothing.
func Serve(t testing.TB, svc Service) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, lis) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return within 20s of shutdown")
			}
			if err := svc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}
