package ingest_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
)

// When the queue of mail waiting for classification (the received
// stream, MAILROOM_STREAM_MAX_BYTES) is full, an import is refused with
// RESOURCE_EXHAUSTED saying so, and the mail accepted before stays queued.
func TestImportIntoAFullQueueIsRefused(t *testing.T) {
	h := newWorld(t).start(t, testenv.SQLiteURL(t), func(c *ingest.Config) { c.NATS.StreamMaxBytes = 16 << 10 })
	ada := h.as(t, "ada", "user")
	if _, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/me", MailboxId: "inbox",
		Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}}); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	var err error
	for i := range 100 {
		raw := fmt.Sprintf("From: a@example.com\r\nTo: ada@example.com\r\nSubject: mail %d\r\nMessage-ID: <%d@example.com>\r\n\r\n%0900d\r\n", i, i, i)
		if _, err = h.client.ImportMessages(ada, &ingestv1.ImportMessagesRequest{Parent: "users/me/mailboxes/inbox",
			Messages: []*ingestv1.RawMessage{{Raw: []byte(raw)}}}); err != nil {
			break
		}
		accepted++
	}
	reason := wantStatus(t, err, codes.ResourceExhausted, "the queue of mail waiting for classification is full: messages[0] and the rest were not accepted (the 0 before it were); send them again once the backlog has been processed")
	if reason != "QUEUE_FULL" {
		t.Errorf("reason = %q, want QUEUE_FULL", reason)
	}
	if accepted == 0 {
		t.Fatal("the first import was refused already")
	}
	if got := len(h.received(t)); got != accepted {
		t.Errorf("the queue holds %d mails, want the %d accepted", got, accepted)
	}
}
