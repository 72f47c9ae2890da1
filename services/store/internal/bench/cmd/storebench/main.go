// Command storebench measures ListMessages over a large fixture on each
// backend and prints a table of latencies: in process (the repository, and
// the gRPC handler in front of it) and through the REST gateway of the real
// suite (`mailroom dev`, started as a child process on the fixture's
// database). `make bench-store` runs it after the write benchmark; see
// scripts/bench-store.sh.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"mailroom.dev/services/store/internal/bench"
	"mailroom.dev/services/store/internal/mailstore"
	"mailroom.dev/services/store/internal/sqlrepo"
)

type options struct {
	backends   []string
	postgres   string
	users      int
	perUser    int
	queries    int
	warmup     int
	mailroom   string
	byKind     bool
	suiteStart time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("storebench", flag.ContinueOnError)
	var o options
	backends := fs.String("backends", "postgres,sqlite", "backends to measure")
	fs.StringVar(&o.postgres, "postgres", os.Getenv("TEST_DATABASE_URL"), "a Postgres server URL; a scratch database is created on it and dropped after")
	fs.IntVar(&o.users, "users", 100, "users in the fixture")
	fs.IntVar(&o.perUser, "per-user", 10000, "messages per user")
	fs.IntVar(&o.queries, "queries", 2000, "timed queries per path")
	fs.IntVar(&o.warmup, "warmup", 300, "untimed queries per path first")
	fs.StringVar(&o.mailroom, "mailroom", "", "the mailroom binary, to measure through the gateway of `mailroom dev` (skipped when empty)")
	fs.BoolVar(&o.byKind, "by-kind", false, "also print the p99 of each kind of query")
	fs.DurationVar(&o.suiteStart, "suite-timeout", 2*time.Minute, "how long the suite may take to become ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.backends = strings.Split(*backends, ",")

	f := bench.Fixture{Users: o.users, PerUser: o.perUser, End: time.Now().UTC().Truncate(time.Second)}
	fmt.Fprintf(stdout, "ListMessages: %d messages of %d users, page size %d, %d timed queries per path after %d untimed.\n",
		f.Messages(), f.Users, bench.PageSize, o.queries, o.warmup)
	fmt.Fprintf(stdout, "Query mix: 50%% first page, 15%% pages 2-5, 15%% category, 5%% each from, classified = false, needs_reply, mailbox AND received_time.\n")
	fmt.Fprintf(stdout, "Targets: p99 ≤ 10 ms in process, ≤ 25 ms through the gateway.\n\n")

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "backend\tpath\tload\tp50\tp99\tmax\t")
	var kinds []string
	for _, name := range o.backends {
		rows, byKind, err := measureBackend(ctx, o, name, f)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, r := range rows {
			fmt.Fprintln(tw, r)
		}
		kinds = append(kinds, byKind...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.byKind {
		fmt.Fprintln(stdout, "\np99 by kind of query:")
		for _, k := range kinds {
			fmt.Fprintln(stdout, "  "+k)
		}
	}
	return nil
}

// measureBackend loads the fixture into a scratch database of the backend
// and measures the paths; it returns the table's rows.
func measureBackend(ctx context.Context, o options, name string, f bench.Fixture) (rows, byKind []string, err error) {
	dbURL, drop, err := scratch(ctx, o, name)
	if err != nil {
		return nil, nil, err
	}
	defer drop()

	db, err := sqlrepo.Open(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	if err := bench.Load(ctx, db, f); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	load := time.Since(start).Round(100 * time.Millisecond).String()
	svc := mailstore.NewService(db.Repo, mailstore.Options{})
	paths := []struct {
		name string
		list bench.Lister
	}{
		{"repository (in process)", bench.RepoLister(svc)},
		{"gRPC handler (in process)", bench.GRPCLister(svc)},
	}
	row := func(path string, s bench.Sample) {
		all := s.All()
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t", name, path, load,
			ms(bench.Percentile(all, 50)), ms(bench.Percentile(all, 99)), ms(bench.Percentile(all, 100))))
		load = ""
		kinds := make([]string, 0, len(s))
		for k := range s {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			byKind = append(byKind, fmt.Sprintf("%-8s %-26s %-24s p99 %s (%d)", name, path, k, ms(bench.Percentile(s[k], 99)), len(s[k])))
		}
	}
	for _, p := range paths {
		s, err := sample(ctx, o, f, p.list)
		if err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
		row(p.name, s)
	}
	db.Close()

	if o.mailroom == "" {
		rows = append(rows, fmt.Sprintf("%s\tgateway (HTTP)\t\tskipped: no -mailroom\t\t\t", name))
		return rows, byKind, nil
	}
	s, err := throughGateway(ctx, o, f, dbURL)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: %w", err)
	}
	row("gateway (HTTP, mailroom dev)", s)
	return rows, byKind, nil
}

