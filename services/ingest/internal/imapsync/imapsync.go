// Package imapsync connects and syncs IMAP mailboxes with
// github.com/emersion/go-imap/v2: over TLS or STARTTLS (plain text only to
// allow-listed hosts), through a Guard against server-side request
// forgery, incrementally by UIDVALIDITY and the last UID.
//
// A message's provider id is not its UID, which a UIDVALIDITY change
// renumbers, but a hash of its Message-ID, internal date and size (what
// survives a renumbering), so that a resync after such a change publishes
// nothing twice.
package imapsync

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/services/ingest/internal/mailbox"
)

// Config configures an IMAP.
type Config struct {
	// Guard dials the servers.
	Guard *Guard
	// RootCAs verifies servers' certificates (default: the system's).
	RootCAs *x509.CertPool
	// CommandTimeout bounds each exchange with the server (default 2m).
	CommandTimeout time.Duration
	// MaxMessageBytes: larger messages are recorded as failed without
	// being downloaded (default 25 MiB).
	MaxMessageBytes int64
	// Logger receives connection problems, never mail content.
	Logger *slog.Logger
}

// IMAP is the mailbox.Provider and mailbox.IMAPChecker of IMAP mailboxes.
type IMAP struct {
	cfg Config
}

var (
	_ mailbox.Provider    = (*IMAP)(nil)
	_ mailbox.IMAPChecker = (*IMAP)(nil)
)

// New returns an IMAP for cfg.
func New(cfg Config) *IMAP {
	if cfg.Guard == nil {
		cfg.Guard, _ = NewGuard(nil)
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 2 * time.Minute
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = mailbox.DefaultMaxMessageBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &IMAP{cfg: cfg}
}

// conn is a logged-in session.
type conn struct {
	c    *imapclient.Client
	raw  net.Conn
	stop func() bool
	to   time.Duration
}

// arm gives the next exchange CommandTimeout.
func (c *conn) arm() { _ = c.raw.SetDeadline(time.Now().Add(c.to)) }

func (c *conn) close() {
	c.stop()
	c.arm()
	_ = c.c.Logout().Wait()
	_ = c.c.Close()
}

// errLogin is a login the server refused.
var errLogin = errors.New("imap: login refused")

// dial connects to s as its settings say and logs in.
func (m *IMAP) dial(ctx context.Context, s mailbox.IMAPSettings, password string) (*conn, error) {
	return m.dialWith(ctx, s, password, nil)
}

// dialWith is dial whose client hands unilateral data (EXISTS during IDLE)
// to handler.
func (m *IMAP) dialWith(ctx context.Context, s mailbox.IMAPSettings, password string, handler *imapclient.UnilateralDataHandler) (*conn, error) {
	if s.Security == mailbox.IMAPNone && !m.cfg.Guard.Allowed(s.Host) {
		return nil, apierror.Invalid("mailbox.imap.security",
			"NONE sends the password in the clear; it is allowed only for hosts in MAILROOM_IMAP_ALLOW_HOSTS: use TLS or STARTTLS")
	}
	raw, err := m.cfg.Guard.Dial(ctx, s.Host, s.Port)
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			return nil, apierror.Invalid("mailbox.imap.host", "%s", re.Error())
		}
		return nil, apierror.Unavailablef(err, "the IMAP server %s:%d could not be reached", s.Host, s.Port)
	}
	_ = raw.SetDeadline(time.Now().Add(m.cfg.CommandTimeout))
	tlsConfig := &tls.Config{ServerName: s.Host, RootCAs: m.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	opts := &imapclient.Options{TLSConfig: tlsConfig, UnilateralDataHandler: handler}
	var c *imapclient.Client
	switch s.Security {
	case mailbox.IMAPTLS, "":
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, apierror.Unavailablef(err, "the TLS handshake with the IMAP server %s:%d failed (%s)", s.Host, s.Port, tlsReason(err))
		}
		c = imapclient.New(tc, opts)
		raw = tc
	case mailbox.IMAPStartTLS:
		c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			raw.Close()
			return nil, apierror.Unavailablef(err, "STARTTLS with the IMAP server %s:%d failed (%s)", s.Host, s.Port, tlsReason(err))
		}
	default:
		c = imapclient.New(raw, opts)
	}
	cn := &conn{c: c, raw: raw, to: m.cfg.CommandTimeout}
	// The client knows no context: closing the connection ends its calls.
	cn.stop = context.AfterFunc(ctx, func() { _ = raw.Close() })
	if err := c.WaitGreeting(); err != nil {
		cn.stop()
		_ = c.Close()
		return nil, apierror.Unavailablef(err, "the IMAP server %s:%d sent no greeting", s.Host, s.Port)
	}
	cn.arm()
	if err := c.Login(s.Username, password).Wait(); err != nil {
		cn.stop()
		_ = c.Close()
		var ie *imap.Error
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("%w: %s", errLogin, ie.Code)
		}
		return nil, apierror.Unavailablef(err, "the IMAP server %s:%d dropped the connection at login", s.Host, s.Port)
	}
	return cn, nil
}

