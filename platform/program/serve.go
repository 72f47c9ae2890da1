package program

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"mailroom.dev/platform/config"
	"mailroom.dev/platform/telemetry"
)

// Service is what a service's public package builds from its Config.
type Service interface {
	// Run serves on lis until ctx is done, then drains.
	Run(ctx context.Context, lis net.Listener) error
	Close() error
}

// Validator is a Config that can tell what is wrong with it. Its error names
// variables, never their values.
type Validator interface {
	Validate() error
}

// telemetryUser is a Config that takes the providers it reports to
// (service.Config, gateway.Config).
type telemetryUser interface {
	UseTelemetry(telemetry.Providers)
}

// Serve returns the run function of a service binary: its Config read from
// the environment, validated when it is a Validator (a refused
// configuration is not logged: a value in the wrong variable may be a
// secret that its LogValue would not mask) and logged once (the Config's
// LogValue masks secrets),
// the service built by newService, served on the address addr picks from
// the Config. `mailroom dev` builds services with the same newService.
func Serve[C any, S Service](newService func(context.Context, C, *slog.Logger) (S, error), addr func(C) string) func(context.Context, *slog.Logger) error {
	return func(ctx context.Context, logger *slog.Logger) error {
		var cfg C
		if err := config.Load(ctx, &cfg, nil); err != nil {
			return err
		}
		if v, ok := any(cfg).(Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("config: %w", err)
			}
		}
		// The service serves its meter provider's metrics on its /metrics
		// (the gateway beside its own, the others on MAILROOM_METRICS_ADDR).
		if u, ok := any(&cfg).(telemetryUser); ok {
			if m, ok := ctx.Value(metricsKey{}).(*telemetry.Metrics); ok {
				u.UseTelemetry(telemetry.Providers{Gatherer: m.Gatherer()})
			}
		}
		logger.Info("config", "config", cfg)
		svc, err := newService(ctx, cfg, logger)
		if err != nil {
			return err
		}
		defer svc.Close()
		lis, err := net.Listen("tcp", addr(cfg))
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr(cfg), err)
		}
		logger.Info("serving", "addr", lis.Addr().String())
		return svc.Run(ctx, lis)
	}
}
