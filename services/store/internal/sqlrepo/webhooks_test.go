package sqlrepo_test

import (
	"context"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/sqlrepo"
	"mailroom.dev/services/store/internal/webhook"
)

// TestWebhookEnableTime checks enable_time on both backends: it is the
// create time until the webhook is set ACTIVE from DISABLED, which sets it
// in the same update; ACTIVE again while ACTIVE leaves it; and Disable does
// nothing to a webhook enabled after its enabledBy.
func TestWebhookEnableTime(t *testing.T) {
	for name, newURL := range testenv.DatabaseURLs() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db, err := sqlrepo.Open(ctx, newURL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			r := db.Webhooks
			created := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
			if err := r.CreateWebhook(ctx, webhook.Webhook{User: "ada", ID: "crm", URL: "https://example.com/",
				State: webhook.StateActive, CreateTime: created}); err != nil {
				t.Fatal(err)
			}
			get := func() webhook.Webhook {
				t.Helper()
				w, err := r.GetWebhook(ctx, "ada", "crm")
				if err != nil {
					t.Fatal(err)
				}
				return w
			}
			if w := get(); !w.EnableTime.Equal(created) {
				t.Errorf("EnableTime of a new webhook = %v, want its create time %v", w.EnableTime, created)
			}
			active, disabled := webhook.StateActive, webhook.StateDisabled
			enable := func(at time.Time) webhook.Webhook {
				t.Helper()
				w, err := r.UpdateWebhook(ctx, "ada", "crm", webhook.Update{State: &active, EnableTime: at})
				if err != nil {
					t.Fatal(err)
				}
				return w
			}
			// ACTIVE while ACTIVE: not a re-enable.
			if w := enable(created.Add(time.Hour)); !w.EnableTime.Equal(created) {
				t.Errorf("EnableTime after ACTIVE while ACTIVE = %v, want %v", w.EnableTime, created)
			}
			if ok, err := r.Disable(ctx, "ada", "crm", "failing", created); err != nil || !ok {
				t.Fatalf("Disable(enabledBy create time) = %v, %v; want true", ok, err)
			}
			reenabled := created.Add(2 * time.Hour)
			if w := enable(reenabled); w.State != webhook.StateActive || !w.EnableTime.Equal(reenabled) || !get().EnableTime.Equal(reenabled) {
				t.Errorf("re-enabled: %+v, want EnableTime %v", w, reenabled)
			}
			// A delivery that began before the re-enable does not disable it.
			if ok, err := r.Disable(ctx, "ada", "crm", "failing", reenabled.Add(-time.Microsecond)); err != nil || ok {
				t.Errorf("Disable(enabledBy before the re-enable) = %v, %v; want false", ok, err)
			}
			if w := get(); w.State != webhook.StateActive {
				t.Errorf("state = %s, want active", w.State)
			}
			// Paused by its user and set ACTIVE: a re-enable too.
			if _, err := r.UpdateWebhook(ctx, "ada", "crm", webhook.Update{State: &disabled, DisableReason: "paused"}); err != nil {
				t.Fatal(err)
			}
			later := reenabled.Add(time.Hour)
			if w := enable(later); !w.EnableTime.Equal(later) {
				t.Errorf("EnableTime after un-pausing = %v, want %v", w.EnableTime, later)
			}
			if ok, err := r.Disable(ctx, "ada", "crm", "failing", later); err != nil || !ok || get().State != webhook.StateDisabled {
				t.Errorf("Disable(enabledBy = EnableTime) = %v, %v; want true", ok, err)
			}
		})
	}
}
