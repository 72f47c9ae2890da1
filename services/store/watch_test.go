package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store"
)

func TestWatchMessages(t *testing.T) {
	for name, dbURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) { testWatch(t, dbURL(t)) })
	}
}

// watcher reads one WatchMessages stream.
type watcher struct {
	t      *testing.T
	stream storev1.StoreService_WatchMessagesClient
	cancel context.CancelFunc
	cursor string
}

func watch(t *testing.T, e env, parent, cursor string) *watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	ctx = authn.OutgoingToken(ctx, e.auth.Token("ada", false))
	s, err := e.client.WatchMessages(ctx, &storev1.WatchMessagesRequest{Parent: parent, Cursor: cursor})
	if err != nil {
		cancel()
		t.Fatalf("WatchMessages: %v", err)
	}
	w := &watcher{t: t, stream: s, cancel: cancel}
	t.Cleanup(cancel)
	return w
}

// next returns the next message event (heartbeats only move the cursor).
func (w *watcher) next() *storev1.Message {
	w.t.Helper()
	for {
		r, err := w.stream.Recv()
		if err != nil {
			w.t.Fatalf("Recv: %v", err)
		}
		if r.GetCursor() == "" {
			w.t.Fatalf("a response without a cursor: %v", r)
		}
		w.cursor = r.GetCursor()
		if !r.GetHeartbeat() {
			return r.GetMessage()
		}
	}
}

func testWatch(t *testing.T, databaseURL string) {
	e := start(t, databaseURL, func(c *store.Config) { c.WatchHeartbeat = 100 * time.Millisecond })
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	publish := func(user string, i int, classified bool) {
		t.Helper()
		id := fmt.Sprintf("w%d", i)
		c := content(fmt.Sprintf("Mail %d", i), now.Add(-time.Duration(i)*time.Minute))
		r := receivedEvent(id, c)
		r.User, r.Mailbox, r.Message = user, "users/"+user+"/mailboxes/inbox", "users/"+user+"/messages/"+id
		subj, msgID, ev := e.topo.ReceivedSubject("live", user), user+"/inbox/"+id, proto.Message(r)
		if classified {
			v := classifiedEvent(id, "work", c)
			v.User, v.Mailbox, v.Message = user, r.Mailbox, r.Message
			subj, msgID, ev = e.topo.ClassifiedSubject(user), "classified/"+r.Message, v
		}
		if _, err := eventbus.Publish(ctx, e.js, subj, msgID, ev); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	// Another user's stream is refused.
	other := watch(t, e, "users/bob", "")
	if _, err := other.stream.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("watching bob as ada: %v, want PermissionDenied", err)
	}

	w := watch(t, e, "users/me", "")
	// The first response is a heartbeat that says where the stream starts.
	if r, err := w.stream.Recv(); err != nil || !r.GetHeartbeat() || r.GetCursor() == "" {
		t.Fatalf("first response = %v, %v; want a heartbeat with a cursor", r, err)
	}
	publish("bob", 1, false)
	publish("ada", 1, false)
	publish("ada", 2, false)
	got := map[string]storev1.MessageState{}
	for range 2 {
		m := w.next()
		if m.GetName() != "users/ada/messages/w1" && m.GetName() != "users/ada/messages/w2" {
			t.Fatalf("unexpected message %s", m.GetName())
		}
		if m.GetBody() != "" {
			t.Errorf("a watched message carries its body")
		}
		got[m.GetName()] = m.GetState()
	}
	if got["users/ada/messages/w1"] != storev1.MessageState_MESSAGE_STATE_PENDING || got["users/ada/messages/w2"] != storev1.MessageState_MESSAGE_STATE_PENDING {
		t.Errorf("received messages: %v, want both pending", got)
	}
	publish("ada", 1, true)
	if m := w.next(); m.GetName() != "users/ada/messages/w1" || m.GetClassification().GetCategory() != "work" {
		t.Errorf("after the verdict: %v, want w1 classified as work", m)
	}

	// The stream ends; what happens meanwhile comes when it is resumed from
	// its last cursor, once, and nothing before it comes again.
	w.cancel()
	cursor := w.cursor
	publish("ada", 2, true)
	publish("ada", 3, false)
	r := watch(t, e, "users/me", cursor)
	// Two streams of the store (received, classified) may commit in either order.
	resumed := map[string]*storev1.Message{}
	for range 2 {
		m := r.next()
		if resumed[m.GetName()] != nil {
			t.Errorf("resumed stream: %s twice", m.GetName())
		}
		resumed[m.GetName()] = m
	}
	if m := resumed["users/ada/messages/w2"]; m.GetState() != storev1.MessageState_MESSAGE_STATE_CLASSIFIED {
		t.Errorf("resumed stream: w2 = %v, want it classified", m)
	}
	if m := resumed["users/ada/messages/w3"]; m.GetState() != storev1.MessageState_MESSAGE_STATE_PENDING {
		t.Errorf("resumed stream: w3 = %v, want it pending", m)
	}
	// Then only heartbeats (each with the same cursor) until something changes.
	last := r.cursor
	for range 2 {
		h, err := r.stream.Recv()
		if err != nil || !h.GetHeartbeat() || h.GetCursor() != last {
			t.Fatalf("after the changes: %v, %v; want a heartbeat at cursor %s", h, err, last)
		}
	}

	// A cursor that is not one is refused.
	bad := watch(t, e, "users/me", "not-a-cursor")
	if _, err := bad.stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a bad cursor: %v, want InvalidArgument", err)
	}
}
