package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"mailroom.dev/cmd/mailroom/cluster"
)

func init() { addCLI(clusterCommand) }

const clusterLong = `mailroom cluster runs mailroom in its production shape on this machine:
three NATS servers clustered with JetStream (streams with three replicas,
fsync on every write), N replicas of auth, ingest, classifier and store and
N gateways, each the service's own binary (make build) as a separate
process, configured by environment alone, against the Postgres server of
DATABASE_URL (required). The migrations run once, under their lock, before
the services start (they wait for the schema: MAILROOM_MIGRATE=wait).

A supervisor restarts every process that exits, after a short back-off,
and keeps DIR/cluster.json current (addresses and pids). Each process logs
to DIR/logs/NAME.log; the admin API key is in DIR/admin-key.

Without OPENAI_API_KEY (or OPENAI_API_KEYS) the classifiers talk to the
project's fake OpenAI, served by the supervisor (--openai fake; its URL is
in DIR/openai-url); --openai none runs the rules tier alone.`

func clusterCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Short:   "run every service as separate processes with replicas, on a 3-node JetStream cluster and Postgres",
		Long:    clusterLong,
		GroupID: "ops",
	}
	cmd.AddCommand(clusterUpCommand(c), clusterDownCommand(c), clusterStatusCommand(c))
	return cmd
}

