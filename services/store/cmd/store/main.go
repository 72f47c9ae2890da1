// Command store runs mailroom's store service: the system of record for
// messages and their classifications. It is configured from the environment
// (see store.Config).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/platform/program"
	"mailroom.dev/services/store"
)

func main() { program.Main("store", run) }

func run(ctx context.Context, logger *slog.Logger) error {
	var cfg store.Config
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger.Info("config", "config", cfg)
	svc, err := store.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer svc.Close()
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("serving", "grpc_addr", lis.Addr().String())
	return svc.Run(ctx, lis)
}
