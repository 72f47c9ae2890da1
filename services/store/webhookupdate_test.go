package store_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
)

// TestUpdateWebhook disables a webhook through persistent failure, then
// re-enables it at a working URL with UpdateWebhook: the disable reason and
// failure count are cleared, the secret is kept, and the next
// classification is delivered, signed as before. Then the user pauses it
// (DISABLED) and nothing is delivered until it is ACTIVE again; its
// secret is rotated and the next delivery is signed with the new one. On
// both backends, with the real NATS.
func TestUpdateWebhook(t *testing.T) {
	for backend, dbURL := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			e, ada := webhookEnvOn(t, dbURL(t), 300*time.Millisecond)
			down := newReceiver(t, func(int) bool { return true })
			up := newReceiver(t, func(int) bool { return false })
			probe := newReceiver(t, func(int) bool { return false })
			created, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{
				Parent: "users/me", WebhookId: "crm", Webhook: &storev1.Webhook{Url: down.srv.URL, DisplayName: "CRM"},
			})
			if err != nil {
				t.Fatal(err)
			}
			down.secret, up.secret = created.GetWebhook().GetSecret(), created.GetWebhook().GetSecret()
			get := func() *storev1.Webhook {
				t.Helper()
				g, err := e.client.GetWebhook(ada, &storev1.GetWebhookRequest{Name: "users/ada/webhooks/crm"})
				if err != nil {
					t.Fatal(err)
				}
				return g.GetWebhook()
			}
			classify(t, e, "ada", "a1")
			deadline := time.Now().Add(time.Minute)
			for get().GetState() != storev1.WebhookState_WEBHOOK_STATE_DISABLED {
				if time.Now().After(deadline) {
					t.Fatalf("webhook not disabled within a minute: %v", get())
				}
				time.Sleep(20 * time.Millisecond)
			}

			// Bad updates change nothing.
			for _, tc := range []struct {
				name string
				req  *storev1.UpdateWebhookRequest
				want codes.Code
			}{
				{"no webhook", &storev1.UpdateWebhookRequest{}, codes.InvalidArgument},
				{"a field not updatable", &storev1.UpdateWebhookRequest{
					Webhook:    &storev1.Webhook{Name: "users/ada/webhooks/crm", Secret: "whsec_mine"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secret"}}}, codes.InvalidArgument},
				{"nothing to change", &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{Name: "users/ada/webhooks/crm"}}, codes.InvalidArgument},
				{"state unspecified", &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{Name: "users/ada/webhooks/crm"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}, codes.InvalidArgument},
				{"a metadata address", &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{Name: "users/ada/webhooks/crm",
					Url: "https://169.254.169.254/latest", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE}}, codes.InvalidArgument},
				{"http to a host not allowed", &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{Name: "users/ada/webhooks/crm",
					Url: "http://203.0.113.10/hook"}}, codes.InvalidArgument},
				{"no such webhook", &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{Name: "users/ada/webhooks/nope",
					State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE}}, codes.NotFound},
				{"bob's webhook", &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{Name: "users/bob/webhooks/crm",
					State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE}}, codes.PermissionDenied},
			} {
				if _, err := e.client.UpdateWebhook(ada, tc.req); status.Code(err) != tc.want {
					t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
				}
			}
			if w := get(); w.GetState() != storev1.WebhookState_WEBHOOK_STATE_DISABLED || w.GetUrl() != down.srv.URL {
				t.Fatalf("after refused updates: %v", w)
			}

			// Re-enabled at a working URL (an empty mask: the fields set).
			upd, err := e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{
				Name: "users/me/webhooks/crm", Url: up.srv.URL + "/hook", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE,
			}})
			if err != nil {
				t.Fatalf("UpdateWebhook: %v", err)
			}
			w := upd.GetWebhook()
			if w.GetState() != storev1.WebhookState_WEBHOOK_STATE_ACTIVE || w.GetDisableReason() != "" || w.GetConsecutiveFailures() != 0 ||
				w.GetUrl() != up.srv.URL+"/hook" || w.GetDisplayName() != "CRM" || w.GetSecret() != "" || w.GetName() != "users/ada/webhooks/crm" {
				t.Errorf("re-enabled webhook = %v", w)
			}
			classify(t, e, "ada", "a2")
			ds := up.waitFor("a delivery after re-enabling", func(d []delivery) bool { return len(d) >= 1 })
			if m, _ := ds[0].event["message"].(map[string]any); m["name"] != "users/ada/messages/a2" {
				t.Errorf("first delivery after re-enabling = %v, want a2's", ds[0].event)
			}

			// Paused by its user: a probe webhook shows that a3's fan-out has
			// run, and crm got nothing of it; a4, after it is active again, it gets.
			c2, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{Parent: "users/me", WebhookId: "probe", Webhook: &storev1.Webhook{Url: probe.srv.URL}})
			if err != nil {
				t.Fatal(err)
			}
			probe.secret = c2.GetWebhook().GetSecret()
			paused, err := e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{
				Webhook:    &storev1.Webhook{Name: "users/ada/webhooks/crm", State: storev1.WebhookState_WEBHOOK_STATE_DISABLED, DisplayName: "ignored"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if p := paused.GetWebhook(); p.GetState() != storev1.WebhookState_WEBHOOK_STATE_DISABLED || p.GetDisableReason() == "" || p.GetDisplayName() != "CRM" {
				t.Errorf("paused webhook = %v", p)
			}
			classify(t, e, "ada", "a3")
			probe.waitFor("a3 at the probe", func(d []delivery) bool { return len(d) >= 1 })
			if _, err := e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{
				Webhook:    &storev1.Webhook{Name: "users/ada/webhooks/crm", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"*"}},
			}); status.Code(err) != codes.InvalidArgument {
				t.Errorf(`mask "*" without a url: %v, want InvalidArgument`, err)
			}
			if _, err := e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{
				Webhook: &storev1.Webhook{Name: "users/ada/webhooks/crm", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE},
			}); err != nil {
				t.Fatal(err)
			}
			classify(t, e, "ada", "a4")
			ds = up.waitFor("a4 after the pause", func(d []delivery) bool { return len(d) >= 2 })
			var names []string
			for _, d := range ds {
				m, _ := d.event["message"].(map[string]any)
				names = append(names, m["name"].(string))
			}
			if !slices.Equal(names, []string{"users/ada/messages/a2", "users/ada/messages/a4"}) {
				t.Errorf("crm received %v, want a2 and a4 (nothing while paused)", names)
			}

			// A new secret, shown once, signs the next delivery (the
			// receiver refuses any other signature).
			rot, err := e.client.RotateWebhookSecret(ada, &storev1.RotateWebhookSecretRequest{Name: "users/me/webhooks/crm"})
			if err != nil {
				t.Fatalf("RotateWebhookSecret: %v", err)
			}
			fresh := rot.GetWebhook().GetSecret()
			if !strings.HasPrefix(fresh, "whsec_") || fresh == created.GetWebhook().GetSecret() || rot.GetWebhook().GetState() != storev1.WebhookState_WEBHOOK_STATE_ACTIVE {
				t.Errorf("rotated webhook = %v", rot.GetWebhook())
			}
			if v, ok := e.auth.Secret("users/ada/webhooks/crm/secret"); !ok || string(v) != fresh {
				t.Error("the vault does not hold the rotated secret")
			}
			if g := get(); g.GetSecret() != "" {
				t.Errorf("GetWebhook shows the secret after rotation: %v", g)
			}
			up.mu.Lock()
			up.secret = fresh
			up.mu.Unlock()
			classify(t, e, "ada", "a5")
			up.waitFor("a5 signed with the new secret", func(d []delivery) bool { return len(d) >= 3 })
			if _, err := e.client.RotateWebhookSecret(ada, &storev1.RotateWebhookSecretRequest{Name: "users/bob/webhooks/crm"}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("rotating bob's secret as ada: %v", err)
			}
			if _, err := e.client.RotateWebhookSecret(ada, &storev1.RotateWebhookSecretRequest{Name: "users/ada/webhooks/nope"}); status.Code(err) != codes.NotFound {
				t.Errorf("rotating a webhook that does not exist: %v", err)
			}

			// A webhook from before the secrets moved to the vault (store
			// migration 00006) has none: it cannot be re-enabled.
			legacyWebhook(t, e.dbURL, "ada", "old")
			_, err = e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{
				Webhook: &storev1.Webhook{Name: "users/ada/webhooks/old", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE},
			})
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "create it again") {
				t.Errorf("re-enabling a webhook without a secret: %v, want FailedPrecondition", err)
			}
			// Given a secret, it can.
			if _, err := e.client.RotateWebhookSecret(ada, &storev1.RotateWebhookSecretRequest{Name: "users/ada/webhooks/old"}); err != nil {
				t.Fatal(err)
			}
			re, err := e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{
				Webhook: &storev1.Webhook{Name: "users/ada/webhooks/old", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE},
			})
			if err != nil || re.GetWebhook().GetState() != storev1.WebhookState_WEBHOOK_STATE_ACTIVE || re.GetWebhook().GetDisableReason() != "" {
				t.Errorf("re-enabling the old webhook after rotating its secret: %v, %v", re, err)
			}
		})
	}
}

// legacyWebhook inserts a disabled webhook row, as migration 00006 left
// those made before it, with no secret in the vault.
func legacyWebhook(t *testing.T, dbURL, user, id string) {
	t.Helper()
	ctx := context.Background()
	backend, dsn, err := sqldb.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	created := any(time.Now().UnixMicro())
	if backend == sqldb.Postgres {
		pool, err := sqldb.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		db, created = stdlib.OpenDBFromPool(pool), time.Now()
	} else if db, err = sqldb.OpenSQLite(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO store_webhooks (user_id, id, url, display_name, state, create_time, disable_reason)
VALUES ($1, $2, 'https://example.com/hook', '', 'disabled', $3, 'created before signing secrets moved to the vault')`, user, id, created); err != nil {
		t.Fatal(err)
	}
}
