// Package grpcserver builds the gRPC server that every mailroom service runs:
// grpc.health.v1, server reflection, the otelgrpc stats handler, panic
// recovery, a log line per call, the one mapping from domain errors to
// statuses, and a graceful shutdown that turns health NOT_SERVING, drains
// in-flight calls within a deadline, then stops.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Options configure New.
type Options struct {
	// Logger receives a line per call and every internal error.
	Logger *slog.Logger
	// Unary and Stream are extra interceptors (authentication), run innermost.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// MaxRecvMsgSize is the largest request accepted, in bytes (default 4 MiB).
	MaxRecvMsgSize int
	// ShutdownTimeout bounds the drain of in-flight calls (default 10 s).
	ShutdownTimeout time.Duration
	// Creds secures the connections (transport.Config.ServerCredentials);
	// nil serves plaintext.
	Creds credentials.TransportCredentials
	// Reflection registers gRPC server reflection, which describes every
	// RPC to anyone who asks (off unless asked for: MAILROOM_GRPC_REFLECTION).
	Reflection bool
	// Instrumentation are options of the otelgrpc stats handler (the
	// service's own tracer and meter providers in mailroom dev).
	Instrumentation []otelgrpc.Option
}

// Server is a gRPC server with health and, when asked for, reflection.
type Server struct {
	grpc    *grpc.Server
	health  *health.Server
	logger  *slog.Logger
	timeout time.Duration

	mu       sync.Mutex
	started  bool
	stopping bool
	// notServing is the reason the server is not serving, "" when it is.
	notServing string
}

// New returns a server; register services on GRPC() before Serve.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxRecvMsgSize == 0 {
		opts.MaxRecvMsgSize = 4 << 20
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	l := opts.Logger
	unary := append([]grpc.UnaryServerInterceptor{logUnary(l), recoverUnary(l), errorsUnary(l)}, opts.Unary...)
	stream := append([]grpc.StreamServerInterceptor{logStream(l), recoverStream(l), errorsStream(l)}, opts.Stream...)
	serverOpts := []grpc.ServerOption{
		// Health checks (probes every few seconds) make no spans.
		grpc.StatsHandler(otelgrpc.NewServerHandler(append([]otelgrpc.Option{otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))}, opts.Instrumentation...)...)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// A connection is closed (GOAWAY) after five minutes, so that
		// clients balancing over replicas (round_robin over dns:///) look
		// the name up again and find new pods; calls and streams under way
		// get the longest a stream may last to finish.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second,
			MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: time.Hour}),
	}
	if opts.Creds != nil {
		serverOpts = append(serverOpts, grpc.Creds(opts.Creds))
	}
	gs := grpc.NewServer(serverOpts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	if opts.Reflection {
		reflection.Register(gs)
	}
	return &Server{grpc: gs, health: hs, logger: l, timeout: opts.ShutdownTimeout}
}

// GRPC returns the underlying server, to register services on.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Serve serves on lis until ctx is done, then shuts down gracefully: every
// service turns NOT_SERVING, in-flight calls drain for up to the shutdown
// timeout, and the rest are cut. It returns nil after a shutdown that ctx
// asked for.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.mu.Lock()
	s.started = true
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	s.publishLocked()
	s.mu.Unlock()

	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("grpc serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.stopping = true
	s.health.Shutdown()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.timeout):
		s.logger.Warn("grpc drain timed out; closing remaining calls", "timeout", s.timeout.String())
		s.grpc.Stop()
		<-done
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpc serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// LivenessService is the grpc.health.v1 service name that is SERVING for
// as long as the server runs, whatever SetServing says: what a liveness
// probe asks (the server as a whole, "", is NOT_SERVING while a
// dependency is down, which calls for no restart).
const LivenessService = "liveness"

// SetServing sets what grpc.health.v1 says of every service of the server
// (and of the server as a whole, ""): SERVING when reason is empty,
// NOT_SERVING otherwise. A server that is shutting down stays NOT_SERVING.
// It may be called before Serve, which starts with the last status set.
func (s *Server) SetServing(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notServing == reason {
		return
	}
	if (s.notServing == "") != (reason == "") {
		if reason == "" {
			s.logger.Info("serving again")
		} else {
			s.logger.Warn("not serving", "reason", reason)
		}
	}
	s.notServing = reason
	s.publishLocked()
}

func (s *Server) publishLocked() {
	if !s.started || s.stopping {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if s.notServing != "" {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
	s.health.SetServingStatus("", st)
}

func logUnary(l *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		logCall(ctx, l, info.FullMethod, start, err)
		return resp, err
	}
}

func logStream(l *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		logCall(ss.Context(), l, info.FullMethod, start, err)
		return err
	}
}

func logCall(ctx context.Context, l *slog.Logger, method string, start time.Time, err error) {
	if method == healthpb.Health_Check_FullMethodName || method == healthpb.Health_Watch_FullMethodName {
		return
	}
	code := status.Code(err)
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelError
	}
	l.Log(ctx, level, "grpc call", "method", method, "code", code.String(), "duration_ms", float64(time.Since(start).Microseconds())/1000)
}

func recoverUnary(l *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = panicked(ctx, l, info.FullMethod, p)
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(l *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = panicked(ss.Context(), l, info.FullMethod, p)
			}
		}()
		return h(srv, ss)
	}
}

func panicked(ctx context.Context, l *slog.Logger, method string, p any) error {
	l.ErrorContext(ctx, "panic in grpc handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Error(internalCode, internalMessage)
}

func errorsUnary(l *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			return nil, ToStatus(ctx, l, err)
		}
		return resp, nil
	}
}

func errorsStream(l *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := h(srv, ss); err != nil {
			return ToStatus(ss.Context(), l, err)
		}
		return nil
	}
}
