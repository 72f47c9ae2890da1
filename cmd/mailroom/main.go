// Command mailroom is mailroom's command-line tool. `mailroom dev` runs the
// whole suite in one process for a laptop; `mailroom help` lists the rest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers
// itself in an init function, so that commands never share a file.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	if _, dup := commands[name]; dup {
		panic("mailroom: command registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func init() {
	register("dev", "run every service in one process (embedded NATS and SQLite under ./.mailroom/, gateway on 127.0.0.1:8080)", dev)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "mailroom — classify a team's mail with a language model\n\nUsage: mailroom <command> [flags]  (mailroom <command> -h for its flags)\n\n")
	for _, n := range sortedNames() {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `  help         this text

Environment: MAILROOM_HTTP_ADDR moves the gateway; NATS_URL and DATABASE_URL
(postgres://… or sqlite://PATH) use external servers; MAILROOM_BOOTSTRAP_TOKEN
fixes the admin API key; OPENAI_API_KEY enables the language model tier.
Commands that talk to a running mailroom read MAILROOM_URL (default
http://127.0.0.1:8080) and MAILROOM_KEY. See README.md.
`)
}

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
		usage(stderr)
		return flag.ErrHelp
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q (known: %s)", args[0], strings.Join(sortedNames(), ", "))
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func sortedNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
