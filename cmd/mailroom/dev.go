package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/cmd/mailroom/suite"
	"mailroom.dev/platform/redact"
	"mailroom.dev/platform/telemetry"
)

// dev runs the suite until ctx is done (Ctrl-C).
func dev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".mailroom", "directory for the embedded NATS store, the SQLite file, the admin key and the log")
	fakeGmail := fs.String("fake-gmail", "", "run a fake Gmail (with push) for Gmail mailboxes, and serve its delivery door on this address (e.g. 127.0.0.1:8025): POST /deliver puts a mail into "+devGmailAccount)
	fakeIMAP := fs.String("fake-imap", "", "run an IMAP server with IDLE (go-imap's, in memory; user "+devIMAPUser+", password "+devIMAPPassword+") on this address (e.g. 127.0.0.1:1143), which ingest may reach in plain text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}

	// Every service logs JSON into dir/mailroom.log; the terminal gets
	// warnings and errors only, unless MAILROOM_LOG_LEVEL says otherwise.
	logPath := filepath.Join(*dir, "mailroom.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	termLevel := slog.LevelWarn
	if v := os.Getenv("MAILROOM_LOG_LEVEL"); v != "" {
		if termLevel, err = telemetry.ParseLevel(v); err != nil {
			return fmt.Errorf("MAILROOM_LOG_LEVEL: %w", err)
		}
	}
	logger := slog.New(slog.NewMultiHandler(
		telemetry.NewHandler(logFile, min(termLevel, slog.LevelInfo)),
		telemetry.NewHandler(stderr, termLevel),
	))
	slog.SetDefault(logger)

	// Each service reports under its own service.name; the gateway's
	// /metrics serves every service's metrics, labelled service.
	tel, err := telemetry.SetupSuite(ctx, telemetry.SuiteOptions{Services: suite.Services, Default: "gateway"})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	// Under dev, webhooks may go to a receiver on this machine over plain
	// http (a production setting leaves loopback refused); the environment
	// still decides when it names MAILROOM_WEBHOOK_ALLOW_HOSTS, even empty.
	env := envconfig.MultiLookuper(envconfig.OsLookuper(), envconfig.MapLookuper(map[string]string{
		"MAILROOM_WEBHOOK_ALLOW_HOSTS": "127.0.0.1,localhost",
	}))
	var gmail *devGmail
	if *fakeGmail != "" {
		if gmail, err = startDevGmail(*fakeGmail, logger); err != nil {
			return err
		}
		defer gmail.Close()
		env = envconfig.MultiLookuper(envconfig.MapLookuper(gmail.env()), env)
	}

	var imapSrv *devIMAP
	if *fakeIMAP != "" {
		if imapSrv, err = startDevIMAP(*fakeIMAP); err != nil {
			return err
		}
		defer imapSrv.Close()
		env = envconfig.MultiLookuper(envconfig.MapLookuper(imapSrv.env()), env)
	}

	s, err := suite.Start(ctx, suite.Config{Dir: *dir, Logger: logger, Telemetry: tel, Env: env})
	if err != nil {
		return err
	}
	if gmail != nil {
		gmail.pushTo(s.HTTPURL)
	}
	banner(stdout, s, logPath)
	if gmail != nil {
		fmt.Fprintf(stdout, `
A fake Gmail runs for Gmail mailboxes (its consent page consents at once, as %s),
and pushes to %s/push/gmail. Deliver a mail to it:

  curl -s -X POST http://%s/deliver --data-binary @mail.eml
`, devGmailAccount, s.HTTPURL, gmail.Addr)
	}
	if imapSrv != nil {
		fmt.Fprintf(stdout, `
An IMAP server with IDLE listens on %s (user %s, password %s, no TLS).
Append a mail to its INBOX:

  curl -s -T mail.eml imap://%s/INBOX -u %s:%s
`, imapSrv.Addr, devIMAPUser, devIMAPPassword, imapSrv.Addr, devIMAPUser, devIMAPPassword)
	}
	err = s.Wait()
	fmt.Fprintln(stdout, "mailroom dev stopped")
	return err
}

func banner(w io.Writer, s *suite.Suite, logPath string) {
	nats := s.NATSURL
	if s.Embedded {
		nats += " (embedded)"
	}
	// The key itself is never printed: the terminal may be shared or recorded.
	export := "export MAILROOM_KEY=\"$MAILROOM_BOOTSTRAP_TOKEN\""
	if s.AdminKeyFile != "" {
		export = "export MAILROOM_KEY=$(cat " + s.AdminKeyFile + ")"
	}
	fmt.Fprintf(w, `mailroom dev is running — Ctrl-C stops it.

  gateway (REST)   %s        OpenAPI: %s/openapi.json
  gRPC             auth %s · ingest %s · classifier %s · store %s
  NATS             %s
  database         %s
  logs             %s
  metrics          %s/metrics (every service, labelled service; with the admin key)

The admin API key:

  %s

Create a user and an API key of its own (the key is shown once):

  curl -s -X POST '%s/v1/users?userId=ada' -H "Authorization: Bearer $MAILROOM_KEY" -d '{"displayName":"Ada"}'
  curl -s -X POST %s/v1/users/ada/apiKeys -H "Authorization: Bearer $MAILROOM_KEY" -d '{"displayName":"laptop"}'

The README walks through importing and classifying mail.
`, s.HTTPURL, s.HTTPURL, s.GRPC["auth"], s.GRPC["ingest"], s.GRPC["classifier"], s.GRPC["store"],
		nats, redact.URL(s.DatabaseURL), logPath, s.HTTPURL, export, s.HTTPURL, s.HTTPURL)
}
