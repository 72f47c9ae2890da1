package redact_test

import (
	"strings"
	"testing"

	"mailroom.dev/platform/redact"
)

func TestURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"sqlite://.mailroom/mailroom.db", "sqlite://.mailroom/mailroom.db"},
		{"postgres://ada:hunter2@db:5432/mail?sslmode=require", "postgres://ada:xxxxx@db:5432/mail?sslmode=require"},
		{"postgres://db/mail?password=hunter2&sslmode=disable", "postgres://db/mail?password=xxxxx&sslmode=disable"},
		{"postgres://db/mail?sslkey=/k.pem", "postgres://db/mail?sslkey=xxxxx"},
		{"nats://s3cr3t-token@nats:4222", "nats://xxxxx@nats:4222"},
		{"nats://a:pw@n1:4222, nats://n2:4222", "nats://a:xxxxx@n1:4222,nats://n2:4222"},
		{"http://[::1:bad", "xxxxx"},
		// libpq key=value connection strings
		{"host=db user=ada password=hunter2 dbname=mail sslmode=disable", "host=db user=ada password=xxxxx dbname=mail sslmode=disable"},
		{"host=db  password = 'hunter2 s3cr3t\\' x' sslkey=/k.pem port=5432", "host=db password=xxxxx sslkey=xxxxx port=5432"},
		{"password='hunter2", "xxxxx"},
		{"=hunter2", "xxxxx"},
	} {
		got := redact.URL(tt.in)
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, secret := range []string{"hunter2", "s3cr3t", "pw@", "/k.pem"} {
			if strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q keeps %q", tt.in, got, secret)
			}
		}
	}
}
