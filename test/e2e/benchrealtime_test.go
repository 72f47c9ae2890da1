package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
)

// TestBenchRealtime is `make bench-realtime`: mail delivered at the fake
// Gmail, pushed to the gateway, synced, classified by the rules tier and
// delivered to a messages:watch client (through a gateway of its own that
// is restarted mid-run; the client resumes from its cursor) and to a
// webhook receiver. It measures each mail's latency from its delivery at
// Gmail to each client, and counts mails lost and doubled, and writes
// bench/out/realtime/report.md. It is a benchmark, not a test: it runs only
// with MAILROOM_BENCH_REALTIME=1, and fails only on a lost or doubled mail
// or a missed target.
func TestBenchRealtime(t *testing.T) {
	if os.Getenv("MAILROOM_BENCH_REALTIME") == "" {
		t.Skip("a benchmark: make bench-realtime (MAILROOM_BENCH_REALTIME=1)")
	}
	mails := 200
	interval := 100 * time.Millisecond
	fake := fakegmail.New()
	defer fake.Close()
	acct := fake.AddAccount("ada@gmail.example")
	const audience, pusher, topic = "https://mailroom.example/push/gmail", "push@bench.iam.gserviceaccount.com", "projects/bench/topics/gmail"
	e := start(t, options{extra: map[string]string{
		"GOOGLE_OAUTH_CLIENT_ID": fake.ClientID, "GOOGLE_OAUTH_CLIENT_SECRET": fake.ClientSecret,
		"MAILROOM_PUBLIC_URL": "http://mailroom.invalid", "MAILROOM_GOOGLE_AUTH_URL": fake.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL": fake.TokenURL, "MAILROOM_GOOGLE_REVOKE_URL": fake.RevokeURL,
		"MAILROOM_GMAIL_ENDPOINT": fake.URL, "MAILROOM_GMAIL_QUOTA_PER_MINUTE": "1000000",
		"MAILROOM_SYNC_INTERVAL": "0", "MAILROOM_GMAIL_PUBSUB_TOPIC": topic,
		"MAILROOM_GMAIL_PUSH_AUDIENCE": audience, "MAILROOM_GMAIL_PUSH_SERVICE_ACCOUNT": pusher,
		"MAILROOM_GOOGLE_JWKS_URL": fake.JWKSURL, "MAILROOM_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
		"MAILROOM_LOG_LEVEL": "warn",
	}})
	fake.SetPush(e.url+"/push/gmail", audience, pusher, topic)
	key := e.user("ada")
	mb := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", key, map[string]any{"provider": "GMAIL"})
	// As a browser does: the gateway binds the consent to it with a cookie.
	if code := browse(t, e.url, mb["authorizationUrl"].(string), nil); code != http.StatusOK {
		t.Fatalf("consent: the callback answered %d", code)
	}
	job := e.must(200, "POST", "/v1/users/ada/mailboxes/gmail:sync", key, map[string]any{})
	e.watch(key, job["name"].(string))

	var mu sync.Mutex
	delivered := map[string]time.Time{}
	watched := map[string]time.Time{}
	hooked := map[string]time.Time{}
	doubledWatch, doubledHook := 0, 0

	// The webhook receiver (signatures are checked by TestGmailPush).
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Message struct {
				Subject string `json:"subject"`
			} `json:"message"`
		}
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		if _, ok := hooked[ev.Message.Subject]; ok {
			doubledHook++
		} else {
			hooked[ev.Message.Subject] = now
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	e.must(200, "POST", "/v1/users/ada/webhooks", key, map[string]any{"url": hook.URL})

	// The watching client, resuming from its cursor whenever its stream ends.
	gw := startGateway(t, e, "127.0.0.1:0")
	base := gw.url
	var restartOnce sync.Once
	restarted := make(chan struct{})
	done := make(chan struct{})
	go func() {
		cursor := ""
		for {
			mu.Lock()
			u := base
			mu.Unlock()
			events := openWatch(t, u, key, cursor, false)
			for ev := range events {
				if ev.Err != "" {
					break
				}
				cursor = ev.Cursor
				if ev.Heartbeat || ev.Message["state"] != "MESSAGE_STATE_CLASSIFIED" {
					continue
				}
				s, _ := ev.Message["subject"].(string)
				now := time.Now()
				mu.Lock()
				if _, ok := watched[s]; ok {
					doubledWatch++
				} else {
					watched[s] = now
				}
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-restarted:
			}
		}
	}()

	start := time.Now()
	for i := range mails {
		if i == mails/2 {
			restartOnce.Do(func() {
				gw.stop()
				gw2 := startGateway(t, e, "127.0.0.1:0")
				mu.Lock()
				base = gw2.url
				mu.Unlock()
				close(restarted)
			})
		}
		subject := fmt.Sprintf("Bench Weekly #%04d", i)
		raw := fmt.Sprintf("From: \"Bench Weekly\" <news@bench.example>\r\nTo: ada@gmail.example\r\nSubject: %s\r\n"+
			"Date: %s\r\nMessage-ID: <bw%d@bench.example>\r\nList-Unsubscribe: <https://bench.example/u>\r\n\r\nIssue %d.\r\n",
			subject, time.Now().Format(time.RFC1123Z), i, i)
		mu.Lock()
		delivered[subject] = time.Now()
		mu.Unlock()
		acct.Add([]byte(raw))
		time.Sleep(interval)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		complete := len(watched) >= mails && len(hooked) >= mails
		mu.Unlock()
		if complete || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(done)
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	lat := func(got map[string]time.Time) (ds []float64, lost int) {
		for s, t0 := range delivered {
			t1, ok := got[s]
			if !ok {
				lost++
				continue
			}
			ds = append(ds, t1.Sub(t0).Seconds())
		}
		slices.Sort(ds)
		return ds, lost
	}
	pct := func(ds []float64, p float64) float64 {
		if len(ds) == 0 {
			return math.NaN()
		}
		return ds[min(len(ds)-1, int(math.Ceil(p*float64(len(ds))))-1)]
	}
	wd, wLost := lat(watched)
	hd, hLost := lat(hooked)
	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "# Real-time delivery benchmark\n\n%s, load average at the end %s, %d mails at one every %s "+
		"delivered to the fake Gmail (push on, scheduled syncs off), classified by the rules tier; the watch client's gateway "+
		"was restarted after mail %d; the run took %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		strings.Join(strings.Fields(string(load))[:3], " "), mails, interval, mails/2, elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| from delivery at Gmail to | p50 | p95 | max | target p95 | lost | doubled |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	fmt.Fprintf(&b, "| a `messages:watch` client (classified) | %.2f s | %.2f s | %.2f s | ≤ 2 s | %d | %d |\n",
		pct(wd, .5), pct(wd, .95), pct(wd, 1), wLost, doubledWatch)
	fmt.Fprintf(&b, "| a webhook receiver | %.2f s | %.2f s | %.2f s | ≤ 3 s | %d | %d |\n",
		pct(hd, .5), pct(hd, .95), pct(hd, 1), hLost, doubledHook)
	fmt.Fprintf(&b, "\nPushes accepted by the gateway: %d.\n", fake.Pushes())
	t.Log("\n" + b.String())
	out := filepath.Join("..", "..", "bench", "out", "realtime")
	if err := os.MkdirAll(out, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(out, "report.md"), []byte(b.String()), 0o644)
	}
	if wLost+hLost+doubledWatch+doubledHook > 0 {
		t.Errorf("lost %d/%d, doubled %d/%d (watch/webhook)", wLost, hLost, doubledWatch, doubledHook)
	}
	if pct(wd, .95) > 2 || pct(hd, .95) > 3 {
		t.Errorf("p95 over target: watch %.2f s (≤ 2), webhook %.2f s (≤ 3)", pct(wd, .95), pct(hd, .95))
	}
}