func sample(ctx context.Context, o options, f bench.Fixture, list bench.Lister) (bench.Sample, error) {
	if _, err := bench.Measure(ctx, list, bench.Mix(f, o.warmup, 99)); err != nil {
		return nil, err
	}
	return bench.Measure(ctx, list, bench.Mix(f, o.queries, 1))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// scratch returns the URL of an empty database of the backend and a
// function that removes it.
func scratch(ctx context.Context, o options, name string) (string, func(), error) {
	switch name {
	case "sqlite":
		dir, err := os.MkdirTemp("", "storebench-")
		if err != nil {
			return "", nil, err
		}
		return "sqlite://" + filepath.Join(dir, "mailroom.db"), func() { os.RemoveAll(dir) }, nil
	case "postgres":
		if o.postgres == "" {
			return "", nil, errors.New("no Postgres server: pass -postgres or set TEST_DATABASE_URL")
		}
		admin, err := pgx.Connect(ctx, o.postgres)
		if err != nil {
			return "", nil, err
		}
		defer admin.Close(context.Background())
		dbName := "mailroom_bench_" + randomHex(4)
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
			return "", nil, err
		}
		u, err := url.Parse(o.postgres)
		if err != nil {
			return "", nil, err
		}
		u.Path = "/" + dbName
		drop := func() {
			c, err := pgx.Connect(context.Background(), o.postgres)
			if err != nil {
				fmt.Fprintln(os.Stderr, "storebench: drop", dbName+":", err)
				return
			}
			defer c.Close(context.Background())
			if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
				fmt.Fprintln(os.Stderr, "storebench: drop", dbName+":", err)
			}
		}
		return u.String(), drop, nil
	}
	return "", nil, fmt.Errorf("unknown backend %q (postgres, sqlite)", name)
}

// throughGateway starts `mailroom dev` on the fixture's database, with an
// admin API key of its own, and measures through its REST gateway.
func throughGateway(ctx context.Context, o options, f bench.Fixture, dbURL string) (bench.Sample, error) {
	dir, err := os.MkdirTemp("", "storebench-suite-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	addr := map[string]string{}
	for _, n := range []string{"HTTP", "AUTH", "INGEST", "CLASSIFIER", "STORE"} {
		if addr[n], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	key := "mr_bench_" + randomHex(16)
	env := []string{
		"DATABASE_URL=" + dbURL,
		"MAILROOM_BOOTSTRAP_TOKEN=" + key,
		"MAILROOM_RETENTION_DAYS=0", // the fixture stays whole
		"MAILROOM_LOG_LEVEL=error",
		// The gateway's per-key rate limit would turn a latency benchmark
		// into a measure of the limit.
		"MAILROOM_KEY_RATE=1000000",
		"MAILROOM_KEY_BURST=1000000",
	}
	for n, a := range addr {
		env = append(env, "MAILROOM_"+n+"_ADDR="+a)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MAILROOM_") || strings.HasPrefix(k, "OPENAI_") || k == "DATABASE_URL" || k == "NATS_URL" {
			continue // the suite runs on the fixture alone, with no model
		}
		env = append(env, kv)
	}
	logPath := filepath.Join(dir, "suite.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(o.mailroom, "dev", "-dir", filepath.Join(dir, "state"))
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s dev: %w", o.mailroom, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	base := "http://" + addr["HTTP"]
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	deadline := time.Now().Add(o.suiteStart)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("mailroom dev exited (%v); its log: %s", err, tail(logPath))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mailroom dev not ready within %s; its log: %s", o.suiteStart, tail(logPath))
		}
	}
	return sample(ctx, o, f, bench.HTTPLister(base, key, client))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail returns the end of the file at path.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
