package store_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store"
)

// receiver is a real HTTP endpoint that checks every delivery's signature
// the way the README tells receivers to, and answers with the status that
// fail says.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	fail   func(attempt int) bool
	got    []delivery
	wake   chan struct{}
}

type delivery struct {
	eventID string
	event   map[string]any
	ok      bool
}

func newReceiver(t *testing.T, fail func(attempt int) bool) *receiver {
	r := &receiver{t: t, fail: fail, wake: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.wake <- struct{}{} }()
	// Mailroom-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
	sig := req.Header.Get("Mailroom-Signature")
	var ts, v1 string
	for _, part := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write([]byte(ts + "." + string(body)))
	sec, err := strconv.ParseInt(ts, 10, 64)
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(v1)) || err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		r.t.Errorf("delivery with a bad signature %q", sig)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		r.t.Errorf("delivery body is not JSON: %v", err)
	}
	ok := !r.fail(len(r.got) + 1)
	r.got = append(r.got, delivery{eventID: req.Header.Get("Mailroom-Event-Id"), event: ev, ok: ok})
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor waits until cond holds of the deliveries, or fails after a minute.
func (r *receiver) waitFor(what string, cond func([]delivery) bool) []delivery {
	r.t.Helper()
	deadline := time.After(time.Minute)
	for {
		if d := r.deliveries(); cond(d) {
			return d
		}
		select {
		case <-r.wake:
		case <-deadline:
			r.t.Fatalf("%s: not within a minute; deliveries: %+v", what, r.deliveries())
		}
	}
}

