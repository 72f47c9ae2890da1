// Package e2e_test runs the whole mailroom suite in one process, on loopback
// ports, against real NATS JetStream and real Postgres or SQLite, and talks to
// it only through the REST gateway (and, for the README, through curl and
// grpcurl).
package e2e_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"mailroom.dev/cmd/mailroom/suite"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
)

// spans records every span of every test: each service has its own tracer
// provider (service.name mailroom-<name>), as in `mailroom dev`.
var spans = tracetest.NewInMemoryExporter()

// tel is the telemetry of every suite the tests start, as `mailroom dev`
// sets it up: the gateway's /metrics serves every service's metrics.
var tel *telemetry.Suite

func TestMain(m *testing.M) {
	var err error
	tel, err = telemetry.SetupSuite(context.Background(), telemetry.SuiteOptions{
		Services: suite.Services, Default: "gateway", SpanExporter: spans, NoOTLP: true,
	})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = tel.Shutdown(context.Background())
	os.Exit(code)
}

// syncBuffer collects log lines written at once by many goroutines.
type syncBuffer = testenv.Buffer

// testLogger returns a JSON logger, and the buffer it writes to, whose
// content is shown when the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			s := buf.String()
			if len(s) > 20000 {
				s = "…" + s[len(s)-20000:]
			}
			t.Logf("service logs:\n%s", s)
		}
	})
	return slog.New(telemetry.NewHandler(buf, slog.LevelDebug)), buf
}
