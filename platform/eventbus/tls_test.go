package eventbus_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/transport"
	"mailroom.dev/platform/transport/transporttest"
)

// TestNATSOverTLSWithTheTransportsPKI: with NATS_URL tls:// and TLS set
// for gRPC (MAILROOM_TLS_*), a connection verifies the NATS server against
// the transport's CA and presents its certificate; a server that requires
// client certificates (verify) refuses a client without one, and one whose
// certificate another CA signed; a nats:// URL asks for no TLS.
func TestNATSOverTLSWithTheTransportsPKI(t *testing.T) {
	pki := transporttest.New(t)
	serverTLS, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.CertFile, KeyFile: pki.KeyFile, CaFile: pki.CAFile, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLSConfig: serverTLS, TLSVerify: true, TLSTimeout: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	hostPort := s.Addr().String()
	plain, secure := "nats://"+hostPort, "tls://"+hostPort

	if opts, err := eventbus.TLSOptions(plain, pki.Client()); err != nil || len(opts) != 0 {
		t.Fatalf("nats:// URL: %d options, %v; want none", len(opts), err)
	}
	connect := func(url string, tc transport.Config) error {
		opts, err := eventbus.TLSOptions(url, tc)
		if err != nil {
			return err
		}
		nc, _, err := eventbus.Connect(url, "tls-test", opts...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	if err := connect(secure, pki.Client()); err != nil {
		t.Fatalf("tls:// with the transport's certificate and CA: %v", err)
	}
	if err := connect(secure+",tls://127.0.0.1:1", pki.Client()); err != nil {
		t.Fatalf("a comma list with tls:// servers: %v", err)
	}
	for name, tc := range map[string]transport.Config{
		"no certificate":    pki.NoCert(),
		"another CA's":      pki.Stranger(),
		"plaintext, no TLS": {},
	} {
		url := secure
		if name == "plaintext, no TLS" {
			url = plain
		}
		if err := connect(url, tc); err == nil {
			t.Errorf("%s: connected to a server that requires a certificate of its CA", name)
		}
	}
	// The client verifies the server: a CA the server's certificate is not
	// from fails the handshake.
	other := transporttest.New(t)
	if err := connect(secure, transport.Config{CertFile: pki.CertFile, KeyFile: pki.KeyFile, CAFile: other.CAFile}); err == nil {
		t.Error("connected to a server whose certificate the client's CA did not sign")
	}
}