func webhookEnv(t *testing.T, retryFor time.Duration) (env, context.Context) {
	e := start(t, testenv.SQLiteURL(t), func(c *store.Config) {
		c.WebhookAllowHosts = []string{"127.0.0.1"}
		c.WebhookMinBackoff, c.WebhookMaxBackoff = 20*time.Millisecond, 100*time.Millisecond
		c.WebhookRetryFor = retryFor
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return e, authn.OutgoingToken(ctx, e.auth.Token("ada", false))
}

func classify(t *testing.T, e env, user, id string) {
	t.Helper()
	v := classifiedEvent(id, "newsletters", content("Weekly "+id, time.Now().Add(-time.Minute)))
	v.User, v.Mailbox, v.Message = user, "users/"+user+"/mailboxes/inbox", "users/"+user+"/messages/"+id
	if _, err := eventbus.Publish(context.Background(), e.js, e.topo.ClassifiedSubject(user), "classified/"+v.Message, v); err != nil {
		t.Fatal(err)
	}
}

func TestWebhooks(t *testing.T) {
	e, ada := webhookEnv(t, time.Hour)
	fails := newReceiver(t, func(n int) bool { return n <= 2 }) // two failures, then success

	// Create: the secret comes once.
	created, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{
		Parent: "users/me", WebhookId: "crm", Webhook: &storev1.Webhook{Url: fails.srv.URL + "/hook", DisplayName: "CRM"},
	})
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	w := created.GetWebhook()
	if w.GetName() != "users/ada/webhooks/crm" || !strings.HasPrefix(w.GetSecret(), "whsec_") || w.GetState() != storev1.WebhookState_WEBHOOK_STATE_ACTIVE {
		t.Fatalf("created webhook = %v", w)
	}
	fails.secret = w.GetSecret()
	got, err := e.client.GetWebhook(ada, &storev1.GetWebhookRequest{Name: "users/me/webhooks/crm"})
	if err != nil || got.GetWebhook().GetSecret() != "" || got.GetWebhook().GetUrl() != fails.srv.URL+"/hook" {
		t.Errorf("GetWebhook = %v, %v; want it without its secret", got, err)
	}
	if _, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{Parent: "users/me", WebhookId: "crm",
		Webhook: &storev1.Webhook{Url: fails.srv.URL}}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("a second webhook crm: %v, want AlreadyExists", err)
	}

	// The SSRF guard: private, loopback and metadata addresses are refused
	// unless allowed, and plain http only to an allowed host.
	for _, url := range []string{
		"https://127.0.0.2/hook", "https://169.254.169.254/latest", "https://10.0.0.1/", "https://[::1]/",
		"http://203.0.113.10/hook", "ftp://example.com/", "https://user:pw@example.com/", "/relative",
	} {
		_, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{Parent: "users/me", Webhook: &storev1.Webhook{Url: url}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("CreateWebhook(%s) = %v, want InvalidArgument", url, err)
		}
	}
	// Another user's webhooks are not ada's to make, see or delete.
	if _, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{Parent: "users/bob", Webhook: &storev1.Webhook{Url: fails.srv.URL}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("creating bob's webhook as ada: %v", err)
	}

	// A verdict of ada's is delivered, retried through two failures with the
	// same event id; bob's verdicts never reach ada's endpoint.
	classify(t, e, "bob", "b1")
	classify(t, e, "ada", "a1")
	ds := fails.waitFor("a successful delivery", func(d []delivery) bool { return len(d) >= 3 })
	if len(ds) != 3 || ds[0].ok || ds[1].ok || !ds[2].ok {
		t.Fatalf("deliveries = %+v, want two failures then a success", ds)
	}
	for _, d := range ds {
		if d.eventID != ds[0].eventID || d.event["id"] != d.eventID {
			t.Errorf("retries carry event ids %q (body %v), want %q each time", d.eventID, d.event["id"], ds[0].eventID)
		}
		m, _ := d.event["message"].(map[string]any)
		cl, _ := m["classification"].(map[string]any)
		if d.event["type"] != "message.classified" || d.event["webhook"] != "users/ada/webhooks/crm" ||
			m["name"] != "users/ada/messages/a1" || cl["category"] != "newsletters" {
			t.Errorf("delivered event = %v", d.event)
		}
	}
	var hook *storev1.Webhook
	for hook.GetLastSuccessTime() == nil {
		g, err := e.client.GetWebhook(ada, &storev1.GetWebhookRequest{Name: "users/ada/webhooks/crm"})
		if err != nil {
			t.Fatal(err)
		}
		hook = g.GetWebhook()
	}
	if hook.GetConsecutiveFailures() != 0 || hook.GetLastError() != "HTTP 500" || hook.GetLastFailureTime() == nil {
		t.Errorf("after the success: %v", hook)
	}

	list, err := e.client.ListWebhooks(ada, &storev1.ListWebhooksRequest{Parent: "users/me"})
	if err != nil || len(list.GetWebhooks()) != 1 || list.GetWebhooks()[0].GetSecret() != "" {
		t.Errorf("ListWebhooks = %v, %v", list, err)
	}
	if _, err := e.client.DeleteWebhook(ada, &storev1.DeleteWebhookRequest{Name: "users/ada/webhooks/crm"}); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	if _, err := e.client.GetWebhook(ada, &storev1.GetWebhookRequest{Name: "users/ada/webhooks/crm"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetWebhook after delete: %v", err)
	}
}

func TestWebhookDisabledAfterPersistentFailure(t *testing.T) {
	e, ada := webhookEnv(t, 300*time.Millisecond)
	down := newReceiver(t, func(int) bool { return true })
	created, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{
		Parent: "users/me", WebhookId: "down", Webhook: &storev1.Webhook{Url: down.srv.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	down.secret = created.GetWebhook().GetSecret()
	classify(t, e, "ada", "a1")
	var hook *storev1.Webhook
	deadline := time.Now().Add(time.Minute)
	for hook.GetState() != storev1.WebhookState_WEBHOOK_STATE_DISABLED {
		if time.Now().After(deadline) {
			t.Fatalf("webhook not disabled within a minute: %v", hook)
		}
		down.waitFor("another attempt", func(d []delivery) bool { return len(d) > 0 })
		g, err := e.client.GetWebhook(ada, &storev1.GetWebhookRequest{Name: "users/ada/webhooks/down"})
		if err != nil {
			t.Fatal(err)
		}
		hook = g.GetWebhook()
	}
	if !strings.Contains(hook.GetDisableReason(), "HTTP 500") || hook.GetConsecutiveFailures() < 2 {
		t.Errorf("disabled webhook = %v", hook)
	}
	// A disabled webhook receives nothing more.
	n := len(down.deliveries())
	classify(t, e, "ada", "a2")
	classify(t, e, "ada", "a3")
	// The verdicts are queued and dropped; a webhook created now gets a3's
	// successor, which shows that the fan-out has passed them.
	up := newReceiver(t, func(int) bool { return false })
	c2, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{Parent: "users/me", WebhookId: "up", Webhook: &storev1.Webhook{Url: up.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	up.secret = c2.GetWebhook().GetSecret()
	classify(t, e, "ada", "a4")
	up.waitFor("the new webhook's delivery", func(d []delivery) bool { return len(d) >= 1 })
	if got := len(down.deliveries()); got != n {
		t.Errorf("the disabled webhook received %d more deliveries", got-n)
	}
}
