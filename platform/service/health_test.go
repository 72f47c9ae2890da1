package service_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
)

// running is a Base serving on loopback ports, with its health client and
// admin address.
type running struct {
	base   *service.Base
	health healthpb.HealthClient
	admin  string
}

// serve builds a Base with setup and runs it until the test ends.
func serve(t *testing.T, setup func(ctx context.Context, b *service.Base)) *running {
	t.Helper()
	cfg := service.Config{DatabaseURL: "sqlite://unused.db", GRPCAddr: "127.0.0.1:0"}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Telemetry.Gatherer = prometheus.NewRegistry()
	b, err := service.New("test", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	setup(ctx, b)
	b.Serve(&authn.Guard{}, grpcserver.Options{ShutdownTimeout: time.Second})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = b.Close()
	})
	cc, err := grpcconn.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	r := &running{base: b, health: healthpb.NewHealthClient(cc)}
	waitFor(t, "the admin server", func() bool { r.admin = b.AdminAddr(); return r.admin != "" })
	return r
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// status is what gRPC health and /readyz say: SERVING and 200, or
// NOT_SERVING and 503.
func (r *running) status(t *testing.T) (healthpb.HealthCheckResponse_ServingStatus, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := r.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	hr, err := http.Get("http://" + r.admin + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	hr.Body.Close()
	return resp.GetStatus(), hr.StatusCode
}

func (r *running) waitStatus(t *testing.T, want healthpb.HealthCheckResponse_ServingStatus, wantHTTP int) {
	t.Helper()
	waitFor(t, want.String(), func() bool {
		st, code := r.status(t)
		return st == want && code == wantHTTP
	})
}

// A service whose NATS server goes away says NOT_SERVING (and /readyz
// 503) until the server is back; a consumer it keeps that is deleted is
// created again.
func TestHealthFollowsNATS(t *testing.T) {
	srv := testenv.StartNATS(t)
	var js jetstream.JetStream
	var stream string
	r := serve(t, func(ctx context.Context, b *service.Base) {
		n := service.NATS{URL: srv.URL}
		if err := config.Defaults(&n); err != nil {
			t.Fatal(err)
		}
		var topo eventbus.Topology
		var err error
		if js, topo, err = b.ConnectNATS(ctx, n); err != nil {
			t.Fatal(err)
		}
		stream = topo.ReceivedStreamName()
		b.KeepConsumer(js, topo, stream, jetstream.ConsumerConfig{Durable: "kept", AckPolicy: jetstream.AckExplicitPolicy})
	})
	r.waitStatus(t, healthpb.HealthCheckResponse_SERVING, http.StatusOK)

	ctx := context.Background()
	if err := js.DeleteConsumer(ctx, stream, "kept"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer to be re-created", func() bool {
		_, err := js.Consumer(ctx, stream, "kept")
		return err == nil
	})

	srv.Stop()
	r.waitStatus(t, healthpb.HealthCheckResponse_NOT_SERVING, http.StatusServiceUnavailable)
	srv.Start()
	r.waitStatus(t, healthpb.HealthCheckResponse_SERVING, http.StatusOK)
}

// A service whose database cannot be reached says NOT_SERVING until it
// can again.
func TestHealthFollowsTheDatabase(t *testing.T) {
	target := testenv.PostgresURL(t)
	proxy := testenv.StartProxy(t, target)
	r := serve(t, func(ctx context.Context, b *service.Base) {
		pool, err := sqldb.OpenPostgres(ctx, proxy.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		b.CheckDB(&sqldb.DB{Backend: sqldb.Postgres, Pool: pool})
	})
	r.waitStatus(t, healthpb.HealthCheckResponse_SERVING, http.StatusOK)
	proxy.SetDown(true)
	r.waitStatus(t, healthpb.HealthCheckResponse_NOT_SERVING, http.StatusServiceUnavailable)
	// The process is alive: a liveness probe must not restart it.
	resp, err := r.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: grpcserver.LivenessService})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness: %v %v, want SERVING while the database is down", resp.GetStatus(), err)
	}
	proxy.SetDown(false)
	r.waitStatus(t, healthpb.HealthCheckResponse_SERVING, http.StatusOK)
}
