// Command ingest runs the ingest service, configured by the environment
// (see ingest.Config).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/platform/program"
	"mailroom.dev/services/ingest"
)

func main() { program.Main("ingest", run) }

func run(ctx context.Context, logger *slog.Logger) error {
	var cfg ingest.Config
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger.Info("config", "config", cfg)
	svc, err := ingest.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer svc.Close()
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.GRPCAddr, err)
	}
	return svc.Run(ctx, lis)
}
