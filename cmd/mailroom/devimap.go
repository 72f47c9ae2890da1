package main

import (
	"fmt"
	"net"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// The IMAP server of `mailroom dev --fake-imap`: go-imap's in-memory server
// (IMAP4rev2, so with IDLE), one user, plain text on loopback, for the
// README's IMAP IDLE walkthrough. Mail reaches it as on any IMAP server: by
// APPEND, from another session (curl -T).
const (
	devIMAPUser     = "ada"
	devIMAPPassword = "dev-password"
	// devIMAPReissue is how often ingest re-issues its IDLE under
	// --fake-imap: go-imap's server can leave unannounced a mail appended
	// just as an IDLE begins, which the NOOP between two IDLEs then tells.
	devIMAPReissue = "5s"
)

// devIMAP is a running fake IMAP server.
type devIMAP struct {
	srv *imapserver.Server
	// Addr is its address.
	Addr string
}

func startDevIMAP(addr string) (*devIMAP, error) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(devIMAPUser, devIMAPPassword)
	if err := u.Create("INBOX", nil); err != nil {
		return nil, fmt.Errorf("--fake-imap: %w", err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true, // loopback only, and a throwaway password
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--fake-imap: %w", err)
	}
	go func() { _ = srv.Serve(l) }()
	return &devIMAP{srv: srv, Addr: l.Addr().String()}, nil
}

// env lets ingest reach the server in plain text on loopback, and re-issue
// its IDLE often (see devIMAPReissue).
func (d *devIMAP) env() map[string]string {
	host, _, _ := net.SplitHostPort(d.Addr)
	return map[string]string{
		"MAILROOM_IMAP_ALLOW_HOSTS":  host,
		"MAILROOM_IMAP_IDLE_REISSUE": devIMAPReissue,
	}
}

// Close stops the server.
func (d *devIMAP) Close() { _ = d.srv.Close() }
