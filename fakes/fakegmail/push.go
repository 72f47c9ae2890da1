package fakegmail

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"time"
)

// Gmail push, as Google does it: users.watch registers a Pub/Sub topic for
// an account (for 7 days), users.stop ends it, and every change of a
// watched account is pushed by the topic's push subscription to an HTTPS
// endpoint as a Pub/Sub envelope whose data is
// {"emailAddress":…,"historyId":…}, with an OIDC token (a JWT signed with
// RS256 by "Google", here the fake's own key, served at JWKSURL) in its
// Authorization header. A push that is not answered with a 2xx is retried
// a few times, as Pub/Sub does.

// Endpoint names of the push API, for Fail and Calls.
const (
	EndpointWatch = "users.watch"
	EndpointStop  = "users.stop"
)

// Issuer is the iss of the fake's push tokens, as Google's.
const Issuer = "https://accounts.google.com"

// WatchTTL is how long a watch lasts, as Gmail's.
const WatchTTL = 7 * 24 * time.Hour

// pushConfig is where pushes go.
type pushConfig struct {
	endpoint, audience, serviceAccount, topic string
}

// SetPush makes the fake push changes of watched accounts to endpoint,
// with tokens for audience from serviceAccount (the push subscription's
// identity). topic, when set, is the only topicName users.watch accepts.
func (s *Server) SetPush(endpoint, audience, serviceAccount, topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.push = pushConfig{endpoint: endpoint, audience: audience, serviceAccount: serviceAccount, topic: topic}
}

// Pushes counts the pushes answered with a 2xx.
func (s *Server) Pushes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushed
}

// Watching reports whether email has a watch that has not expired.
func (s *Server) Watching(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[email]
	return a != nil && time.Now().Before(a.watchExpiry)
}

// signingKey is the fake's RSA key; its public half is at JWKSURL.
func (s *Server) signingKey() *rsa.PrivateKey {
	s.keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		s.key = k
	})
	return s.key
}

const keyID = "fakegmail-1"

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := s.signingKey().PublicKey
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": keyID,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// Token returns an OIDC token as the push subscription's, signed with the
// fake's key, for tests that push by hand.
func (s *Server) Token(audience, serviceAccount string, issued time.Time) string {
	b64 := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	signing := b64(map[string]string{"alg": "RS256", "kid": keyID, "typ": "JWT"}) + "." + b64(map[string]any{
		"iss": Issuer, "aud": audience, "azp": "1234567890", "sub": "1234567890",
		"email": serviceAccount, "email_verified": true,
		"iat": issued.Unix(), "exp": issued.Add(time.Hour).Unix(),
	})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.signingKey(), crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Envelope returns a Pub/Sub push body announcing historyID of email.
func Envelope(email string, historyID uint64) []byte {
	data, _ := json.Marshal(map[string]any{"emailAddress": email, "historyId": historyID})
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data": base64.StdEncoding.EncodeToString(data), "messageId": id, "message_id": id,
			"publishTime": now, "publish_time": now,
		},
		"subscription": "projects/fake-project/subscriptions/gmail-push",
	})
	return b
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, a *Account, _ grant) {
	var req struct {
		TopicName string `json:"topicName"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.TopicName == "" || (s.push.topic != "" && req.TopicName != s.push.topic) {
		apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid topicName")
		return
	}
	a.watchExpiry = time.Now().Add(WatchTTL)
	writeJSON(w, http.StatusOK, map[string]string{
		"historyId":  strconv.FormatUint(a.historyID, 10),
		"expiration": strconv.FormatInt(a.watchExpiry.UnixMilli(), 10),
	})
}

func (s *Server) stop(w http.ResponseWriter, _ *http.Request, a *Account, _ grant) {
	s.mu.Lock()
	a.watchExpiry = time.Time{}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// notifyLocked pushes a's new historyId if a is watched (s.mu held).
func (s *Server) notifyLocked(a *Account) {
	if s.push.endpoint == "" || !time.Now().Before(a.watchExpiry) {
		return
	}
	cfg, email, hid := s.push, a.Email, a.historyID
	go s.send(cfg, email, hid)
}

func (s *Server) send(cfg pushConfig, email string, historyID uint64) {
	body := Envelope(email, historyID)
	for attempt := range 5 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		req, err := http.NewRequest(http.MethodPost, cfg.endpoint, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.Token(cfg.audience, cfg.serviceAccount, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			s.mu.Lock()
			s.pushed++
			s.mu.Unlock()
			return
		}
	}
	fmt.Printf("fakegmail: push of %d not accepted after 5 attempts\n", historyID)
}
