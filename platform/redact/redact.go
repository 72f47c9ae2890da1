// Package redact hides the secrets in values that are logged or shown: the
// credentials of a URL (postgres://user:pass@…, nats://token@…), query
// parameters that may carry one (?password=…, ?sslkey=…), and the same
// settings of a key=value connection string (host=db password=…). Every service logs
// its configuration through it, so that there is one rule for what is masked.
package redact

import (
	"net/url"
	"strings"
)

// Mask stands where a secret was.
const Mask = "xxxxx"

// URL returns raw, a URL or a comma-separated list of them (NATS_URL), with
// every user-info part and every secret-looking query value masked, or a
// libpq key=value connection string with every secret-looking value
// masked. What parses as neither is masked whole: it might be a secret.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") && strings.Contains(raw, "=") {
		return keywordValue(raw)
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

// keywordValue masks a libpq connection string of keyword=value settings
// separated by white space, where a value may be single-quoted with
// backslash escapes (password='a b\'c'). A string that does not follow
// that form is masked whole.
func keywordValue(raw string) string {
	var out []string
	rest := strings.TrimSpace(raw)
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return Mask
		}
		key := strings.TrimSpace(rest[:eq])
		if key == "" || strings.ContainsAny(key, " \t\r\n'") {
			return Mask
		}
		rest = strings.TrimLeft(rest[eq+1:], " \t\r\n")
		var value string
		if strings.HasPrefix(rest, "'") {
			end, closed := 1, false
			for end < len(rest) {
				if rest[end] == '\\' {
					end += 2
					continue
				}
				if rest[end] == '\'' {
					closed = true
					break
				}
				end++
			}
			if !closed {
				return Mask
			}
			value, rest = rest[:end+1], rest[end+1:]
		} else {
			end := strings.IndexAny(rest, " \t\r\n")
			if end < 0 {
				end = len(rest)
			}
			value, rest = rest[:end], rest[end:]
		}
		if secretKey(key) {
			value = Mask
		}
		out = append(out, key+"="+value)
		rest = strings.TrimLeft(rest, " \t\r\n")
	}
	return strings.Join(out, " ")
}
