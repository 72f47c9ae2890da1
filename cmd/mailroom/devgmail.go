package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"time"

	"mailroom.dev/fakes/fakegmail"
)

// The fake Gmail of `mailroom dev --fake-gmail`: the project's test double
// of Google's OAuth endpoints and the Gmail API (fakes/fakegmail), with push
// on, and one account whose consent page consents at once.
const (
	devGmailAccount = "ada@gmail.example"
	devPushAudience = "mailroom-dev/push/gmail"
	devPushAccount  = "gmail-push@mailroom-dev.iam.gserviceaccount.com"
	devPushTopic    = "projects/mailroom-dev/topics/gmail"
	devDeliverLimit = 25 << 20 // Gmail's own limit on a received mail
)

// devGmail is a running fake Gmail and its delivery door: an HTTP listener
// on which POST /deliver puts an RFC 822 mail into the account's inbox, as
// if it had arrived at Gmail, and GET / tells whether Gmail watches the
// account and how many pushes it has made.
type devGmail struct {
	fake *fakegmail.Server
	acct *fakegmail.Account
	srv  *http.Server
	// Addr is the delivery door's address.
	Addr string
}

// startDevGmail starts the fake and its delivery door on addr.
func startDevGmail(addr string, logger *slog.Logger) (*devGmail, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--fake-gmail: %w", err)
	}
	g := &devGmail{fake: fakegmail.New(), Addr: l.Addr().String()}
	g.acct = g.fake.AddAccount(devGmailAccount)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deliver", g.deliver)
	mux.HandleFunc("GET /{$}", g.status)
	g.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() { _ = g.srv.Serve(l) }()
	return g, nil
}

// env is what points the suite at the fake: ingest's Google endpoints and
// push topic, the gateway's push endpoint and Google's keys.
func (g *devGmail) env() map[string]string {
	return map[string]string{
		"GOOGLE_OAUTH_CLIENT_ID":              g.fake.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":          g.fake.ClientSecret,
		"MAILROOM_GOOGLE_AUTH_URL":            g.fake.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":           g.fake.TokenURL,
		"MAILROOM_GOOGLE_REVOKE_URL":          g.fake.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT":             g.fake.URL,
		"MAILROOM_GMAIL_PUBSUB_TOPIC":         devPushTopic,
		"MAILROOM_GMAIL_PUSH_AUDIENCE":        devPushAudience,
		"MAILROOM_GMAIL_PUSH_SERVICE_ACCOUNT": devPushAccount,
		"MAILROOM_GOOGLE_JWKS_URL":            g.fake.JWKSURL,
	}
}

// pushTo makes the fake push to the gateway at gatewayURL.
func (g *devGmail) pushTo(gatewayURL string) {
	g.fake.SetPush(gatewayURL+"/push/gmail", devPushAudience, devPushAccount, devPushTopic)
}

func (g *devGmail) deliver(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, devDeliverLimit))
	if err != nil {
		http.Error(w, "the mail is larger than 25 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	if _, err := mail.ReadMessage(bytes.NewReader(raw)); err != nil {
		http.Error(w, "the body is not an RFC 822 mail: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := g.acct.Add(raw)
	writeDevJSON(w, map[string]any{"id": id, "to": devGmailAccount, "historyId": g.acct.HistoryID()})
}

func (g *devGmail) status(w http.ResponseWriter, _ *http.Request) {
	writeDevJSON(w, map[string]any{"account": devGmailAccount, "watching": g.fake.Watching(devGmailAccount), "pushes": g.fake.Pushes()})
}

func writeDevJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Close stops the door and the fake.
func (g *devGmail) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		_ = g.srv.Close()
	}
	g.fake.Close()
}
