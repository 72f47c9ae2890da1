package webhook_test

import (
	"testing"
	"time"

	"mailroom.dev/services/store/internal/webhook"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1733212800, 0)
	body := []byte(`{"id":"evt_1"}`)
	// The documented scheme, computed independently (Python's hmac):
	// HMAC-SHA256 keyed with "whsec_test" of "1733212800.{\"id\":\"evt_1\"}".
	const want = "t=1733212800,v1=33f922dc7d6b7c6a177987921e42b73f536b0cd464683af24ecf787514e2999d"
	got := webhook.Sign("whsec_test", now, body)
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if err := webhook.Verify("whsec_test", got, body, now, 5*time.Minute); err != nil {
		t.Fatalf("Verify(Sign) = %v", err)
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		at             time.Time
	}{
		"another secret":    {"whsec_other", got, body, now},
		"another body":      {"whsec_test", got, []byte(`{"id":"evt_2"}`), now},
		"too late (replay)": {"whsec_test", got, body, now.Add(6 * time.Minute)},
		"no timestamp":      {"whsec_test", "v1=00", body, now},
		"a made-up v1":      {"whsec_test", "t=1733212800,v1=00ff", body, now},
		"empty header":      {"whsec_test", "", body, now},
	} {
		if err := webhook.Verify(tc.secret, tc.header, tc.body, tc.at, 5*time.Minute); err == nil {
			t.Errorf("%s: Verify accepted it", name)
		}
	}
}

func TestCheckURL(t *testing.T) {
	allowed := func(h string) bool { return h == "127.0.0.1" }
	for url, ok := range map[string]bool{
		"https://hooks.example.com/x": true,
		"http://127.0.0.1:8080/hook":  true,
		"http://hooks.example.com/x":  false,
		"https://u:p@example.com/":    false,
		"https://example.com/#frag":   false,
		"ftp://example.com/":          false,
		"/relative":                   false,
		"mailto:a@example.com":        false,
	} {
		if got := webhook.CheckURL(url, allowed) == ""; got != ok {
			t.Errorf("CheckURL(%s) accepted = %v, want %v", url, got, ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := webhook.Policy{MinBackoff: 10 * time.Second, MaxBackoff: time.Hour}
	for n, limit := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 5: 160 * time.Second, 40: time.Hour} {
		for range 20 {
			if d := p.Backoff(n); d < limit/2 || d > limit {
				t.Errorf("Backoff(%d) = %s, want within [%s, %s]", n, d, limit/2, limit)
			}
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, b := webhook.NewSecret(), webhook.NewSecret()
	if a == b || len(a) < 40 || a[:6] != webhook.SecretPrefix {
		t.Errorf("secrets %q, %q", a, b)
	}
}
