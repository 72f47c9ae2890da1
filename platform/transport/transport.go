// Package transport secures the gRPC connections between mailroom services:
// plaintext when nothing is configured (as in `mailroom dev`), TLS when a
// certificate is, and mutual TLS when servers also require certificates of
// their clients. Certificates, keys and CAs are read from PEM files (as
// Kubernetes secrets and cert-manager mount them) and read again when the
// files change, so that a renewed certificate needs no restart.
//
// A service embeds Config in its own configuration and builds its server
// with ServerCredentials and its client connections with ClientCredentials.
// One Config serves both sides: in a mutual TLS deployment each service's
// certificate is valid for server and client authentication.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Values of Config.ClientCerts.
const (
	ClientCertsOff     = "off"
	ClientCertsRequire = "require"
)

// Config is the transport security of one process, from the environment.
// The zero Config is plaintext.
type Config struct {
	// CertFile and KeyFile are this process's certificate chain and private
	// key (PEM). A server presents them; a client presents them to servers
	// that ask for a certificate. Set both or neither.
	CertFile string `env:"MAILROOM_TLS_CERT_FILE"`
	KeyFile  string `env:"MAILROOM_TLS_KEY_FILE"`
	// CAFile holds the CA certificates (PEM) that verify peers: the servers
	// that a client calls and, with ClientCerts "require", a server's
	// clients. Empty: clients verify servers against the system roots.
	CAFile string `env:"MAILROOM_TLS_CA_FILE"`
	// ClientCerts is "require" (a server refuses clients without a
	// certificate signed by a CA of CAFile) or "off".
	ClientCerts string `env:"MAILROOM_TLS_CLIENT_CERTS, default=off"`
	// ServerName, when set, is the name that clients expect in server
	// certificates instead of the host of the address they dial.
	ServerName string `env:"MAILROOM_TLS_SERVER_NAME"`
}

// Enabled reports whether connections use TLS: a certificate or a CA is
// configured.
func (c Config) Enabled() bool { return c.CertFile != "" || c.CAFile != "" }

// LogValue implements slog.LogValuer. File names are not secret.
func (c Config) LogValue() slog.Value {
	if !c.Enabled() {
		return slog.StringValue("plaintext")
	}
	mode := "tls"
	if c.requireClientCerts() {
		mode = "mtls"
	}
	return slog.GroupValue(
		slog.String("mode", mode),
		slog.String("cert_file", c.CertFile),
		slog.String("ca_file", c.CAFile),
		slog.String("server_name", c.ServerName),
	)
}

func (c Config) requireClientCerts() bool { return c.ClientCerts == ClientCertsRequire }

// Validate reports a configuration that cannot work on either side.
func (c Config) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("transport: set both MAILROOM_TLS_CERT_FILE and MAILROOM_TLS_KEY_FILE, or neither")
	}
	switch c.ClientCerts {
	case "", ClientCertsOff:
	case ClientCertsRequire:
		if c.CAFile == "" || c.CertFile == "" {
			return errors.New("transport: MAILROOM_TLS_CLIENT_CERTS=require needs MAILROOM_TLS_CA_FILE (to verify clients) and a certificate of this server")
		}
	default:
		return fmt.Errorf("transport: MAILROOM_TLS_CLIENT_CERTS is %q; want %q or %q", c.ClientCerts, ClientCertsRequire, ClientCertsOff)
	}
	return nil
}

// ServerCredentials returns the credentials of a gRPC server: insecure
// (plaintext) when TLS is not enabled, TLS 1.3 with this process's
// certificate otherwise, requiring client certificates when ClientCerts is
// "require". The files are read now, so that a mistake shows at start.
func (c Config) ServerCredentials() (credentials.TransportCredentials, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return insecure.NewCredentials(), nil
	}
	if c.CertFile == "" {
		// A server of a TLS deployment that would serve plaintext: its
		// clients, configured alike, could not talk to it.
		return nil, errors.New("transport: MAILROOM_TLS_CA_FILE is set but MAILROOM_TLS_CERT_FILE is not: a server needs a certificate to serve TLS")
	}
	cert := &keyPair{certFile: c.CertFile, keyFile: c.KeyFile}
	if _, err := cert.get(); err != nil {
		return nil, err
	}
	var cas *caPool
	if c.requireClientCerts() {
		cas = &caPool{file: c.CAFile}
		if _, err := cas.get(); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	// Every handshake takes the current files (checked at most every few
	// seconds): a renewed certificate or CA bundle applies to new
	// connections without a restart.
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		kp, err := cert.get()
		if err != nil {
			return nil, err
		}
		out := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*kp}}
		if cas != nil {
			pool, err := cas.get()
			if err != nil {
				return nil, err
			}
			out.ClientAuth = tls.RequireAndVerifyClientCert
			out.ClientCAs = pool
		}
		return out, nil
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials returns the credentials of gRPC client connections:
// insecure (plaintext) when TLS is not enabled; otherwise TLS 1.3 verifying
// the server against CAFile (or the system roots), presenting this
// process's certificate when the server asks for one.
func (c Config) ClientCredentials() (credentials.TransportCredentials, error) {
	cfg, err := c.ClientTLS()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return insecure.NewCredentials(), nil
	}
	return credentials.NewTLS(cfg), nil
}

// ClientTLS is the TLS configuration of a client connection (gRPC's, and
// NATS's when its URL asks for TLS): nil when TLS is not enabled;
// otherwise TLS 1.3 verifying the server against CAFile (or the system
// roots), presenting this process's certificate when the server asks.
func (c Config) ClientTLS() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := (&caPool{file: c.CAFile}).get()
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert := &keyPair{certFile: c.CertFile, keyFile: c.KeyFile}
		if _, err := cert.get(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.get() }
	}
	return cfg, nil
}

// recheck is how often the files are looked at again (a stat each).
var recheck = 5 * time.Second

// stamp identifies a version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// keyPair is a certificate and key read from files, read again when they
// change. While the files are being replaced (one new, the other not yet),
// loading fails and the previous pair stays in use.
type keyPair struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	stamps    [2]stamp
	checkedAt time.Time
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checkedAt) < recheck {
		return k.cert, nil
	}
	k.checkedAt = time.Now()
	cs, err1 := stampOf(k.certFile)
	ks, err2 := stampOf(k.keyFile)
	if k.cert != nil && err1 == nil && err2 == nil && [2]stamp{cs, ks} == k.stamps {
		return k.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil {
			return k.cert, nil
		}
		// The error names the files, never their content.
		return nil, fmt.Errorf("transport: load certificate %s and key %s: %w", k.certFile, k.keyFile, err)
	}
	k.cert, k.stamps = &cert, [2]stamp{cs, ks}
	return k.cert, nil
}

// caPool is a CA bundle read from a file, read again when it changes.
type caPool struct {
	file string

	mu        sync.Mutex
	pool      *x509.CertPool
	stamp     stamp
	checkedAt time.Time
}

func (c *caPool) get() (*x509.CertPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil && time.Since(c.checkedAt) < recheck {
		return c.pool, nil
	}
	c.checkedAt = time.Now()
	st, err := stampOf(c.file)
	if c.pool != nil && err == nil && st == c.stamp {
		return c.pool, nil
	}
	pool, err := loadPool(c.file)
	if err != nil {
		if c.pool != nil {
			return c.pool, nil
		}
		return nil, err
	}
	c.pool, c.stamp = pool, st
	return pool, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("transport: CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
