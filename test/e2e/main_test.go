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

	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
)

// spans records every span of every test: all services share the process's
// tracer provider, as in `mailroom dev`.
var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "mailroom-e2e", Exporter: spans})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = shutdown(context.Background())
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