func clusterUpCommand(c *cli) *cobra.Command {
	var (
		o          cluster.Options
		foreground bool
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "start a cluster and return once every process is ready (a supervisor keeps it running)",
		Long: clusterLong + `

up starts the supervisor in the background (its own log is
DIR/logs/supervisor.log) and returns once every process answers its health
check; mailroom cluster down stops it. --foreground keeps the supervisor in
this terminal instead, until Ctrl-C, which stops the cluster as down does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o.DatabaseURL = os.Getenv("DATABASE_URL")
			if o.BinDir == "" {
				o.BinDir = defaultBinDir()
			}
			if o.NATSServer == "" {
				o.NATSServer = cluster.LookPath(o.BinDir, "nats-server")
			}
			o.Migrate = migrateAll
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			if foreground {
				o.Log = c.stderr
				return cluster.Run(ctx, o, func(st cluster.State) { clusterBanner(c.stdout, o.Dir, st, true) })
			}
			return clusterDetach(ctx, c, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", cluster.DefaultDir, "directory of cluster.json, the keys, the NATS data and the logs")
	f.IntVar(&o.Replicas, "replicas", 2, "replicas of each service, and gateways")
	f.StringVar(&o.BinDir, "bin", "", "directory of the auth, ingest, classifier, store and gateway binaries (default: this mailroom's own directory)")
	f.StringVar(&o.NATSServer, "nats-server", "", "the nats-server binary, 2.10 or newer (default: nats-server in --bin, else on PATH)")
	f.StringVar(&o.OpenAI, "openai", cluster.OpenAIAuto, "the classifiers' model: auto (env when OPENAI_API_KEY(S) is set, else fake), env, fake or none")
	f.BoolVar(&foreground, "foreground", false, "supervise in this terminal until Ctrl-C instead of in the background")
	f.DurationVar(&o.ReadyTimeout, "timeout", 3*time.Minute, "how long up waits for every process to be ready (then stops the cluster)")
	return cmd
}

// clusterDetach starts `mailroom cluster up --foreground` as a background
// supervisor in a session of its own (the terminal closing does not stop
// it) and waits until the cluster is ready.
func clusterDetach(ctx context.Context, c *cli, o cluster.Options) error {
	if pid := cluster.SupervisorPID(o.Dir); pid != 0 {
		return fmt.Errorf("a cluster is already running in %s (supervisor pid %d): mailroom cluster down --dir %s", o.Dir, pid, o.Dir)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o700); err != nil {
		return err
	}
	_ = os.Remove(cluster.StateFile(o.Dir))
	logPath := filepath.Join(o.Dir, "logs", "supervisor.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sup := exec.Command(self, "cluster", "up", "--foreground", "--dir", o.Dir, "--replicas", strconv.Itoa(o.Replicas),
		"--bin", o.BinDir, "--nats-server", o.NATSServer, "--openai", o.OpenAI, "--timeout", o.ReadyTimeout.String())
	sup.Stdout, sup.Stderr = log, log
	sup.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sup.Start(); err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	pid := sup.Process.Pid
	// Reap it if it dies while we wait, so that it is seen gone.
	go func() { _ = sup.Wait() }()
	fmt.Fprintf(c.stderr, "mailroom cluster: supervisor started (pid %d); waiting for every process to be ready …\n", pid)
	// The supervisor gives up (and stops) after the same time; a little
	// more here sees it go.
	st, err := cluster.WaitReady(ctx, o.Dir, o.ReadyTimeout+30*time.Second, pid)
	if err != nil {
		return fmt.Errorf("%w\n(see %s and %s)", err, logPath, filepath.Join(o.Dir, "logs"))
	}
	clusterBanner(c.stdout, o.Dir, st, false)
	return nil
}

func clusterBanner(w io.Writer, dir string, st cluster.State, foreground bool) {
	fmt.Fprintf(w, "mailroom cluster is ready (%s).\n\n", cluster.StateFile(dir))
	for _, g := range st.Gateway {
		fmt.Fprintf(w, "  gateway      %s\n", g)
	}
	for _, p := range st.Processes {
		if p.Kind != cluster.KindGateway {
			fmt.Fprintf(w, "  %-12s %s (pid %d)\n", p.Name, p.Addr, p.PID)
		}
	}
	for _, n := range st.NATS {
		fmt.Fprintf(w, "  %-12s %s (pid %d)\n", n.Name, n.URL, n.PID)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "openai-url")); err == nil {
		fmt.Fprintf(w, "  fake OpenAI  %s", b)
	}
	fmt.Fprintf(w, "\n  logs         %s\n\n", filepath.Join(dir, "logs"))
	// The key itself is never printed.
	if _, err := os.Stat(filepath.Join(dir, "admin-key")); err == nil {
		fmt.Fprintf(w, "The admin API key:\n\n  export MAILROOM=%s MAILROOM_KEY=$(cat %s)\n\n", st.Gateway[0], filepath.Join(dir, "admin-key"))
	}
	if foreground {
		fmt.Fprintln(w, "Ctrl-C stops it.")
	} else {
		fmt.Fprintf(w, "mailroom cluster down --dir %s stops it.\n", dir)
	}
}

func clusterDownCommand(c *cli) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "stop a cluster: every process, newest first, with SIGTERM and a drain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			exits, err := cluster.Down(ctx, dir)
			if err != nil {
				return err
			}
			if len(exits) == 0 {
				fmt.Fprintf(c.stdout, "no cluster is running in %s\n", dir)
				return nil
			}
			var unclean []string
			for _, e := range exits {
				fmt.Fprintf(c.stdout, "%-13s pid %-8d %s\n", e.Name, e.PID, e.Status)
				if !e.Clean {
					unclean = append(unclean, e.Name)
				}
			}
			if len(unclean) > 0 {
				return fmt.Errorf("%d processes did not exit cleanly: %v (logs in %s)", len(unclean), unclean, filepath.Join(dir, "logs"))
			}
			fmt.Fprintf(c.stdout, "mailroom cluster stopped: %d processes, every one exited cleanly\n", len(exits))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", cluster.DefaultDir, "the cluster's directory")
	return cmd
}

func clusterStatusCommand(c *cli) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show each process of a cluster and whether it is ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := cluster.ReadState(dir)
			if err != nil {
				return err
			}
			if cluster.SupervisorPID(dir) == 0 {
				return errors.New("the cluster's supervisor is not running (cluster.json is stale)")
			}
			fmt.Fprintf(c.stdout, "%-13s %-11s %-8s %-22s %s\n", "NAME", "KIND", "PID", "ADDRESS", "READY")
			for _, n := range st.NATS {
				fmt.Fprintf(c.stdout, "%-13s %-11s %-8d %-22s %s\n", n.Name, cluster.KindNATS, n.PID, n.URL, map[bool]string{true: "running", false: "down"}[n.PID != 0])
			}
			for _, p := range st.Processes {
				ready := "yes"
				if err := cluster.Check(cmd.Context(), p); err != nil {
					ready = "no: " + err.Error()
				}
				fmt.Fprintf(c.stdout, "%-13s %-11s %-8d %-22s %s\n", p.Name, p.Kind, p.PID, p.Addr, ready)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", cluster.DefaultDir, "the cluster's directory")
	return cmd
}

// defaultBinDir is the directory of this mailroom binary, where make build
// puts the others.
func defaultBinDir() string {
	self, err := os.Executable()
	if err != nil {
		return ".bin"
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	return filepath.Dir(self)
}

// migrateAll applies every service's migrations, as mailroom migrate does.
func migrateAll(ctx context.Context, databaseURL string) error {
	for _, m := range migrators {
		if err := m.migrate(ctx, databaseURL); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}
