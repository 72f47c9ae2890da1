// Package config decodes a configuration struct from environment
// variables named in its `env` tags, whose defaults are written only
// there. Service binaries, `mailroom dev` and tests all decode configs
// with it.
package config

import (
	"context"
	"fmt"

	"github.com/sethvargo/go-envconfig"
)

// Load fills target, a pointer to a config struct, from lookup: a field
// already set keeps its value, an unset one takes the variable its env tag
// names or else the tag's default. A nil lookup is the process environment.
// Binaries, `mailroom dev` and tests all decode configs with it, so the tags
// are the one place defaults are written.
func Load(ctx context.Context, target any, lookup envconfig.Lookuper) error {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: target, Lookuper: lookup}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// Defaults fills the unset fields of target with its tags' defaults alone,
// reading no environment: for configs built in code (tests).
func Defaults(target any) error {
	return Load(context.Background(), target, envconfig.MapLookuper(nil))
}
