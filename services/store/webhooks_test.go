package store_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/sqldb"
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
	return webhookEnvOn(t, testenv.SQLiteURL(t), retryFor)
}

func webhookEnvOn(t *testing.T, databaseURL string, retryFor time.Duration) (env, context.Context) {
	e := start(t, databaseURL, func(c *store.Config) {
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
	if v, ok := e.auth.Secret("users/ada/webhooks/crm/secret"); !ok || string(v) != w.GetSecret() {
		t.Errorf("the vault holds %q, want the webhook's secret", v)
	}
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
	if _, ok := e.auth.Secret("users/ada/webhooks/crm/secret"); ok {
		t.Error("the secret of a deleted webhook is still in the vault")
	}
}

// TestWebhookSecretNotInDatabase checks that a webhook's secret is in
// auth's vault and nowhere in the store's tables, on both backends, and
// that purging the user deletes it from the vault.
func TestWebhookSecretNotInDatabase(t *testing.T) {
	for backend, url := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			e := start(t, url(t), func(c *store.Config) { c.WebhookAllowHosts = []string{"127.0.0.1"} })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ada := authn.OutgoingToken(ctx, e.auth.Token("ada", false))
			var secrets []string
			for _, id := range []string{"one", "two"} {
				created, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{
					Parent: "users/ada", WebhookId: id, Webhook: &storev1.Webhook{Url: "http://127.0.0.1:9/hook"},
				})
				if err != nil {
					t.Fatalf("CreateWebhook: %v", err)
				}
				secret := created.GetWebhook().GetSecret()
				if v, ok := e.auth.Secret("users/ada/webhooks/" + id + "/secret"); !ok || string(v) != secret {
					t.Fatalf("the vault holds %q for %s, want its secret", v, id)
				}
				secrets = append(secrets, secret)
			}
			dump := dumpTables(t, e.dbURL)
			if !strings.Contains(dump, "http://127.0.0.1:9/hook") {
				t.Fatalf("the dump does not show the webhooks: %s", dump)
			}
			for _, secret := range secrets {
				if strings.Contains(dump, secret) || strings.Contains(dump, secret[len("whsec_"):]) {
					t.Errorf("the store's database holds a webhook secret")
				}
			}
			auth := authn.OutgoingToken(ctx, e.auth.ServiceToken("auth"))
			resp, err := e.client.PurgeUserData(auth, &storev1.PurgeUserDataRequest{User: "ada"})
			if err != nil || resp.GetDeleted()["webhooks"] != 2 {
				t.Fatalf("PurgeUserData = %v, %v; want 2 webhooks deleted", resp, err)
			}
			for _, id := range []string{"one", "two"} {
				if _, ok := e.auth.Secret("users/ada/webhooks/" + id + "/secret"); ok {
					t.Errorf("the secret of %s outlived the user's purge", id)
				}
			}
		})
	}
}

// dumpTables returns every row of every table of the database at dbURL
// as text.
func dumpTables(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	backend, dsn, err := sqldb.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	listTables := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if backend == sqldb.Postgres {
		pool, err := sqldb.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		db = stdlib.OpenDBFromPool(pool)
		listTables = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	} else if db, err = sqldb.OpenSQLite(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.QueryContext(ctx, listTables)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out.Write(b)
				} else {
					fmt.Fprint(&out, v)
				}
				out.WriteByte('|')
			}
			out.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out.String()
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