func tlsReason(err error) string {
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return "its certificate is not trusted"
	}
	return "handshake error"
}

// CheckIMAP implements mailbox.IMAPChecker: it connects, logs in and
// opens each folder to sync.
func (m *IMAP) CheckIMAP(ctx context.Context, s mailbox.IMAPSettings, password string) error {
	c, err := m.dial(ctx, s, password)
	if errors.Is(err, errLogin) {
		return apierror.Invalid("mailbox.imap", "the IMAP server refused the login of %s: check the username and the password", s.Username)
	}
	if err != nil {
		return err
	}
	defer c.close()
	for i, f := range s.FolderList() {
		c.arm()
		if _, err := c.c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) {
				return apierror.Invalid(fmt.Sprintf("mailbox.imap.folders[%d]", i), "the IMAP server has no folder %q it would open", f)
			}
			return apierror.Unavailablef(err, "the IMAP server did not open %q", f)
		}
	}
	return nil
}

// cursor is one IMAP folder's position: its UIDVALIDITY, the last UID
// whose messages (and all before it) were handed over, and whether the
// backfill is still going on.
type cursor struct {
	UIDValidity uint32 `json:"uidValidity"`
	LastUID     uint32 `json:"lastUid"`
	Backfill    bool   `json:"backfill,omitempty"`
}

// position is an IMAP mailbox's cursor: one per folder synced. (A cursor
// of INBOX alone, as stored before folders, reads as INBOX's.)
type position struct {
	Folders map[string]cursor `json:"folders"`
}

func (p position) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

func parsePosition(s string) (position, error) {
	var p position
	if s == "" {
		return position{Folders: map[string]cursor{}}, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, err
	}
	if p.Folders == nil {
		var old cursor
		if err := json.Unmarshal([]byte(s), &old); err != nil {
			return p, err
		}
		p.Folders = map[string]cursor{mailbox.DefaultIMAPFolder: old}
	}
	return p, nil
}

// Sync implements mailbox.Provider on the mailbox's folders (INBOX
// unless it names others), read-only, one after the other, within the
// job's cap for all of them.
//
// In each folder, a first sync, a FULL sync, a sync while the backfill
// goes on, and a sync after UIDVALIDITY changed search every UID; other
// syncs search the UIDs after the last one. Either way the messages are
// identified (envelope, date, size), the recorded ones skipped (a message
// in two folders is delivered once), and at most the job's cap of the
// others fetched and delivered, newest first.
func (m *IMAP) Sync(ctx context.Context, run *mailbox.SyncRun) (string, error) {
	if run.Mailbox.IMAP == nil {
		return "", errors.New("imap: mailbox has no settings")
	}
	pos, err := parsePosition(run.Mailbox.Cursor)
	if err != nil {
		return "", fmt.Errorf("imap: cursor: %w", err)
	}
	c, err := m.dial(ctx, *run.Mailbox.IMAP, string(run.Secret))
	if errors.Is(err, errLogin) {
		return "", apierror.Preconditionf("the IMAP server refused the login of %s: if the password changed, delete the mailbox and connect it again", run.Mailbox.IMAP.Username)
	}
	if err != nil {
		return "", err
	}
	defer c.close()

	next := position{Folders: map[string]cursor{}}
	for _, f := range run.Mailbox.IMAP.FolderList() {
		cur := pos.Folders[f]
		if run.Remaining() > 0 {
			if cur, err = m.syncFolder(ctx, c, run, f, cur); err != nil {
				return "", err
			}
		}
		next.Folders[f] = cur
	}
	return next.String(), nil
}

