package gateway

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
)

// GmailPush configures POST /push/gmail, the endpoint of the Pub/Sub push
// subscription of the topic that Gmail's users.watch publishes to.
type GmailPush struct {
	// Audience is the audience the push subscription puts in its OIDC
	// tokens (its push endpoint URL, or what the subscription names). Empty
	// turns the endpoint off (404).
	Audience string `env:"MAILROOM_GMAIL_PUSH_AUDIENCE"`
	// ServiceAccount, when set, is the only email claim accepted: the
	// service account the push subscription authenticates as.
	ServiceAccount string `env:"MAILROOM_GMAIL_PUSH_SERVICE_ACCOUNT"`
	// JWKSURL is where Google's signing keys are (tests point it at the
	// fake Gmail); they are cached as long as the answer's max-age says.
	JWKSURL string `env:"MAILROOM_GOOGLE_JWKS_URL, default=https://www.googleapis.com/oauth2/v3/certs"`
	// Issuers are the accepted iss claims.
	Issuers []string `env:"MAILROOM_GOOGLE_OIDC_ISSUERS, default=https://accounts.google.com,accounts.google.com"`
}

// pushBodyLimit caps a push body: an envelope of a few hundred bytes.
const pushBodyLimit = 64 << 10

// handleGmailPush verifies a push's OIDC token and hands the notification
// to ingest. It answers as soon as ingest has taken it (ingest starts the
// sync in the background): Pub/Sub retries a push that is not
// acknowledged with a 2xx within its deadline. A push with a bad token gets
// 401 or 403, which Pub/Sub retries too, so a wrong setting is visible in
// the subscription's metrics rather than silently dropping mail.
func (g *Gateway) handleGmailPush(w http.ResponseWriter, r *http.Request) {
	if g.cfg.GmailPush.Audience == "" {
		http.NotFound(w, r)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "a push must carry an OIDC token", http.StatusUnauthorized)
		return
	}
	if err := g.pushKeys.verify(r.Context(), tok, g.cfg.GmailPush); err != nil {
		g.logger.WarnContext(r.Context(), "gmail push refused", "reason", err.Error())
		http.Error(w, "the push's token is not valid", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pushBodyLimit))
	if err != nil {
		http.Error(w, "the push body is too large", http.StatusRequestEntityTooLarge)
		return
	}
	var env struct {
		Message struct {
			Data string `json:"data"`
		} `json:"message"`
	}
	var note struct {
		EmailAddress string          `json:"emailAddress"`
		HistoryID    json.RawMessage `json:"historyId"`
	}
	var data []byte
	derr := json.Unmarshal(body, &env)
	if derr == nil {
		data, derr = base64.StdEncoding.DecodeString(env.Message.Data)
	}
	if derr != nil || json.Unmarshal(data, &note) != nil || note.EmailAddress == "" {
		// Not a Gmail notification: acknowledge it, or Pub/Sub would
		// send it again for a week.
		g.logger.WarnContext(r.Context(), "gmail push without a notification acknowledged")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	hid, _ := strconv.ParseUint(strings.Trim(string(note.HistoryID), `"`), 10, 64)
	client, ok := g.ingestClient()
	if !ok {
		http.Error(w, "ingest is not configured", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	ctx, err = g.own.Outgoing(ctx)
	if err != nil {
		http.Error(w, "the gateway has no service identity", http.StatusServiceUnavailable)
		return
	}
	if _, err := client.NotifyGmailPush(ctx, &ingestv1.NotifyGmailPushRequest{EmailAddress: note.EmailAddress, HistoryId: hid}); err != nil {
		st := status.Convert(err)
		g.logger.WarnContext(r.Context(), "gmail push not taken by ingest", "code", st.Code().String())
		if st.Code() == codes.InvalidArgument {
			w.WriteHeader(http.StatusNoContent) // retrying would not help
			return
		}
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// jwksCache keeps Google's signing keys, fetched when a token names a key
// it does not know (at most every refetchAfter) or when they expire.
type jwksCache struct {
	client *http.Client
	mu     sync.Mutex
	keys   map[string]*rsa.PublicKey
	expiry time.Time
	last   time.Time
}

const refetchAfter = 30 * time.Second

func newJWKSCache() *jwksCache {
	return &jwksCache{client: &http.Client{Timeout: 5 * time.Second}, keys: map[string]*rsa.PublicKey{}}
}

func (c *jwksCache) key(ctx context.Context, url, kid string) (*rsa.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if k, ok := c.keys[kid]; ok && now.Before(c.expiry) {
		return k, nil
	}
	if now.Sub(c.last) < refetchAfter && now.Before(c.expiry) {
		return nil, fmt.Errorf("unknown key %q", kid)
	}
	c.last = now
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kty, Kid, N, E string
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if k.Kty != "RSA" || err1 != nil || err2 != nil {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	c.keys, c.expiry = keys, now.Add(maxAge(resp.Header.Get("Cache-Control")))
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key %q", kid)
}

// maxAge reads a Cache-Control max-age, between a minute and a day (an
// hour when there is none).
func maxAge(cc string) time.Duration {
	for part := range strings.SplitSeq(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return min(max(time.Duration(n)*time.Second, time.Minute), 24*time.Hour)
			}
		}
	}
	return time.Hour
}

// verify checks tok: RS256 signed by one of Google's keys, for the
// audience, from an accepted issuer, unexpired, and from the configured
// service account (verified email) when one is set.
func (c *jwksCache) verify(ctx context.Context, tok string, cfg GmailPush) error {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return c.key(ctx, cfg.JWKSURL, kid)
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(cfg.Audience), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(time.Minute))
	if err != nil {
		return err
	}
	iss, _ := claims.GetIssuer()
	if !slices.Contains(cfg.Issuers, iss) {
		return errors.New("token from another issuer")
	}
	if cfg.ServiceAccount != "" {
		email, _ := claims["email"].(string)
		verified, _ := claims["email_verified"].(bool)
		if email != cfg.ServiceAccount || !verified {
			return errors.New("token of another service account")
		}
	}
	return nil
}
