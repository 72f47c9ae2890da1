package ingest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest"
)

// TestNATSPermissionsOfTheDeployment runs ingest against a NATS server
// with the users and subject permissions of deploy/k8s: ingest works as
// its own user (streams, the revocation bucket, the IMAP IDLE lease
// bucket, publishing mail.received),
// and that user cannot publish mail.classified, which the classifier's can.
func TestNATSPermissionsOfTheDeployment(t *testing.T) {
	n := testenv.NATSWithDeployAuth(t, "../../deploy/k8s/components/nats/nats.yaml")
	w := newWorld(t)
	w.natsURL, w.topo = n.URL("ingest"), eventbus.Topology{Replicas: 1} // the deployment's subjects have no prefix
	// With IMAP IDLE on, ingest opens and writes its lease bucket too.
	h := w.start(t, testenv.SQLiteURL(t), func(c *ingest.Config) { c.IMAPIdleMax = 1 })
	ada := h.as(t, "ada", "user")
	if _, err := h.client.CreateMailbox(ada, &ingestv1.CreateMailboxRequest{Parent: "users/ada", MailboxId: "inbox",
		Mailbox: &ingestv1.Mailbox{Provider: ingestv1.Provider_PROVIDER_IMPORT}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.ImportMessages(ada, &ingestv1.ImportMessagesRequest{Parent: "users/ada/mailboxes/inbox",
		Messages: []*ingestv1.RawMessage{{Raw: mail(t, "alternative.eml")}}}); err != nil {
		t.Fatalf("ImportMessages as the NATS user ingest: %v", err)
	}
	if got := len(h.received(t)); got != 1 {
		t.Fatalf("%d received events, want 1", got)
	}

	publishAs := func(user, subject string) error {
		violations := make(chan error, 4)
		nc, err := nats.Connect(n.URL(user), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			violations <- err
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, perr := js.Publish(ctx, subject, []byte("forged"))
		select {
		case v := <-violations:
			return v
		case <-time.After(200 * time.Millisecond):
		}
		return perr
	}
	// mail.classified, and mail.batch (the mail waiting in OpenAI batches,
	// which ingest counts in its sync jobs), are the classifier's to publish.
	for _, subject := range []string{"mail.classified.ada", "mail.batch.ada"} {
		err := publishAs("ingest", subject)
		if err == nil || !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("ingest publishing %s: %v, want a permissions violation", subject, err)
		}
		if err := publishAs("classifier", subject); err != nil {
			t.Errorf("the classifier publishing %s: %v, want it stored", subject, err)
		}
	}
}
