package mailstore

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"

	"mailroom.dev/platform/apierror"
)

// Change is one change of a message: the message as it is after it, and its
// place in the order of the user's changes.
type Change struct {
	// Seq increases with every change of any of the user's messages; a
	// message changed twice keeps only its latest Seq.
	Seq     int64
	Message Message
}

// ChangeLog is what WatchMessages needs from a database, besides the
// Repository. Both adapters implement it.
//
// Seq numbers of one user's messages are committed in increasing order:
// once a reader has seen Seq n, no change of that user with a smaller Seq
// can appear later. That is what makes a cursor safe to resume from.
type ChangeLog interface {
	// Changes returns up to limit of user's messages whose Seq is greater
	// than after, by increasing Seq, without bodies.
	Changes(ctx context.Context, user string, after int64, limit int) ([]Change, error)
	// LastChange returns the greatest Seq of user's messages, 0 when none.
	LastChange(ctx context.Context, user string) (int64, error)
}

// cursorPrefix versions the cursor's encoding.
const cursorPrefix = "c1."

// EncodeCursor returns the opaque cursor that resumes after seq.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// DecodeCursor parses a cursor of EncodeCursor. An empty cursor is -1: the
// watch starts at the present.
func DecodeCursor(c string) (int64, error) {
	if c == "" {
		return -1, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && strings.HasPrefix(string(b), cursorPrefix) {
		if n, err := strconv.ParseInt(strings.TrimPrefix(string(b), cursorPrefix), 10, 64); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, apierror.Invalid("cursor", "is not a cursor of WatchMessages")
}

// Hub tells watchers that a user's messages changed. Writers (in this
// process or, through the store's notifications, in another replica) call
// Notify after their commit; watchers wait on the channel Subscribe gives.
// A notification only says "look again": a missed one costs latency (the
// watcher looks again at its next heartbeat), never a change.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a value after user's messages
// change, and the function that ends the subscription.
func (h *Hub) Subscribe(user string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[user] == nil {
		h.subs[user] = map[chan struct{}]struct{}{}
	}
	h.subs[user][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[user], ch)
		if len(h.subs[user]) == 0 {
			delete(h.subs, user)
		}
		h.mu.Unlock()
	}
}

// Notify wakes the watchers of user.
func (h *Hub) Notify(user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[user] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// WatchEvent is what Watch hands to its caller: a change, or a heartbeat
// (Message nil). Cursor resumes after it.
type WatchEvent struct {
	Message   *Message
	Cursor    string
	Heartbeat bool
}

// WatchRequest is a watch of Watch.
type WatchRequest struct {
	// Cursor resumes after an earlier event; empty starts at the present.
	Cursor string
	// Filter narrows the messages sent (see ParseFilter).
	Filter string
	// Heartbeat is how long a quiet stream waits before a heartbeat; the
	// watcher also looks at the database then, whether notified or not.
	Heartbeat time.Duration
}

// watchBatch is how many changes one read returns.
const watchBatch = 200

// Watch sends user's changes to send, oldest first, from the cursor on,
// until ctx ends or send fails. It reads the database when hub says that
// the user's messages changed and at least every heartbeat.
func Watch(ctx context.Context, log ChangeLog, hub *Hub, user string, req WatchRequest, send func(WatchEvent) error) error {
	after, err := DecodeCursor(req.Cursor)
	if err != nil {
		return err
	}
	f, err := ParseFilter(req.Filter)
	if err != nil {
		return err
	}
	for i, c := range f.Conditions {
		if c.Field == FieldMailbox {
			if c.Owner != user && c.Owner != "me" {
				return apierror.Invalid("filter", "mailbox names a mailbox of another user than the parent's")
			}
			f.Conditions[i].Owner = user
		}
	}
	if req.Heartbeat <= 0 {
		req.Heartbeat = 15 * time.Second
	}
	// Subscribe before the first read, so that a change committed between
	// the read and the wait still wakes the watcher.
	wake, stop := hub.Subscribe(user)
	defer stop()
	if after < 0 {
		if after, err = log.LastChange(ctx, user); err != nil {
			return err
		}
	}
	// The first event says where the stream starts, so that a client that
	// started "at the present" has a cursor before anything happens.
	if err := send(WatchEvent{Cursor: EncodeCursor(after), Heartbeat: true}); err != nil {
		return err
	}
	beat := time.NewTimer(req.Heartbeat)
	defer beat.Stop()
	for {
		changes, err := log.Changes(ctx, user, after, watchBatch)
		if err != nil {
			return err
		}
		for _, c := range changes {
			after = c.Seq
			if !f.Match(c.Message) {
				continue
			}
			m := c.Message
			if err := send(WatchEvent{Message: &m, Cursor: EncodeCursor(after)}); err != nil {
				return err
			}
			beat.Reset(req.Heartbeat)
		}
		if len(changes) == watchBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-beat.C:
			beat.Reset(req.Heartbeat)
			if err := send(WatchEvent{Cursor: EncodeCursor(after), Heartbeat: true}); err != nil {
				return err
			}
		}
	}
}
