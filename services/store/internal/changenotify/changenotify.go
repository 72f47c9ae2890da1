// Package changenotify tells every store replica whose messages changed, so
// that WatchMessages streams wake up within milliseconds of a commit in any
// replica. After a write commits, the writer publishes the user's id on the
// core NATS subject "<prefix>store.changed.<user>" (no payload, no
// JetStream: a lost notification only delays a watcher until its next
// heartbeat, when it reads the database anyway); every replica subscribes
// to them and wakes its local watchers through a mailstore.Hub.
package changenotify

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"mailroom.dev/services/store/internal/mailstore"
)

// Notifier publishes and receives change notifications.
type Notifier struct {
	nc     *nats.Conn
	prefix string
	hub    *mailstore.Hub
}

// New returns a notifier on nc for the subjects under prefix (the
// topology's MAILROOM_NATS_PREFIX), waking the watchers of hub.
func New(nc *nats.Conn, prefix string, hub *mailstore.Hub) *Notifier {
	return &Notifier{nc: nc, prefix: prefix, hub: hub}
}

// Subject is the notification subject of user.
func (n *Notifier) Subject(user string) string { return n.prefix + "store.changed." + user }

// Run receives the notifications of every replica until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	all := n.prefix + "store.changed.*"
	sub, err := n.nc.Subscribe(all, func(m *nats.Msg) {
		n.hub.Notify(strings.TrimPrefix(m.Subject, n.prefix+"store.changed."))
	})
	if err != nil {
		return fmt.Errorf("changenotify: subscribe %s: %w", all, err)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return nil
}

// Changed wakes the local watchers of users and tells the other replicas.
func (n *Notifier) Changed(users ...string) {
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		n.hub.Notify(u)
		// Best effort: a publish that fails (NATS away) costs latency only.
		_ = n.nc.Publish(n.Subject(u), nil)
	}
}

// Wrap returns repo whose writes notify n after they commit.
func (n *Notifier) Wrap(repo mailstore.Repository) mailstore.Repository {
	return notifying{Repository: repo, n: n}
}

type notifying struct {
	mailstore.Repository
	n *Notifier
}

func (r notifying) SaveReceived(ctx context.Context, msgs []mailstore.Message) error {
	if err := r.Repository.SaveReceived(ctx, msgs); err != nil {
		return err
	}
	us := make([]string, len(msgs))
	for i, m := range msgs {
		us[i] = m.User
	}
	r.n.Changed(us...)
	return nil
}

func (r notifying) SaveClassified(ctx context.Context, verdicts []mailstore.Classified) error {
	if err := r.Repository.SaveClassified(ctx, verdicts); err != nil {
		return err
	}
	us := make([]string, len(verdicts))
	for i, v := range verdicts {
		us[i] = v.Message.User
	}
	r.n.Changed(us...)
	return nil
}

func (r notifying) SaveFailed(ctx context.Context, failures []mailstore.Failed) error {
	if err := r.Repository.SaveFailed(ctx, failures); err != nil {
		return err
	}
	us := make([]string, len(failures))
	for i, f := range failures {
		us[i] = f.Message.User
	}
	r.n.Changed(us...)
	return nil
}
