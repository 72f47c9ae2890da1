// Package transporttest makes throwaway certificates for tests of TLS and
// mutual TLS: a CA, a certificate it signs for 127.0.0.1 and localhost
// (valid for server and client authentication, as a service's is), and a
// certificate of another CA, a stranger. Nothing is committed: every test
// generates its own under t.TempDir().
package transporttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"mailroom.dev/platform/transport"
)

// PKI is a set of PEM files in a temporary directory.
type PKI struct {
	// CAFile is the CA that signs Cert.
	CAFile string
	// CertFile and KeyFile are a certificate for 127.0.0.1 and localhost,
	// signed by the CA, for server and client authentication.
	CertFile, KeyFile string
	// StrangerCertFile and StrangerKeyFile are a certificate of another CA.
	StrangerCertFile, StrangerKeyFile string
}

// New writes a fresh PKI into a temporary directory of t.
func New(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := authority(t, "mailroom test CA")
	other, otherKey := authority(t, "stranger CA")
	p := PKI{
		CAFile:           filepath.Join(dir, "ca.pem"),
		CertFile:         filepath.Join(dir, "cert.pem"),
		KeyFile:          filepath.Join(dir, "key.pem"),
		StrangerCertFile: filepath.Join(dir, "stranger.pem"),
		StrangerKeyFile:  filepath.Join(dir, "stranger-key.pem"),
	}
	writePEM(t, p.CAFile, "CERTIFICATE", ca.Raw)
	leaf(t, "mailroom service", ca, caKey, p.CertFile, p.KeyFile)
	leaf(t, "stranger", other, otherKey, p.StrangerCertFile, p.StrangerKeyFile)
	return p
}

// Server is the transport of a server that requires client certificates.
func (p PKI) Server() transport.Config {
	return transport.Config{CertFile: p.CertFile, KeyFile: p.KeyFile, CAFile: p.CAFile, ClientCerts: transport.ClientCertsRequire}
}

// Client is the transport of a client with a certificate of the CA.
func (p PKI) Client() transport.Config {
	return transport.Config{CertFile: p.CertFile, KeyFile: p.KeyFile, CAFile: p.CAFile}
}

// NoCert is the transport of a client that trusts the CA but has no
// certificate of its own.
func (p PKI) NoCert() transport.Config {
	return transport.Config{CAFile: p.CAFile}
}

// Stranger is the transport of a client whose certificate another CA signed.
func (p PKI) Stranger() transport.Config {
	return transport.Config{CertFile: p.StrangerCertFile, KeyFile: p.StrangerKeyFile, CAFile: p.CAFile}
}

var serial atomic.Int64

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func authority(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func leaf(t testing.TB, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "PRIVATE KEY", pk)
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
