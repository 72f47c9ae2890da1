package store_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store"
)

// TestWebhookReenableRestartsRetryPeriod checks that a delivery queued
// before its webhook was re-enabled does not disable it again at its next
// failure: the retry period runs from the re-enabling. The receiver fails
// every delivery and holds a2's first attempt while a1 fails for the whole
// retry period and disables the webhook; the user re-enables it; then a2's
// held attempt fails. The webhook stays ACTIVE (a2 is retried, which a
// disabled webhook never is) and is disabled only after a2 has failed for
// another retry period. On both backends, with the real NATS.
func TestWebhookReenableRestartsRetryPeriod(t *testing.T) {
	const retryFor = time.Second
	for backend, dbURL := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) {
			e := start(t, dbURL(t), func(c *store.Config) {
				c.WebhookAllowHosts = []string{"127.0.0.1"}
				c.WebhookMinBackoff, c.WebhookMaxBackoff = 20*time.Millisecond, 100*time.Millisecond
				c.WebhookRetryFor = retryFor
				c.WebhookTimeout = 2 * time.Minute // a2's first attempt is held
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ada := authn.OutgoingToken(ctx, e.auth.Token("ada", false))

			var (
				mu       sync.Mutex
				attempts = map[string]int{} // by message name
			)
			count := func(msg string) int {
				mu.Lock()
				defer mu.Unlock()
				return attempts[msg]
			}
			held, release := make(chan struct{}), make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				body, _ := io.ReadAll(req.Body)
				var ev struct {
					Message struct {
						Name string `json:"name"`
					} `json:"message"`
				}
				if err := json.Unmarshal(body, &ev); err != nil {
					t.Errorf("delivery body is not JSON: %v", err)
				}
				mu.Lock()
				attempts[ev.Message.Name]++
				n := attempts[ev.Message.Name]
				mu.Unlock()
				if ev.Message.Name == "users/ada/messages/a2" && n == 1 {
					close(held)
					select {
					case <-release:
					case <-req.Context().Done():
					}
				}
				w.WriteHeader(http.StatusInternalServerError)
			}))
			defer srv.Close()
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()

			if _, err := e.client.CreateWebhook(ada, &storev1.CreateWebhookRequest{
				Parent: "users/me", WebhookId: "crm", Webhook: &storev1.Webhook{Url: srv.URL},
			}); err != nil {
				t.Fatal(err)
			}
			get := func() *storev1.Webhook {
				t.Helper()
				g, err := e.client.GetWebhook(ada, &storev1.GetWebhookRequest{Name: "users/ada/webhooks/crm"})
				if err != nil {
					t.Fatal(err)
				}
				return g.GetWebhook()
			}
			waitDisabled := func(what string) *storev1.Webhook {
				t.Helper()
				deadline := time.Now().Add(time.Minute)
				for {
					if w := get(); w.GetState() == storev1.WebhookState_WEBHOOK_STATE_DISABLED {
						return w
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: webhook not disabled within a minute: %v", what, get())
					}
					time.Sleep(20 * time.Millisecond)
				}
			}

			// a2 is queued and its first attempt held, while the webhook is
			// ACTIVE; a1 fails for the retry period and disables it.
			classify(t, e, "ada", "a2")
			select {
			case <-held:
			case <-time.After(time.Minute):
				t.Fatal("a2 not attempted within a minute")
			}
			classify(t, e, "ada", "a1")
			waitDisabled("a1 failing")
			if n := count("users/ada/messages/a1"); n < 2 {
				t.Fatalf("disabled after %d attempts of a1", n)
			}

			// Re-enabled; then a2's held attempt, queued more than a retry
			// period ago, fails.
			reenabled := time.Now()
			upd, err := e.client.UpdateWebhook(ada, &storev1.UpdateWebhookRequest{Webhook: &storev1.Webhook{
				Name: "users/ada/webhooks/crm", State: storev1.WebhookState_WEBHOOK_STATE_ACTIVE,
			}})
			if err != nil || upd.GetWebhook().GetState() != storev1.WebhookState_WEBHOOK_STATE_ACTIVE {
				t.Fatalf("UpdateWebhook(ACTIVE) = %v, %v", upd, err)
			}
			close(release)

			// A retry of a2 reaches the receiver: after its failure the webhook
			// was still ACTIVE (a disabled webhook's deliveries are dropped).
			deadline := time.Now().Add(time.Minute)
			for count("users/ada/messages/a2") < 2 {
				if w := get(); w.GetState() == storev1.WebhookState_WEBHOOK_STATE_DISABLED {
					t.Fatalf("disabled again %s after the re-enable, by a2's first failure since (a2 attempted %d times): %v",
						time.Since(reenabled).Round(time.Millisecond), count("users/ada/messages/a2"), w)
				}
				if time.Now().After(deadline) {
					t.Fatalf("a2 not retried within a minute: %v", get())
				}
				time.Sleep(10 * time.Millisecond)
			}

			// It is disabled when a2 has failed for a retry period since.
			w := waitDisabled("a2 failing")
			if since := time.Since(reenabled); since < retryFor {
				t.Errorf("disabled %s after the re-enable, before the retry period (%s)", since, retryFor)
			}
			if !strings.Contains(w.GetDisableReason(), "HTTP 500") || count("users/ada/messages/a2") < 3 {
				t.Errorf("disabled webhook = %v after %d attempts of a2", w, count("users/ada/messages/a2"))
			}
		})
	}
}
