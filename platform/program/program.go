// Package program runs a service binary's main: a context cancelled by
// SIGINT or SIGTERM, a JSON logger at MAILROOM_LOG_LEVEL, OpenTelemetry from
// the standard OTEL_* variables (metrics: a meter provider of the service's
// own, served as Prometheus text on /metrics), and an exit status of 1 on
// error.
package program

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"mailroom.dev/platform/telemetry"
)

// Main runs run and exits: name is the service name ("store"), for logs and
// traces ("mailroom-store").
func Main(name string, run func(ctx context.Context, logger *slog.Logger) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := start(ctx, name, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
}

func start(ctx context.Context, name string, run func(context.Context, *slog.Logger) error) error {
	level, err := telemetry.ParseLevel(os.Getenv("MAILROOM_LOG_LEVEL"))
	if err != nil {
		return fmt.Errorf("MAILROOM_LOG_LEVEL: %w", err)
	}
	logger := telemetry.NewLogger(os.Stderr, level, name)
	slog.SetDefault(logger)
	shutdown, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "mailroom-" + name})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			logger.Warn("telemetry shutdown", "error", err.Error())
		}
	}()
	m, err := telemetry.SetupMetrics(ctx, telemetry.MetricsOptions{ServiceName: "mailroom-" + name})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Shutdown(sctx); err != nil {
			logger.Warn("metrics shutdown", "error", err.Error())
		}
	}()
	logger.Info("starting")
	if err := run(context.WithValue(ctx, metricsKey{}, m), logger); err != nil {
		// SIGTERM while the service was still starting is an orderly
		// stop, not a failure (a supervisor or the kubelet stopping a
		// pod that had just been started): what was starting gave up
		// with the signal's cancellation.
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			logger.Info("stopped while starting", "reason", err.Error())
			return nil
		}
		return err
	}
	logger.Info("stopped")
	return nil
}

// metricsKey carries the binary's meter provider from Main to Serve.
type metricsKey struct{}