// syncFolder syncs one folder from cur and returns its new cursor.
func (m *IMAP) syncFolder(ctx context.Context, c *conn, run *mailbox.SyncRun, folder string, cur cursor) (cursor, error) {
	c.arm()
	sel, err := c.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return cur, apierror.Unavailablef(err, "the IMAP server did not open %q", folder)
	}
	lane := mailbox.LaneLive
	renumbered := cur.UIDValidity != 0 && cur.UIDValidity != sel.UIDValidity
	full := cur.UIDValidity == 0 || renumbered || cur.Backfill || run.Job.Mode == mailbox.SyncFull
	switch {
	case renumbered:
		run.Logger.InfoContext(ctx, "imap UIDVALIDITY changed; resyncing without duplicates", "folder", folder, "old", cur.UIDValidity, "new", sel.UIDValidity)
		cur = cursor{UIDValidity: sel.UIDValidity}
	case full:
		lane = mailbox.LaneBackfill
	}
	cur.UIDValidity = sel.UIDValidity

	var uids []imap.UID
	if sel.NumMessages > 0 {
		criteria := &imap.SearchCriteria{}
		if !full {
			criteria.UID = []imap.UIDSet{{{Start: imap.UID(cur.LastUID + 1), Stop: 0}}}
		}
		c.arm()
		data, err := c.c.UIDSearch(criteria, nil).Wait()
		if err != nil {
			return cur, apierror.Unavailablef(err, "the IMAP server did not answer a search")
		}
		for _, u := range data.AllUIDs() {
			// "n:*" matches the last message even when its UID is below n.
			if full || uint32(u) > cur.LastUID {
				uids = append(uids, u)
			}
		}
	}
	slices.Sort(uids)
	slices.Reverse(uids) // newest first
	run.AddListed(len(uids))

	complete, err := m.deliver(ctx, c, run, uids, lane)
	if err != nil {
		return cur, err
	}
	switch {
	case complete && len(uids) > 0:
		cur.LastUID = max(cur.LastUID, uint32(uids[0]))
		cur.Backfill = false
	case complete:
		cur.Backfill = false
	case full:
		// The cap stopped a full listing: the next sync lists again.
		cur.Backfill = true
	}
	return cur, nil
}

// chunk is how many messages one metadata FETCH asks for.
const chunk = 500

// maxBatchBytes bounds the bodies one FETCH brings into memory.
const maxBatchBytes = 32 << 20

// deliver identifies uids (newest first) chunk by chunk, skips the recorded
// messages, and fetches and delivers the others up to the run's cap.
// complete tells that nothing was left out.
func (m *IMAP) deliver(ctx context.Context, c *conn, run *mailbox.SyncRun, uids []imap.UID, lane mailbox.Lane) (bool, error) {
	budget := run.Remaining()
	for len(uids) > 0 {
		n := min(len(uids), chunk)
		part := uids[:n]
		uids = uids[n:]
		c.arm()
		metas, err := c.c.Fetch(imap.UIDSetNum(part...), &imap.FetchOptions{
			UID: true, Envelope: true, InternalDate: true, RFC822Size: true,
		}).Collect()
		if err != nil {
			return false, apierror.Unavailablef(err, "the IMAP server did not answer a FETCH")
		}
		byUID := map[imap.UID]*imapclient.FetchMessageBuffer{}
		for _, meta := range metas {
			byUID[meta.UID] = meta
		}
		var ids []string
		pid := map[imap.UID]string{}
		for _, u := range part {
			if meta := byUID[u]; meta != nil {
				pid[u] = ProviderMessageID(meta)
				ids = append(ids, pid[u])
			}
		}
		known, err := run.Known(ctx, ids)
		if err != nil {
			return false, err
		}
		var todo []imap.UID
		skipped := 0
		for _, u := range part {
			switch {
			case pid[u] == "":
				skipped++ // expunged since the search
			case known[pid[u]]:
				skipped++
			default:
				todo = append(todo, u)
			}
		}
		run.AddSkipped(skipped)
		cut := len(todo) > budget
		if cut {
			todo = todo[:budget]
		}
		if err := m.fetchBodies(ctx, c, run, todo, byUID, pid, lane); err != nil {
			return false, err
		}
		budget -= len(todo)
		if cut || (budget == 0 && len(uids) > 0) {
			return false, nil
		}
	}
	return true, nil
}

