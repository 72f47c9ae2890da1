// Command mailroom is mailroom's command-line tool. `mailroom dev` runs the
// whole suite in one process for a laptop; the other commands talk to a
// running mailroom through its REST API; `mailroom help` lists them all.
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

	"github.com/spf13/cobra"
)

// command is one of the older subcommands that parse their own flags with
// the standard flag package. Each lives in its own file and registers
// itself in an init function; run wraps each in a cobra command that hands
// it its arguments untouched, so their flags and help stay as they were.
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

// cliCommands are the cobra commands that files add in their init
// functions; each is called once per run to build a fresh tree.
var cliCommands []func(*cli) *cobra.Command

func addCLI(f func(*cli) *cobra.Command) { cliCommands = append(cliCommands, f) }

func init() {
	register("dev", "run every service in one process (embedded NATS and SQLite under ./.mailroom/, gateway on 127.0.0.1:8080)", dev)
}

const rootLong = `mailroom — classify a team's mail with a language model

Log in once (mailroom login --server URL), then use the nouns and verbs:
mailroom mailboxes list, mailroom messages list --category newsletters, …

Environment: MAILROOM (server URL) and MAILROOM_KEY (API key) override the
current context of $XDG_CONFIG_HOME/mailroom/config.yaml; NO_COLOR turns
colour off. For mailroom dev: MAILROOM_HTTP_ADDR moves the gateway; NATS_URL
and DATABASE_URL (postgres://… or sqlite://PATH) use external servers;
MAILROOM_BOOTSTRAP_TOKEN fixes the admin API key; OPENAI_API_KEY enables the
language model tier. See README.md.`

// usageError is a mistake in how a command was called (exit status 2);
// every other error is the server's or the environment's (exit status 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func isUsageError(err error) bool {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.HasPrefix(msg, "invalid argument")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mailroom:", err)
		}
		stop()
		if isUsageError(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	if len(args) == 0 {
		root.SetOut(stderr)
		_ = root.Help()
		return flag.ErrHelp
	}
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	c := &cli{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "mailroom",
		Short:         "classify a team's mail with a language model",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&c.output, "output", "o", "", "output format: table, json or yaml (default table)")
	pf.StringVar(&c.contextName, "context", "", "the config context to use instead of the current one")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	root.AddGroup(&cobra.Group{ID: "api", Title: "Working with mail:"}, &cobra.Group{ID: "ops", Title: "Running mailroom:"})
	for _, n := range sortedNames() {
		legacy := commands[n]
		root.AddCommand(&cobra.Command{
			Use:                n,
			Short:              legacy.summary,
			GroupID:            legacyGroup(n),
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return legacy.run(cmd.Context(), args, stdout, stderr)
			},
		})
	}
	for _, f := range cliCommands {
		cmd := f(c)
		if cmd.GroupID == "" {
			cmd.GroupID = "api"
		}
		root.AddCommand(cmd)
	}
	return root
}

// legacyGroup puts import, which talks to the API, beside the API commands.
func legacyGroup(name string) string {
	if name == "import" {
		return "api"
	}
	return "ops"
}

func sortedNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
