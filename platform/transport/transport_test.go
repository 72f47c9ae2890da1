package transport_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/transport"
	"mailroom.dev/platform/transport/transporttest"
)

// serve starts a health-only grpcserver with the server side of cfg and
// returns its address.
func serve(t *testing.T, cfg transport.Config) string {
	t.Helper()
	creds, err := cfg.ServerCredentials()
	if err != nil {
		t.Fatalf("ServerCredentials: %v", err)
	}
	s := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Creds: creds, ShutdownTimeout: time.Second})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// check calls grpc.health.v1 Check at addr with the client side of cfg.
func check(t *testing.T, addr string, cfg transport.Config) error {
	t.Helper()
	creds, err := cfg.ClientCredentials()
	if err != nil {
		t.Fatalf("ClientCredentials: %v", err)
	}
	cc, err := grpcconn.Dial(addr, grpcconn.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestMutualTLS(t *testing.T) {
	pki := transporttest.New(t)
	addr := serve(t, pki.Server())

	if err := check(t, addr, pki.Client()); err != nil {
		t.Fatalf("a client with a certificate of the CA: %v", err)
	}
	for name, cfg := range map[string]transport.Config{
		"plaintext":                {},
		"no client certificate":    pki.NoCert(),
		"another CA's certificate": pki.Stranger(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := check(t, addr, cfg); status.Code(err) != codes.Unavailable {
				t.Errorf("Check = %v, want Unavailable (the handshake refused)", err)
			}
		})
	}
}

func TestTLSWithoutClientCerts(t *testing.T) {
	pki := transporttest.New(t)
	server := pki.Server()
	server.ClientCerts = transport.ClientCertsOff
	addr := serve(t, server)
	if err := check(t, addr, pki.NoCert()); err != nil {
		t.Errorf("a TLS client without a certificate: %v", err)
	}
	if err := check(t, addr, transport.Config{}); err == nil {
		t.Error("a plaintext client reached a TLS server")
	}
	// A client that does not trust the server's CA refuses it.
	other := transporttest.New(t)
	if err := check(t, addr, other.NoCert()); status.Code(err) != codes.Unavailable {
		t.Errorf("a client of another CA: %v, want Unavailable", err)
	}
}

func TestPlaintextByDefault(t *testing.T) {
	addr := serve(t, transport.Config{ClientCerts: transport.ClientCertsOff})
	if err := check(t, addr, transport.Config{}); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestServerReloadsCertificate(t *testing.T) {
	defer transport.SetRecheck(0)()
	pki := transporttest.New(t)
	addr := serve(t, pki.Server())
	if err := check(t, addr, pki.Client()); err != nil {
		t.Fatal(err)
	}
	// The files are replaced by those of a new CA (a renewal that also
	// rotates the CA): new connections use them without a restart.
	next := transporttest.New(t)
	for src, dst := range map[string]string{next.CertFile: pki.CertFile, next.KeyFile: pki.KeyFile, next.CAFile: pki.CAFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := check(t, addr, next.Client()); err != nil {
		t.Errorf("after the renewal, a client of the new CA: %v", err)
	}
}

func TestValidate(t *testing.T) {
	pki := transporttest.New(t)
	for name, tc := range map[string]struct {
		cfg  transport.Config
		want string
	}{
		"cert without key":        {transport.Config{CertFile: pki.CertFile}, "both"},
		"require without CA":      {transport.Config{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCerts: "require"}, "MAILROOM_TLS_CA_FILE"},
		"unknown client certs":    {transport.Config{ClientCerts: "maybe"}, "MAILROOM_TLS_CLIENT_CERTS"},
		"missing files":           {transport.Config{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}, "/nonexistent/c.pem"},
		"CA only, on a server":    {transport.Config{CAFile: pki.CAFile}, "MAILROOM_TLS_CERT_FILE"},
		"a key that is not a key": {transport.Config{CertFile: pki.CertFile, KeyFile: pki.CAFile}, "load certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.cfg.ServerCredentials()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ServerCredentials = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	// A client may trust a CA without a certificate of its own.
	if _, err := pki.NoCert().ClientCredentials(); err != nil {
		t.Errorf("ClientCredentials(CA only) = %v", err)
	}
	if got := (transport.Config{}).LogValue().String(); got != "plaintext" {
		t.Errorf("LogValue of the zero config = %q", got)
	}
}
