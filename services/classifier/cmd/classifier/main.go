// Command classifier runs the mailroom classifier service, configured from
// the environment (see classifier.Config).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/platform/program"
	"mailroom.dev/services/classifier"
)

func main() { program.Main("classifier", run) }

func run(ctx context.Context, logger *slog.Logger) error {
	var cfg classifier.Config
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger.Info("config", "config", cfg)
	svc, err := classifier.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer svc.Close()
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.GRPCAddr, err)
	}
	logger.Info("serving", "grpc_addr", lis.Addr().String())
	return svc.Run(ctx, lis)
}