func (m *IMAP) fetchBodies(ctx context.Context, c *conn, run *mailbox.SyncRun, todo []imap.UID,
	meta map[imap.UID]*imapclient.FetchMessageBuffer, pid map[imap.UID]string, lane mailbox.Lane) error {
	section := &imap.FetchItemBodySection{Peek: true}
	for len(todo) > 0 {
		var batch []imap.UID
		var bytes int64
		for len(todo) > 0 {
			u := todo[0]
			size := meta[u].RFC822Size
			if size > m.cfg.MaxMessageBytes {
				todo = todo[1:]
				if err := run.DeliverTooLarge(ctx, pid[u], size); err != nil {
					return err
				}
				continue
			}
			if len(batch) > 0 && bytes+size > maxBatchBytes {
				break
			}
			batch = append(batch, u)
			bytes += size
			todo = todo[1:]
		}
		if len(batch) == 0 {
			continue
		}
		c.arm()
		got, err := m.readBodies(c, batch, section, pid)
		if err != nil {
			return err
		}
		for _, u := range batch {
			b, ok := got[u]
			switch {
			case !ok:
				run.AddSkipped(1) // expunged meanwhile
			case b.tooLarge:
				// The server's declared size was a lie: the body is not
				// kept past the limit.
				if err := run.DeliverTooLarge(ctx, pid[u], b.size); err != nil {
					return err
				}
			default:
				f := mailbox.Fetched{ProviderMessageID: pid[u], Raw: b.raw}
				if md := meta[u]; md != nil && !md.InternalDate.IsZero() {
					f.ReceivedTime = md.InternalDate
				}
				if err := run.Deliver(ctx, f, lane); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// body is one fetched message body, or how far it went past the limit.
type body struct {
	raw      []byte
	tooLarge bool
	size     int64
}

// readBodies fetches the bodies of batch, each read through a reader
// limited to MaxMessageBytes whatever size the server declared: a server
// that announces a small message and sends a huge one costs at most the
// limit in memory, and the rest of its literal is discarded as it comes.
// Bodies of UIDs not asked for are dropped.
func (m *IMAP) readBodies(c *conn, batch []imap.UID, section *imap.FetchItemBodySection, pid map[imap.UID]string) (map[imap.UID]body, error) {
	cmd := c.c.Fetch(imap.UIDSetNum(batch...), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{section},
	})
	got := make(map[imap.UID]body, len(batch))
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var (
			uid imap.UID
			b   body
			has bool
		)
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					continue
				}
				raw, err := io.ReadAll(io.LimitReader(item.Literal, m.cfg.MaxMessageBytes+1))
				if err != nil {
					_ = cmd.Close()
					return nil, apierror.Unavailablef(err, "the IMAP server did not send the messages asked for")
				}
				has = true
				if int64(len(raw)) > m.cfg.MaxMessageBytes {
					b = body{tooLarge: true, size: item.Literal.Size()}
				} else {
					b = body{raw: raw}
				}
			}
		}
		if _, asked := pid[uid]; has && asked {
			got[uid] = b
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, apierror.Unavailablef(err, "the IMAP server did not send the messages asked for")
	}
	return got, nil
}

// ProviderMessageID identifies an IMAP message across UIDVALIDITY changes:
// the hex of 16 bytes of the SHA-256 of its Message-ID (or, without one,
// its envelope's date, subject and sender), internal date and size.
func ProviderMessageID(meta *imapclient.FetchMessageBuffer) string {
	h := sha256.New()
	key := ""
	if meta.Envelope != nil {
		key = meta.Envelope.MessageID
		if key == "" {
			key = "\x01" + meta.Envelope.Date.UTC().Format(time.RFC3339) + "\x00" + meta.Envelope.Subject
			for _, a := range meta.Envelope.From {
				key += "\x00" + a.Addr()
			}
		}
	}
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(meta.InternalDate.Unix(), 10)))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(meta.RFC822Size, 10)))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
