package program_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"mailroom.dev/platform/program"
)

type checkedConfig struct {
	Secret string `env:"PROGRAM_TEST_SECRET"`
}

func (c checkedConfig) Validate() error {
	if len(c.Secret) < 8 {
		return errors.New("PROGRAM_TEST_SECRET is too short")
	}
	return nil
}

func (c checkedConfig) LogValue() slog.Value { return slog.StringValue("secret=" + c.Secret) }

type idle struct{}

func (idle) Run(context.Context, net.Listener) error { return nil }
func (idle) Close() error                            { return nil }

// A configuration that its Validate refuses is never logged, and the
// service is not built.
func TestServeValidatesBeforeLogging(t *testing.T) {
	t.Setenv("PROGRAM_TEST_SECRET", "short")
	var logs bytes.Buffer
	built := false
	run := program.Serve(func(context.Context, checkedConfig, *slog.Logger) (idle, error) {
		built = true
		return idle{}, nil
	}, func(checkedConfig) string { return "127.0.0.1:0" })
	err := run(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err == nil || !strings.Contains(err.Error(), "PROGRAM_TEST_SECRET is too short") {
		t.Errorf("err = %v, want the validation error", err)
	}
	if built {
		t.Error("the service was built from an invalid configuration")
	}
	if strings.Contains(logs.String(), "short") {
		t.Errorf("the invalid configuration was logged: %s", logs.String())
	}
}
