package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mailroom.dev/services/auth"
	"mailroom.dev/services/classifier"
	"mailroom.dev/services/ingest"
	"mailroom.dev/services/store"
)

func init() {
	register("migrate", "apply the services' database migrations and exit (DATABASE_URL, as `mailroom dev` uses it by default)", migrate)
}

// migrators are the services whose schema `mailroom migrate` brings up to
// date, in order. Each runs its embedded, versioned migrations under a lock
// (on Postgres), exactly as the service does when it starts, so running
// this beside starting services is safe.
var migrators = []struct {
	name    string
	migrate func(ctx context.Context, databaseURL string) error
}{
	{"auth", auth.Migrate},
	{"ingest", ingest.Migrate},
	{"classifier", classifier.Migrate},
	{"store", store.Migrate},
}

// migrate applies the migrations of the services named by -service (all
// by default) to the database that -database-url or DATABASE_URL names
// (default: the SQLite file of `mailroom dev`).
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, len(migrators))
	for i, m := range migrators {
		names[i] = m.name
	}
	dir := fs.String("dir", ".mailroom", "directory of the default SQLite file (as `mailroom dev -dir`)")
	dbURL := fs.String("database-url", "", "postgres://… or sqlite://PATH (default $DATABASE_URL, else sqlite://DIR/mailroom.db)")
	only := fs.String("service", "", "comma-separated services to migrate (default all: "+strings.Join(names, ", ")+")")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: mailroom migrate [flags]\n\nApplies the embedded migrations of %s and exits.\n\n", strings.Join(names, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("migrate takes no arguments, got %q", fs.Args())
	}
	url := *dbURL
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if url == "" {
		url = "sqlite://" + filepath.Join(*dir, "mailroom.db")
	}
	selected := names
	if *only != "" {
		selected = strings.Split(*only, ",")
		for _, n := range selected {
			if !slices.Contains(names, n) {
				return fmt.Errorf("migrate: unknown service %q (known: %s)", n, strings.Join(names, ", "))
			}
		}
	}
	for _, m := range migrators {
		if !slices.Contains(selected, m.name) {
			continue
		}
		start := time.Now()
		if err := m.migrate(ctx, url); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		fmt.Fprintf(stdout, "%-10s up to date (%s)\n", m.name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
