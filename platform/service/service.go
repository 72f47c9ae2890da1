package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/telemetry"
)

// Base is the skeleton a service's Service embeds: its logger, its
// connections to the other services, its gRPC server, the parts that Run
// runs beside the server, and what Close releases. Build it with New, add
// to it in the service's New, and the service's Run and Close are Base's.
type Base struct {
	// Name is the service's name ("store").
	Name string
	// Logger is the service's logger.
	Logger *slog.Logger

	cfg         Config
	serverCreds credentials.TransportCredentials
	clientCreds credentials.TransportCredentials
	server      *grpcserver.Server
	parts       []part
	closers     []func() error
	checks      []check
	health      health
	adminAddr   atomic.Pointer[string]
}

type part struct {
	name string
	run  func(context.Context) error
}

// New returns the skeleton of the service called name: the transport
// credentials are read; nothing is connected yet. A nil logger is
// slog.Default().
func New(name string, cfg Config, logger *slog.Logger) (*Base, error) {
	if logger == nil {
		logger = slog.Default()
	}
	b := &Base{Name: name, Logger: logger, cfg: cfg}
	b.health.changed = func(reason string) {
		if b.server != nil {
			b.server.SetServing(reason)
		}
	}
	if !cfg.Migrate.Valid() {
		return nil, fmt.Errorf("MAILROOM_MIGRATE is %q: want auto or wait", cfg.Migrate)
	}
	switch cfg.Reflection {
	case "", "off", "on":
	default:
		return nil, fmt.Errorf("MAILROOM_GRPC_REFLECTION is %q: want on or off", cfg.Reflection)
	}
	var err error
	if b.serverCreds, err = cfg.Transport.ServerCredentials(); err != nil {
		return nil, fmt.Errorf("server credentials: %w", err)
	}
	if b.clientCreds, err = cfg.Transport.ClientCredentials(); err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	return b, nil
}

// Dial returns a (lazy) connection to the service called peer, secured as
// the Transport config says; Close closes it.
func (b *Base) Dial(peer string) (*grpc.ClientConn, error) {
	addr := b.cfg.Addrs.Of(peer)
	if addr == "" {
		return nil, fmt.Errorf("dial %s: no address", peer)
	}
	cc, err := grpcconn.DialInstrumented(addr, b.cfg.Telemetry.GRPC(), grpcconn.WithCredentials(b.clientCreds))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	b.OnClose(cc.Close)
	return cc, nil
}

// DialAuth connects to auth and returns its client and a guard that
// verifies callers with auth's JWKS and accepts API keys by exchanging
// them there. public lists full method names reachable without a credential.
func (b *Base) DialAuth(public ...string) (authv1.AuthServiceClient, *authn.Guard, error) {
	cc, err := b.Dial(Auth)
	if err != nil {
		return nil, nil, err
	}
	client := authv1.NewAuthServiceClient(cc)
	return client, authn.NewGuard(client, b.Identity(client), public...), nil
}

// Identity returns the service's identity, its MAILROOM_SERVICE_KEY
// exchanged with auth behind c (cached until shortly before the token
// expires), or nil when the service has no key.
func (b *Base) Identity(c authv1.AuthServiceClient) *authn.ServiceIdentity {
	if b.cfg.ServiceKey == "" {
		return nil
	}
	return authn.NewServiceIdentity(b.Name, authn.KeyToken(authn.NewKeyCache(authn.ClientExchange(c), 10*time.Minute), b.cfg.ServiceKey))
}

// Serve builds the gRPC server behind guard (health and reflection, when
// MAILROOM_GRPC_REFLECTION=on, stay public), with opts' size limit and drain timeout, and returns it to
// register the service's API on. Run serves it.
func (b *Base) Serve(guard *authn.Guard, opts grpcserver.Options) *grpc.Server {
	opts.Logger = b.Logger
	opts.Creds = b.serverCreds
	opts.Reflection = b.cfg.Reflection == "on"
	opts.Instrumentation = append(opts.Instrumentation, b.cfg.Telemetry.GRPC()...)
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = b.cfg.ShutdownTimeout
	}
	opts.Unary = append(opts.Unary, guard.Unary())
	opts.Stream = append(opts.Stream, guard.Stream())
	b.server = grpcserver.New(opts)
	b.server.SetServing(b.health.reason())
	return b.server.GRPC()
}

// Go adds a part that Run runs beside the server until its context ends.
func (b *Base) Go(name string, run func(ctx context.Context) error) {
	b.parts = append(b.parts, part{name: name, run: run})
}

// OnClose adds what Close releases, in the reverse order of the calls.
func (b *Base) OnClose(release func() error) {
	b.closers = append(b.closers, release)
}

// Run serves gRPC on lis and runs every part until ctx is done, then
// drains: the server turns NOT_SERVING and finishes in-flight calls, the
// parts return. Beside them, the readiness checks run (gRPC health is
// NOT_SERVING while one fails), and, when the config's Telemetry has a
// Gatherer, the admin HTTP server answers on MetricsAddr: /metrics,
// /healthz (the process is up) and /readyz (503 while a check fails). If
// one part fails, the others are stopped too and its error, naming the
// part, is returned.
func (b *Base) Run(ctx context.Context, lis net.Listener) error {
	if b.server == nil {
		return errors.New(b.Name + ": Run before Serve")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return b.server.Serve(gctx, lis) })
	if gather := b.cfg.Telemetry.Gatherer; gather != nil {
		addr, err := telemetry.MetricsAddr(b.cfg.MetricsAddr, b.cfg.ListenAddr(b.Name))
		if err != nil {
			return err
		}
		routes := map[string]http.Handler{
			"GET /metrics": promhttp.HandlerFor(gather, promhttp.HandlerOpts{}),
			"GET /readyz":  http.HandlerFunc(b.readyz),
		}
		g.Go(func() error {
			return telemetry.ServeAdmin(gctx, addr, routes, func(a net.Addr) {
				s := a.String()
				b.adminAddr.Store(&s)
				b.Logger.Info("serving metrics", "addr", s)
			})
		})
	}
	if len(b.checks) > 0 {
		g.Go(func() error { return b.runChecks(gctx) })
	}
	for _, p := range b.parts {
		g.Go(func() error {
			if err := p.run(gctx); err != nil {
				return fmt.Errorf("%s: %s: %w", b.Name, p.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// AdminAddr is the address the admin HTTP server (/metrics, /healthz,
// /readyz) listens on, "" before Run has started it or without one.
func (b *Base) AdminAddr() string {
	if p := b.adminAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// Close releases what the service opened, last opened first. Call it
// after Run has returned; calling it again does nothing.
func (b *Base) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	b.closers = nil
	return errors.Join(errs...)
}

// CloseOnError closes b if *err is set: a service's New defers it, so that
// a failed New releases what it had opened.
func (b *Base) CloseOnError(err *error) {
	if *err != nil {
		_ = b.Close()
	}
}

// Every calls fn every d until ctx is done (not at once), and returns nil.
// fn handles its own errors: a failed round waits for the next.
func Every(ctx context.Context, d time.Duration, fn func(ctx context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn(ctx)
		}
	}
}
