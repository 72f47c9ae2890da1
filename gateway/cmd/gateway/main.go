// Command gateway serves mailroom's REST API in front of its gRPC services.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/gateway"
	"mailroom.dev/platform/program"
)

func main() { program.Main("gateway", run) }

func run(ctx context.Context, logger *slog.Logger) error {
	var cfg gateway.Config
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger.Info("config", "config", cfg)

	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer g.Close()

	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	return g.Run(ctx, lis)
}
