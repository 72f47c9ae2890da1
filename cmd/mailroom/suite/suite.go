// Package suite starts every mailroom service in one process: auth, ingest,
// classifier and store each on its own loopback gRPC listener, the REST
// gateway on HTTP, talking gRPC and JetStream to each other exactly as the
// separate binaries do. `mailroom dev` and the end-to-end tests both use it.
//
// Each service's configuration is read from the environment as its own binary
// reads it (so OPENAI_API_KEY, MAILROOM_STORE_BODIES … work here too), then
// the suite overrides what wires the services together: their addresses, the
// NATS URL and the database URL.
package suite

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/sethvargo/go-envconfig"
	"golang.org/x/sync/errgroup"

	"mailroom.dev/gateway"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/services/auth"
	"mailroom.dev/services/classifier"
	"mailroom.dev/services/ingest"
	"mailroom.dev/services/store"
)

// Config configures the suite. Zero values take the defaults of `make dev`.
type Config struct {
	// Dir holds the embedded NATS store, the SQLite file and the admin key
	// (default ./.mailroom).
	Dir string
	// Env looks up the services' environment; nil is the process environment.
	Env envconfig.Lookuper
	// Logger receives every service's logs.
	Logger *slog.Logger
	// Telemetry, when set, gives each service its own tracer and meter
	// providers, and the gateway's /metrics serves every service's metrics
	// (telemetry.SetupSuite with the services' names); nil leaves every
	// service on the global providers.
	Telemetry *telemetry.Suite
}

// Suite is a running suite.
type Suite struct {
	// HTTPURL is the gateway's base URL, http://host:port.
	HTTPURL string
	// GRPC maps each service name to its gRPC address.
	GRPC map[string]string
	// NATSURL is the NATS server in use (embedded unless NATS_URL is set).
	NATSURL string
	// Embedded is true when the suite runs its own NATS server.
	Embedded bool
	// DatabaseURL is the database in use.
	DatabaseURL string
	// AdminKey is the bootstrap admin API key.
	AdminKey string
	// AdminKeyFile is where AdminKey was written, when the suite made it up.
	AdminKeyFile string
	// ServiceKeys are the services' keys, made up at start, by service
	// name (for tests that call as a service).
	ServiceKeys map[string]string
	// GatewayConfig is the configuration of the suite's gateway, so that a
	// test can start another gateway (or a new one after stopping its own)
	// in front of the same services.
	GatewayConfig gateway.Config
	// logger is what the services log to.
	logger *slog.Logger

	group  *errgroup.Group
	cancel context.CancelFunc
	nats   *server.Server
	closer []func() error
}

// services in start order: auth first, since the others verify callers with its keys.
var services = []string{"auth", "ingest", "classifier", "store"}

// Services are the names of every service the suite runs, the gateway
// last: the names telemetry.SetupSuite takes.
var Services = append(append([]string(nil), services...), "gateway")

