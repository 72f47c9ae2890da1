// Command mailroom is mailroom's command-line tool. `mailroom dev` runs the
// whole suite in one process for a laptop; see `mailroom help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `mailroom — classify a team's mail with a language model

Usage:
  mailroom dev        run every service in one process (embedded NATS and
                      SQLite under ./.mailroom/, gateway on 127.0.0.1:8080)
  mailroom help       this text

Environment (dev): MAILROOM_HTTP_ADDR moves the gateway; NATS_URL and
DATABASE_URL (postgres://… or sqlite://PATH) use external servers;
MAILROOM_BOOTSTRAP_TOKEN fixes the admin API key; OPENAI_API_KEY enables the
language model tier. See README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "mailroom:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "dev":
		return dev(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
