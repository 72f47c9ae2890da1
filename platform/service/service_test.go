package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
)

func TestListenAddrDefaultsToTheServicesOwnAddress(t *testing.T) {
	cfg := service.Config{DatabaseURL: "sqlite://x.db"}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{service.Auth: "127.0.0.1:9101", service.Ingest: "127.0.0.1:9102",
		service.Classifier: "127.0.0.1:9103", service.Store: "127.0.0.1:9104"} {
		if got := cfg.ListenAddr(name); got != want {
			t.Errorf("ListenAddr(%q) = %q, want %q", name, got, want)
		}
	}
	cfg.GRPCAddr = ":9999"
	if got := cfg.ListenAddr(service.Store); got != ":9999" {
		t.Errorf("ListenAddr with MAILROOM_GRPC_ADDR = %q, want :9999", got)
	}
}

// A part that fails stops the server and the other parts, and Run names it.
func TestRunStopsEverythingWhenAPartFails(t *testing.T) {
	b, err := service.New("test", service.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b.Serve(&authn.Guard{}, grpcserver.Options{ShutdownTimeout: time.Second})
	stopped := make(chan struct{})
	b.Go("waiter", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
	b.Go("broken", func(context.Context) error { return errors.New("boom") })
	closed := 0
	b.OnClose(func() error { closed++; return nil })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background(), lis) }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "test: broken: boom") {
			t.Errorf("Run = %v, want the broken part's error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after a part failed")
	}
	select {
	case <-stopped:
	default:
		t.Error("the other part was not stopped")
	}
	if err := errors.Join(b.Close(), b.Close()); err != nil || closed != 1 {
		t.Errorf("Close twice: err %v, released %d times, want once", err, closed)
	}
}

func TestEveryWaitsAPeriodThenRepeatsUntilDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := service.Every(ctx, time.Millisecond, func(context.Context) {
		calls++
		if calls == 3 {
			cancel()
		}
	})
	if err != nil || calls != 3 {
		t.Errorf("Every = %v after %d calls, want nil after 3", err, calls)
	}
}

// MAILROOM_MIGRATE defaults to auto; an unknown mode is refused at New.
func TestMigrateMode(t *testing.T) {
	cfg := service.Config{DatabaseURL: "sqlite://x.db"}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Migrate != "auto" {
		t.Errorf("MAILROOM_MIGRATE default = %q, want auto", cfg.Migrate)
	}
	cfg.Migrate = "later"
	if _, err := service.New("test", cfg, nil); err == nil || !strings.Contains(err.Error(), "MAILROOM_MIGRATE") {
		t.Errorf("New with MAILROOM_MIGRATE=later: %v, want refused", err)
	}
}

// gRPC reflection is off by default and served with MAILROOM_GRPC_REFLECTION=on.
func TestReflectionOnlyWhenAskedFor(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{{"", false}, {"on", true}} {
		var cfg service.Config
		cfg.DatabaseURL = "sqlite://unused.db"
		if tc.value != "" {
			cfg.Reflection = tc.value
		}
		if err := config.Defaults(&cfg); err != nil {
			t.Fatal(err)
		}
		b, err := service.New("test", cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, got := b.Serve(&authn.Guard{}, grpcserver.Options{}).GetServiceInfo()["grpc.reflection.v1.ServerReflection"]
		if got != tc.want {
			t.Errorf("MAILROOM_GRPC_REFLECTION=%q: reflection served %v, want %v", tc.value, got, tc.want)
		}
	}
	cfg := service.Config{Reflection: "yes"}
	if _, err := service.New("test", cfg, nil); err == nil || !strings.Contains(err.Error(), "MAILROOM_GRPC_REFLECTION") {
		t.Errorf("MAILROOM_GRPC_REFLECTION=yes: %v, want refused", err)
	}
}
