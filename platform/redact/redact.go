// Package redact hides the secrets in values that are logged or shown: the
// credentials of a URL (postgres://user:pass@…, nats://token@…) and query
// parameters that may carry one (?password=…, ?sslkey=…). Every service logs
// its configuration through it, so that there is one rule for what is masked.
package redact

import (
	"net/url"
	"strings"
)

// Mask stands where a secret was.
const Mask = "xxxxx"

// URL returns raw, a URL or a comma-separated list of them (NATS_URL), with
// every user-info part and every secret-looking query value masked. What
// does not parse as a URL is masked whole: it might be a secret.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = one(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func one(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mask
	}
	if u.User != nil {
		// A user name alone may be a token (nats://TOKEN@host): mask it too.
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		} else {
			u.User = url.User(Mask)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if secretKey(k) {
				q.Set(k, Mask)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"pass", "secret", "token", "key", "auth"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
