package grpcconn_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
)

// deadlines records the time left on each call that a server receives.
type deadlines struct {
	mu   sync.Mutex
	left map[string]time.Duration // by method; -1 when the call had none
}

func (d *deadlines) record(ctx context.Context, method string) {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	d.mu.Lock()
	d.left[method] = left
	d.mu.Unlock()
}

func (d *deadlines) get(method string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.left[method]
}

func TestEveryCallHasADeadline(t *testing.T) {
	d := &deadlines{left: map[string]time.Duration{}}
	s := grpcserver.New(grpcserver.Options{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: time.Second,
		Unary: []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			d.record(ctx, info.FullMethod)
			return h(ctx, req)
		}},
		Stream: []grpc.StreamServerInterceptor{func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			d.record(ss.Context(), info.FullMethod)
			return h(srv, ss)
		}},
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	defer func() { cancel(); <-done }()

	cc, err := grpcconn.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := healthpb.NewHealthClient(cc)

	// A unary call without a deadline gets the default.
	if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := d.get(healthpb.Health_Check_FullMethodName); got <= grpcconn.DefaultTimeout-5*time.Second || got > grpcconn.DefaultTimeout {
		t.Errorf("Check without a deadline arrived with %v left, want about %v", got, grpcconn.DefaultTimeout)
	}
	// A caller's deadline is kept.
	short, cancelShort := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancelShort()
	if _, err := c.Check(short, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := d.get(healthpb.Health_Check_FullMethodName); got <= 0 || got > 3*time.Second {
		t.Errorf("Check with a 3s deadline arrived with %v left", got)
	}
	// A stream without a deadline gets the stream default.
	w, err := c.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	if got := d.get(healthpb.Health_Watch_FullMethodName); got <= grpcconn.DefaultStreamTimeout-time.Minute || got > grpcconn.DefaultStreamTimeout {
		t.Errorf("Watch without a deadline arrived with %v left, want about %v", got, grpcconn.DefaultStreamTimeout)
	}
}

// TestCallsAreSpreadOverReplicas: a comma list of replicas (as `mailroom
// cluster` gives) gets its calls round-robin, not all on the first.
func TestCallsAreSpreadOverReplicas(t *testing.T) {
	var (
		mu    sync.Mutex
		calls = map[string]int{}
		addrs []string
	)
	for range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		addrs = append(addrs, addr)
		s := grpcserver.New(grpcserver.Options{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: time.Second,
			Unary: []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				mu.Lock()
				calls[addr]++
				mu.Unlock()
				return h(ctx, req)
			}},
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, lis) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	cc, err := grpcconn.Dial(strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := healthpb.NewHealthClient(cc)
	for range 30 {
		if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range addrs {
		if calls[a] < 5 {
			t.Errorf("calls per replica %v: want each of the three to get a share of 30", calls)
		}
	}
}
