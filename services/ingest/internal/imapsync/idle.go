package imapsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailroom.dev/services/ingest/internal/mailbox"
)

// ErrNoIdle is the error of Idle on a server without the IDLE extension
// (or IMAP4rev2): such mailboxes keep being polled.
var ErrNoIdle = mailbox.ErrNoIdle

// IdleReissue is how often an IDLE is ended and issued again: under the
// 30 minutes after which RFC 2177 lets a server drop an idle client.
const IdleReissue = 29 * time.Minute

// Idle holds an IDLE on the INBOX of mb until ctx ends or the connection
// fails, calling changed after the server announces new mail (EXISTS) —
// once when the first IDLE has begun too, for what arrived before it. It ends
// the IDLE and issues it again every reissue (IdleReissue when zero).
func (m *IMAP) Idle(ctx context.Context, mb mailbox.Mailbox, password string, reissue time.Duration, changed func()) error {
	if mb.IMAP == nil {
		return errors.New("imap: mailbox has no settings")
	}
	if reissue <= 0 {
		reissue = IdleReissue
	}
	exists := make(chan struct{}, 1)
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- struct{}{}:
				default:
				}
			}
		},
	}
	c, err := m.dialWith(ctx, *mb.IMAP, password, handler)
	if err != nil {
		return err
	}
	caps := c.c.Caps()
	if !caps.Has(imap.CapIdle) && !caps.Has(imap.CapIMAP4rev2) {
		c.close()
		return ErrNoIdle
	}
	c.arm()
	if _, err := c.c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		c.close()
		return fmt.Errorf("imap: select INBOX: %w", err)
	}
	// From here the connection is closed, not logged out: a LOGOUT would
	// wait for an IDLE that a failure or the end of ctx left open.
	defer func() {
		c.stop()
		_ = c.c.Close()
	}()
	select { // an EXISTS of the SELECT itself is no news
	case <-exists:
	default:
	}
	for first := true; ; first = false {
		// A NOOP first: a server may keep what happened since the last
		// command until the next one, rather than send it when IDLE begins
		// (go-imap's server does), so a mail that arrived between two IDLEs
		// is announced now, or at the latest at the next re-issue.
		c.arm()
		if err := c.c.Noop().Wait(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("imap: noop: %w", err)
		}
		// The connection is quiet while idle: its deadline covers a whole IDLE.
		_ = c.raw.SetDeadline(time.Now().Add(reissue + c.to))
		cmd, err := c.c.Idle()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("imap: idle: %w", err)
		}
		if first {
			changed() // what came before the IDLE began
		}
		again := time.NewTimer(reissue)
		news := false
		select {
		case <-ctx.Done():
		case <-exists:
			news = true
		case <-again.C:
		}
		again.Stop()
		if ctx.Err() != nil {
			return nil
		}
		c.arm()
		err = cmd.Close()
		if err == nil {
			err = cmd.Wait()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("imap: end idle: %w", err)
		}
		if news {
			changed()
		}
	}
}
