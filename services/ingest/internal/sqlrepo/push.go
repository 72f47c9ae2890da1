package sqlrepo

import (
	"context"

	"mailroom.dev/services/ingest/internal/mailbox"
)

// MailboxesByAddress implements mailbox.AddressFinder: the mailboxes of
// kind whose address is address, whatever its case, of every user (a
// Gmail push names an address, not a user).
func (r *Repo) MailboxesByAddress(ctx context.Context, kind mailbox.Kind, address string) ([]mailbox.Mailbox, error) {
	return r.queryMailboxes(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes WHERE provider = $1 AND lower(address) = lower($2) ORDER BY user_id, id LIMIT 100`,
		string(kind), address)
}

// MailboxesByKind implements mailbox.KindFinder: up to limit mailboxes of
// kind in state, of every user.
func (r *Repo) MailboxesByKind(ctx context.Context, kind mailbox.Kind, state mailbox.State, limit int) ([]mailbox.Mailbox, error) {
	return r.queryMailboxes(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes WHERE provider = $1 AND state = $2 ORDER BY user_id, id LIMIT $3`,
		string(kind), string(state), limit)
}