// Start starts the suite and returns once every listener is open. The suite
// runs until ctx is done or Close is called; Wait returns when it has stopped.
func Start(ctx context.Context, cfg Config) (_ *Suite, err error) {
	if cfg.Dir == "" {
		cfg.Dir = ".mailroom"
	}
	if cfg.Env == nil {
		cfg.Env = envconfig.OsLookuper()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := prepareDir(cfg.Dir, cfg.Logger); err != nil {
		return nil, err
	}
	env := func(key, def string) string {
		if v, ok := cfg.Env.Lookup(key); ok && v != "" {
			return v
		}
		return def
	}
	s := &Suite{GRPC: map[string]string{}}
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	// Listeners first: every address is known before any service starts.
	// They are the services' own defaults (grpcconn.Addrs, the gateway's
	// Config) unless the environment moves them.
	var addrs grpcconn.Addrs
	var listen gateway.Config
	if err := errors.Join(config.Load(ctx, &addrs, cfg.Env), config.Load(ctx, &listen, cfg.Env)); err != nil {
		return nil, fmt.Errorf("suite: %w", err)
	}
	lis := map[string]net.Listener{}
	for _, name := range services {
		l, err := net.Listen("tcp", addrs.Of(name))
		if err != nil {
			return nil, fmt.Errorf("suite: %s listener: %w (set MAILROOM_%s_ADDR to move it)", name, err, strings.ToUpper(name))
		}
		s.closer = append(s.closer, l.Close)
		lis[name] = l
		s.GRPC[name] = l.Addr().String()
	}
	httpLis, err := net.Listen("tcp", listen.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("suite: gateway listener: %w (set MAILROOM_HTTP_ADDR to move it)", err)
	}
	s.closer = append(s.closer, httpLis.Close)
	s.HTTPURL = "http://" + httpLis.Addr().String()

	s.NATSURL = env("NATS_URL", "")
	if s.NATSURL == "" {
		ns, err := embeddedNATS(filepath.Join(cfg.Dir, "nats"))
		if err != nil {
			return nil, err
		}
		s.nats, s.Embedded, s.NATSURL = ns, true, ns.ClientURL()
	}
	s.DatabaseURL = env("DATABASE_URL", "sqlite://"+filepath.Join(cfg.Dir, "mailroom.db"))
	s.AdminKey = env("MAILROOM_BOOTSTRAP_TOKEN", "")
	if s.AdminKey == "" {
		s.AdminKeyFile = filepath.Join(cfg.Dir, "admin-key")
		if s.AdminKey, err = keptSecret(s.AdminKeyFile, randomKey); err != nil {
			return nil, err
		}
	}

	// The vault's key-encryption key: MAILROOM_VAULT_KEYS, or one made up
	// and kept in Dir (it must outlive restarts: the signing keys and the
	// mailbox credentials are sealed under it).
	vaultKeys := env("MAILROOM_VAULT_KEYS", "")
	if vaultKeys == "" {
		if vaultKeys, err = keptSecret(filepath.Join(cfg.Dir, "vault-key"), func() string { return auth.NewVaultKey("dev") }); err != nil {
			return nil, err
		}
	}

	over := envconfig.MapLookuper(map[string]string{
		"MAILROOM_VAULT_KEYS":      vaultKeys,
		"NATS_URL":                 s.NATSURL,
		"DATABASE_URL":             s.DatabaseURL,
		"MAILROOM_BOOTSTRAP_TOKEN": s.AdminKey,
		"MAILROOM_AUTH_ADDR":       s.GRPC["auth"],
		"MAILROOM_INGEST_ADDR":     s.GRPC["ingest"],
		"MAILROOM_CLASSIFIER_ADDR": s.GRPC["classifier"],
		"MAILROOM_STORE_ADDR":      s.GRPC["store"],
		"MAILROOM_HTTP_ADDR":       httpLis.Addr().String(),
		// Google sends the browser back to this gateway unless told otherwise.
		"MAILROOM_PUBLIC_URL": env("MAILROOM_PUBLIC_URL", s.HTTPURL),
		// grpcurl needs no .proto files against the development suite (the
		// README's walkthrough); the service binaries leave it off.
		"MAILROOM_GRPC_REFLECTION": env("MAILROOM_GRPC_REFLECTION", "on"),
	})
	// Each service calls the others on its own behalf with a service key of
	// its own; auth learns them all. They are made up afresh at every start.
	serviceKeys := map[string]string{}
	var keyList []string
	for _, name := range []string{"ingest", "classifier", "store", "gateway"} {
		serviceKeys[name] = randomKey()
		keyList = append(keyList, name+":"+serviceKeys[name])
	}
	s.ServiceKeys = serviceKeys
	process := func(name string, target any) error {
		own := envconfig.MapLookuper(map[string]string{
			"MAILROOM_SERVICE_KEY":  serviceKeys[name],
			"MAILROOM_SERVICE_KEYS": strings.Join(keyList, ","),
		})
		// NATS_URL_<NAME> gives one service a NATS URL of its own (its
		// NATS user, as in deploy/k8s).
		perService := map[string]string{}
		if u := env("NATS_URL_"+strings.ToUpper(name), ""); u != "" {
			perService["NATS_URL"] = u
		}
		if err := config.Load(ctx, target, envconfig.MultiLookuper(envconfig.MapLookuper(perService), over, own, cfg.Env)); err != nil {
			return fmt.Errorf("suite: %s %w", name, err)
		}
		return nil
	}

	var (
		authCfg       auth.Config
		ingestCfg     ingest.Config
		classifierCfg classifier.Config
		storeCfg      store.Config
		gatewayCfg    gateway.Config
	)
	for name, target := range map[string]any{"auth": &authCfg, "ingest": &ingestCfg, "classifier": &classifierCfg, "store": &storeCfg, "gateway": &gatewayCfg} {
		if err := process(name, target); err != nil {
			return nil, err
		}
	}

	if tel := cfg.Telemetry; tel != nil {
		authCfg.Telemetry = tel.Providers("auth")
		ingestCfg.Telemetry = tel.Providers("ingest")
		classifierCfg.Telemetry = tel.Providers("classifier")
		storeCfg.Telemetry = tel.Providers("store")
		gatewayCfg.Telemetry = tel.Providers("gateway")
		gatewayCfg.Telemetry.Registerer = tel.Registerer("gateway")
		gatewayCfg.Telemetry.Gatherer = tel.Gatherer()
	}

	s.GatewayConfig, s.logger = gatewayCfg, cfg.Logger
	log := func(name string) *slog.Logger { return cfg.Logger.With("service", name) }
	runners := map[string]func(context.Context, net.Listener) error{}
	authSvc, err := auth.New(ctx, authCfg, log("auth"))
	if err != nil {
		return nil, fmt.Errorf("suite: auth: %w", err)
	}
	s.closer = append(s.closer, authSvc.Close)
	runners["auth"] = authSvc.Run
	ingestSvc, err := ingest.New(ctx, ingestCfg, log("ingest"))
	if err != nil {
		return nil, fmt.Errorf("suite: ingest: %w", err)
	}
	s.closer = append(s.closer, ingestSvc.Close)
	runners["ingest"] = ingestSvc.Run
	classifierSvc, err := classifier.New(ctx, classifierCfg, log("classifier"))
	if err != nil {
		return nil, fmt.Errorf("suite: classifier: %w", err)
	}
	s.closer = append(s.closer, classifierSvc.Close)
	runners["classifier"] = classifierSvc.Run
	storeSvc, err := store.New(ctx, storeCfg, log("store"))
	if err != nil {
		return nil, fmt.Errorf("suite: store: %w", err)
	}
	s.closer = append(s.closer, storeSvc.Close)
	runners["store"] = storeSvc.Run
	gw, err := gateway.New(ctx, gatewayCfg, log("gateway"))
	if err != nil {
		return nil, fmt.Errorf("suite: gateway: %w", err)
	}
	s.closer = append(s.closer, gw.Close)

	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	g, gctx := errgroup.WithContext(runCtx)
	for _, name := range services {
		run, l := runners[name], lis[name]
		g.Go(func() error {
			if err := run(gctx, l); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := gw.Run(gctx, httpLis); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		return nil
	})
	s.group = g
	return s, nil
}

// GatewayLogger returns the logger of the suite's gateway, for another
// gateway that a test starts.
func (s *Suite) GatewayLogger() *slog.Logger { return s.logger.With("service", "gateway") }

// Wait blocks until every service has stopped, then releases what the suite
// holds, and returns the first error of a service that failed.
func (s *Suite) Wait() error {
	err := s.group.Wait()
	s.release()
	return err
}

// Close stops the suite and waits for it.
func (s *Suite) Close() error {
	s.cancel()
	return s.Wait()
}

func (s *Suite) release() {
	// Services close before NATS stops, in the reverse order of their start.
	for i := len(s.closer) - 1; i >= 0; i-- {
		_ = s.closer[i]()
	}
	s.closer = nil
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
		s.nats = nil
	}
}

func embeddedNATS(dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "mailroom-dev",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("suite: embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("suite: embedded nats did not start within 10s")
	}
	return ns, nil
}

// keptSecret reads the secret kept in path, or makes one with newSecret and
// keeps it there (mode 0600), so that restarts of `mailroom dev` keep the
// same admin key and vault key.
func keptSecret(path string, newSecret func() string) (string, error) {
	if err := ownerOnly(path, "600"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("suite: %w", err)
	}
	secret := newSecret()
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("suite: %w", err)
	}
	return secret, nil
}

// prepareDir makes dir, which holds the admin key, the vault key and the
// data, accessible by its owner only: created 0700, or narrowed to 0700
// when it exists with more (it is the suite's own directory; the key files
// in it are refused, not fixed, when others can read them: see keptSecret).
func prepareDir(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("suite: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("suite: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("suite: %s has permissions %04o and cannot be narrowed to 0700: %w", dir, perm, err)
		}
		logger.Warn("the suite's directory was open to other users; narrowed to 0700", "dir", dir, "was", fmt.Sprintf("%04o", perm))
	}
	return nil
}

// ownerOnly refuses, as ssh does with a private key, a file that holds
// secrets and that its owner's group or others may read or write; chmod
// is the mode to fix it with. A missing path is
// os.ErrNotExist.
func ownerOnly(path, chmod string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("suite: %s has permissions %04o, which let other users read or change it; it holds secrets and must be accessible by its owner only: run chmod %s %s", path, perm, chmod, path)
	}
	return nil
}

// randomKey returns a new random API key.
func randomKey() string {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails on Linux; it panics otherwise
	return "mr_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
}
