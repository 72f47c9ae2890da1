package program

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
)

// A service that gives up starting because it was told to stop exits
// cleanly; one that fails exits with its error, signal or not.
func TestStopWhileStartingIsClean(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // SIGTERM arrived
	canceled := func(ctx context.Context, _ *slog.Logger) error {
		return fmt.Errorf("store.New: ensure streams: %w", ctx.Err())
	}
	if err := start(ctx, "test", canceled); err != nil {
		t.Errorf("start after SIGTERM, cancelled while starting = %v, want nil", err)
	}
	failed := errors.New("listen: address in use")
	fail := func(context.Context, *slog.Logger) error { return failed }
	if err := start(ctx, "test", fail); !errors.Is(err, failed) {
		t.Errorf("start after SIGTERM, failing on its own = %v, want %v", err, failed)
	}
	if err := start(context.Background(), "test", canceled); err == nil {
		t.Error("start without a signal, its context cancelled = nil, want the error")
	}
}
