package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
)

// start serves a health-only server whose Check handler is replaced by fn
// through an interceptor, and returns a health client.
func start(t *testing.T, fn func(ctx context.Context) error) (healthpb.HealthClient, context.CancelFunc, <-chan error) {
	t.Helper()
	intercept := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if fn != nil && strings.HasSuffix(info.FullMethod, "/Check") {
			if err := fn(ctx); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
	s := grpcserver.New(grpcserver.Options{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Unary:           []grpc.UnaryServerInterceptor{intercept},
		ShutdownTimeout: time.Second,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	cc, err := grpcconn.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); cancel() })
	return healthpb.NewHealthClient(cc), cancel, done
}

func TestErrorMapping(t *testing.T) {
	var next error
	c, _, _ := start(t, func(context.Context) error { return next })
	ctx := context.Background()

	tests := []struct {
		name     string
		err      error
		code     codes.Code
		msg      string
		reason   string
		hideText string
	}{
		{"invalid argument", apierror.Invalid("messages[0].raw", "is empty"), codes.InvalidArgument, "messages[0].raw: is empty", "INVALID_ARGUMENT", ""},
		{"not found", apierror.NotFoundf("mailbox %q not found", "users/a/mailboxes/b"), codes.NotFound, `mailbox "users/a/mailboxes/b" not found`, "NOT_FOUND", ""},
		{"custom reason", apierror.Invalid("raw", "too big").WithReason("MESSAGE_TOO_LARGE"), codes.InvalidArgument, "raw: too big", "MESSAGE_TOO_LARGE", ""},
		{"unknown error hides its text", errors.New("pq: password authentication failed for user secret"), codes.Internal, "internal error", "", "secret"},
		{"wrapped cause hidden", &apierror.Error{Kind: apierror.Unavailable, Reason: "UNAVAILABLE", Message: "store unavailable", Err: errors.New("dial 10.0.0.1: secret-host")}, codes.Unavailable, "store unavailable", "UNAVAILABLE", "secret-host"},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded", "", ""},
		{"status passes through", status.Error(codes.Aborted, "try again"), codes.Aborted, "try again", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next = tt.err
			_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
			st := status.Convert(err)
			if st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			if tt.hideText != "" && strings.Contains(err.Error(), tt.hideText) {
				t.Errorf("status %q leaks %q", err, tt.hideText)
			}
			var reason string
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					reason = ei.GetReason()
					if ei.GetDomain() != apierror.Domain {
						t.Errorf("domain = %q", ei.GetDomain())
					}
				}
			}
			if reason != tt.reason {
				t.Errorf("ErrorInfo reason = %q, want %q", reason, tt.reason)
			}
		})
	}
}

func TestPanicBecomesInternal(t *testing.T) {
	c, _, _ := start(t, func(context.Context) error { panic("boom") })
	_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Fatalf("got %v", err)
	}
	// The server is still up.
	if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.Internal {
		t.Fatalf("second call: %v", err)
	}
}

func TestGracefulShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	c, cancel, done := start(t, func(ctx context.Context) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	callErr := make(chan error, 1)
	go func() {
		_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
		callErr <- err
	}()
	<-started
	cancel() // SIGTERM: stop accepting, let the in-flight call finish
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-callErr; err != nil {
		t.Fatalf("in-flight call failed during graceful stop: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil after a requested shutdown", err)
	}
}
