// Package webhook is the store's webhooks: endpoints that a user registers
// to receive every classification of their mail as a signed HTTP POST.
// It holds the domain (the Webhook, its Repository, the checks on a URL,
// the signature scheme, the retry policy) and the Deliverer that POSTs one
// event through the SSRF guard. The queue that carries deliveries and
// retries them for a day is the JetStream adapter's (package
// jetstream/webhookqueue).
//
// # Signatures
//
// Each delivery carries
//
//	Mailroom-Signature: t=1733212800,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// where t is the Unix time of the attempt and v1 the hex HMAC-SHA256, keyed
// with the webhook's secret (the whole "whsec_…" string), of t, a period and
// the raw request body. A receiver recomputes it, compares in constant time,
// and refuses a t more than five minutes from its clock (replays), as with
// Stripe's Stripe-Signature. Mailroom-Event-Id is the same for every retry
// of one event, so that a receiver can drop a duplicate.
package webhook

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// State is whether a webhook receives deliveries.
type State string

// The states of a webhook.
const (
	StateActive   State = "active"
	StateDisabled State = "disabled"
)

// Webhook is a user's endpoint.
type Webhook struct {
	User        string
	ID          string
	URL         string
	DisplayName string
	// Secret keys the signatures. It is kept in the Vault, never in the
	// Repository, and set only in Create's result: the user sees it once.
	Secret              string
	State               State
	CreateTime          time.Time
	LastSuccessTime     time.Time
	LastFailureTime     time.Time
	LastError           string
	ConsecutiveFailures int64
	DisableReason       string
	// EnableTime is when it was last set ACTIVE after being DISABLED, or
	// its CreateTime if never. A failing delivery's retry period runs from
	// the later of its queueing and this.
	EnableTime time.Time
}

// Repository keeps webhooks; the postgres and sqlite adapters implement it.
type Repository interface {
	// CreateWebhook stores w but not its secret, or returns ErrExists.
	CreateWebhook(ctx context.Context, w Webhook) error
	// GetWebhook returns one webhook (without secret), or ErrNotFound.
	GetWebhook(ctx context.Context, user, id string) (Webhook, error)
	// ListWebhooks returns up to limit of user's webhooks with ids after
	// after, by id.
	ListWebhooks(ctx context.Context, user, after string, limit int) ([]Webhook, error)
	// CountWebhooks counts user's webhooks.
	CountWebhooks(ctx context.Context, user string) (int, error)
	// DeleteWebhook deletes one webhook, or returns ErrNotFound.
	DeleteWebhook(ctx context.Context, user, id string) error
	// DeleteUserWebhooks deletes every webhook of user.
	DeleteUserWebhooks(ctx context.Context, user string) (int64, error)
	// RecordAttempt records the outcome of a delivery attempt at at: a
	// success (errText empty) clears the failure count, a failure adds one.
	RecordAttempt(ctx context.Context, user, id string, at time.Time, errText string) error
	// Disable marks a webhook DISABLED with reason, unless its EnableTime
	// is after enabledBy (its user set it ACTIVE again since), and reports
	// whether it did.
	Disable(ctx context.Context, user, id, reason string, enabledBy time.Time) (bool, error)
	// UpdateWebhook changes the fields of one webhook that u sets, and no
	// other (a delivery may record an attempt or disable it meanwhile), and
	// returns the webhook as it is then; or ErrNotFound. A State of
	// StateActive also clears the disable reason and the failure count and,
	// if the webhook was DISABLED, sets its EnableTime to u.EnableTime; a
	// StateDisabled sets the disable reason to u.DisableReason.
	UpdateWebhook(ctx context.Context, user, id string, u Update) (Webhook, error)
}

// Update is a change of a webhook: each field that is not nil is set.
type Update struct {
	URL         *string
	DisplayName *string
	State       *State
	// DisableReason goes with State = StateDisabled.
	DisableReason string
	// EnableTime goes with State = StateActive: the webhook's EnableTime if
	// it was DISABLED.
	EnableTime time.Time
}

// Errors of a Repository.
var (
	ErrNotFound = errors.New("webhook: not found")
	ErrExists   = errors.New("webhook: already exists")
)

// SecretPrefix starts every secret.
const SecretPrefix = "whsec_"

// NewSecret returns a random secret: 32 bytes, base64url, with SecretPrefix.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = crand.Read(b)
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Sign returns the Mailroom-Signature header of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a Mailroom-Signature header against body, as a receiver
// does: a v1 signature under secret, made within tolerance of now.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook: signature has no timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); math.Abs(float64(d)) > float64(tolerance) {
		return errors.New("webhook: signature timestamp outside the tolerance")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errors.New("webhook: no matching v1 signature")
}

// CheckURL validates a webhook URL: absolute, https (http only to a host
// that allowed says may be reached in the clear, as in development), no
// credentials, no fragment. It returns a reason, or "" when it is fine.
func CheckURL(raw string, allowed func(host string) bool) string {
	if len(raw) > 2048 {
		return "must be at most 2048 characters"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return "must be an absolute https URL"
	case u.User != nil:
		return "must not hold credentials"
	case u.Fragment != "":
		return "must not have a fragment"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && allowed(u.Hostname()):
		return ""
	}
	return "must be an https URL (http only to a host that MAILROOM_WEBHOOK_ALLOW_HOSTS names)"
}

// Policy is how long and how often a delivery is retried.
type Policy struct {
	// RetryFor is how long after its first attempt an event is retried;
	// past it the webhook is disabled.
	RetryFor time.Duration
	// MinBackoff is the delay after the first failure; it doubles with every
	// attempt up to MaxBackoff, with full jitter over its upper half.
	MinBackoff, MaxBackoff time.Duration
}

// Backoff returns the delay before attempt n+1 after n failed attempts.
func (p Policy) Backoff(n int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}
