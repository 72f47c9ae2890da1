package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"mailroom.dev/platform/netguard"
)

// Deliverer POSTs events to webhooks, connecting only through the SSRF
// guard (to the very address it checked), following no redirect and using
// no proxy.
type Deliverer struct {
	client  *http.Client
	secrets Vault
	now     func() time.Time
}

// NewDeliverer returns a deliverer that signs with the secrets of secrets
// (a SecretCache in production) and whose attempts dial through guard and
// last at most timeout.
func NewDeliverer(guard *netguard.Guard, timeout time.Duration, secrets Vault) *Deliverer {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			p, err := strconv.Atoi(port)
			if err != nil {
				return nil, err
			}
			return guard.Dial(ctx, host, p)
		},
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &Deliverer{
		client: &http.Client{
			Transport:     tr,
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		secrets: secrets,
		now:     time.Now,
	}
}

// Deliver POSTs body (a WebhookEvent's JSON) to w, signed with its secret
// from the vault. A 2xx answer is a success; anything else is an error
// whose text says what happened without quoting the answer (nor the
// vault's).
func (d *Deliverer) Deliver(ctx context.Context, w Webhook, eventID string, body []byte) error {
	secret, err := d.secrets.GetSecret(ctx, w.User, w.ID)
	switch {
	case errors.Is(err, ErrNoSecret):
		return errors.New("no signing secret in the vault")
	case err != nil:
		return errors.New("signing secret unavailable")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailroom-webhooks/1")
	req.Header.Set("Mailroom-Webhook-Id", Name(w.User, w.ID))
	req.Header.Set("Mailroom-Event-Id", eventID)
	req.Header.Set("Mailroom-Signature", Sign(secret, d.now(), body))
	resp, err := d.client.Do(req)
	if err != nil {
		return describe(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// describe says why a request failed, briefly.
func describe(err error) error {
	var refused *netguard.RefusedError
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &refused):
		return refused
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("timeout")
	case errors.As(err, &oe):
		return fmt.Errorf("%s: %v", oe.Op, oe.Err)
	}
	return errors.New("request failed")
}
