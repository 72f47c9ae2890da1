// Package grpcconn opens client connections between mailroom services: with
// the otelgrpc stats handler, so trace context crosses every call, keepalive
// pings that notice a dead peer, and a default deadline on calls that carry
// none, so that no outbound call waits forever.
package grpcconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// DefaultTimeout is the deadline given to an outbound unary call whose
// context has none.
const DefaultTimeout = 30 * time.Second

// DefaultStreamTimeout is the deadline given to an outbound stream whose
// context has none: streams (a watch) legitimately last longer than a unary
// call, but not for ever.
const DefaultStreamTimeout = time.Hour

// Addrs are the services' gRPC addresses: where the others and the gateway
// reach each service, and where a service listens unless MAILROOM_GRPC_ADDR
// says otherwise. These tags are the one place the default ports are set.
type Addrs struct {
	Auth       string `env:"MAILROOM_AUTH_ADDR, default=127.0.0.1:9101"`
	Ingest     string `env:"MAILROOM_INGEST_ADDR, default=127.0.0.1:9102"`
	Classifier string `env:"MAILROOM_CLASSIFIER_ADDR, default=127.0.0.1:9103"`
	Store      string `env:"MAILROOM_STORE_ADDR, default=127.0.0.1:9104"`
}

// Of returns the address of the service called name ("auth", "ingest",
// "classifier", "store"), or "" for another name.
func (a Addrs) Of(name string) string {
	switch name {
	case "auth":
		return a.Auth
	case "ingest":
		return a.Ingest
	case "classifier":
		return a.Classifier
	case "store":
		return a.Store
	}
	return ""
}

// LogValue logs the four addresses.
func (a Addrs) LogValue() slog.Value {
	return slog.GroupValue(slog.String("auth", a.Auth), slog.String("ingest", a.Ingest),
		slog.String("classifier", a.Classifier), slog.String("store", a.Store))
}

// roundRobin spreads calls over every address a target resolves to (the
// pods behind a headless Service, the replicas of a comma list); gRPC's
// default, pick_first, would send everything to one.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// listScheme is the resolver scheme of a comma list of addresses.
const listScheme = "mailroom-list"

// Dial returns a client connection to target, plaintext unless an option
// (WithCredentials) says otherwise. target is host:port, a comma list of
// them (replicas on one machine, as `mailroom cluster` runs them) or a gRPC
// name such as dns:///store:9104 (a headless Service); calls are balanced
// round-robin over its addresses. The connection is lazy: it connects on
// first use and reconnects by itself.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return DialInstrumented(target, nil, opts...)
}

// DialInstrumented is Dial with options of the otelgrpc stats handler
// (the calling service's own tracer and meter providers in mailroom dev).
func DialInstrumented(target string, instr []otelgrpc.Option, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	var extra []grpc.DialOption
	if strings.Contains(target, ",") {
		var addrs []resolver.Address
		for _, a := range strings.Split(target, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, resolver.Address{Addr: a})
			}
		}
		r := manual.NewBuilderWithScheme(listScheme)
		r.InitialState(resolver.State{Addresses: addrs})
		extra = append(extra, grpc.WithResolvers(r))
		target = listScheme + ":///" + strings.ReplaceAll(target, ",", "_")
	}
	base := []grpc.DialOption{
		grpc.WithDefaultServiceConfig(roundRobin),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Health checks (readiness probes) make no spans: they would be
		// root spans of their own, many a minute.
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(append([]otelgrpc.Option{otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))}, instr...)...)),
		grpc.WithChainUnaryInterceptor(deadlineUnary),
		grpc.WithChainStreamInterceptor(deadlineStream),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		// A ping after 30 s of silence finds a peer that vanished (a node
		// gone, a connection dropped by a middlebox) within 40 s. Servers
		// built by grpcserver accept pings every 10 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	cc, err := grpc.NewClient(target, append(append(base, extra...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("grpcconn: dial %s: %w", target, err)
	}
	return cc, nil
}

// WithCredentials secures a connection with creds (from
// transport.Config.ClientCredentials); nil keeps it plaintext.
func WithCredentials(creds credentials.TransportCredentials) grpc.DialOption {
	if creds == nil {
		return grpc.EmptyDialOption{}
	}
	return grpc.WithTransportCredentials(creds)
}

func deadlineUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func deadlineStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if _, ok := ctx.Deadline(); ok {
		return streamer(ctx, desc, cc, method, opts...)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultStreamTimeout)
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelingStream{ClientStream: s, cancel: cancel}, nil
}

// cancelingStream releases its deadline's timer when the stream ends.
type cancelingStream struct {
	grpc.ClientStream
	cancel context.CancelFunc
}

func (s *cancelingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.cancel()
	}
	return err
}
