package e2e_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookReceiver is a webhook endpoint that checks signatures as the README
// tells receivers to, and counts distinct events.
type hookReceiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	events map[string]time.Time // event id → first arrival
	bad    int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{events: map[string]time.Time{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		var ts, v1 string
		for _, p := range strings.Split(r.Header.Get("Mailroom-Signature"), ",") {
			k, v, _ := strings.Cut(p, "=")
			if k == "t" {
				ts = v
			} else if k == "v1" {
				v1 = v
			}
		}
		mac := hmac.New(sha256.New, []byte(h.secret))
		mac.Write([]byte(ts + "." + string(body)))
		if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(v1)) {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, ok := h.events[r.Header.Get("Mailroom-Event-Id")]; !ok {
			h.events[r.Header.Get("Mailroom-Event-Id")] = time.Now()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url() string { return h.srv.URL + "/hook" }

func (h *hookReceiver) count() (events, bad int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events), h.bad
}

// waitFor waits until n distinct events arrived, or fails after a minute.
func (h *hookReceiver) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, bad := h.count()
		if bad > 0 {
			t.Fatalf("%d deliveries with a bad signature", bad)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook received %d events within a minute, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
