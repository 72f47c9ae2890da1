package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
)

// callbackTimeout bounds the consent's completion: ingest exchanges the
// code with Google and stores the token in the vault.
const callbackTimeout = 30 * time.Second

// handleGoogleCallback is where Google sends the browser back after the
// user's consent to a Gmail mailbox (GET /oauth/google/callback?state=…&code=…,
// or …&error=access_denied). It needs no API key: ingest's
// CompleteAuthorization takes the single-use state as the credential. The
// answer is a small page for the person at the browser; the code and the
// state are never logged or shown.
func (g *Gateway) handleGoogleCallback(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The URL carries a code: keep it out of caches and referrers.
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")

	client, ok := g.ingestClient()
	if !ok {
		g.callbackPage(w, http.StatusServiceUnavailable, "Gmail was not connected", "The ingest service is not configured on this gateway.", nil)
		return
	}
	q := r.URL.Query()
	var binding string
	if c, err := r.Cookie(consentCookie(q.Get("state"))); err == nil {
		binding = c.Value
	}
	// The cookie has done its work, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: consentCookie(q.Get("state")), Path: consentCookiePath, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	ctx, cancel := context.WithTimeout(r.Context(), callbackTimeout)
	defer cancel()
	resp, err := client.CompleteAuthorization(ctx, &ingestv1.CompleteAuthorizationRequest{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), Binding: binding,
	})
	if err != nil {
		st := status.Convert(err)
		msg := st.Message()
		switch st.Code() {
		case codes.Internal, codes.Unknown, codes.DataLoss:
			msg = "Something went wrong on our side. Please try again later."
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			g.logger.WarnContext(r.Context(), "gmail consent not completed", "code", st.Code().String())
			msg = "The connection could not be completed right now (" + msg + "). Please try again later."
		}
		g.callbackPage(w, runtime.HTTPStatusFromCode(st.Code()), "Gmail was not connected", msg, nil)
		return
	}
	g.callbackPage(w, http.StatusOK, "Gmail connected", "mailroom can now sync this mailbox. You can close this window.", resp.GetMailbox())
}

// consentCookiePath scopes the consent cookies to the two routes of the flow.
const consentCookiePath = "/oauth/google/"

// consentCookie is the name of the cookie that binds a browser to the
// consent of state: one per consent, so that two under way in one browser
// do not overwrite each other. It holds a random binding, never the state.
func consentCookie(state string) string {
	sum := sha256.Sum256([]byte(state))
	return "mailroom_consent_" + hex.EncodeToString(sum[:6])
}

// handleGoogleStart is where a Gmail mailbox's authorization URL points
// (GET /oauth/google/start?state=…): the browser that opens it first is
// bound to the consent — a random binding goes into an HttpOnly cookie
// and, hashed, into the consent at ingest — and is sent on to Google. The
// callback completes the consent only for a browser with that cookie, so a
// person whose browser comes back from Google with someone else's state
// (a link the other sent them) does not attach their mailbox to the other's
// account.
func (g *Gateway) handleGoogleStart(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	client, ok := g.ingestClient()
	if !ok {
		h.Set("Content-Type", "text/html; charset=utf-8")
		g.callbackPage(w, http.StatusServiceUnavailable, "Gmail was not connected", "The ingest service is not configured on this gateway.", nil)
		return
	}
	state := r.URL.Query().Get("state")
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	binding := base64.RawURLEncoding.EncodeToString(b)
	ctx, cancel := context.WithTimeout(r.Context(), callbackTimeout)
	defer cancel()
	resp, err := client.StartAuthorization(ctx, &ingestv1.StartAuthorizationRequest{State: state, Binding: binding})
	if err != nil {
		st := status.Convert(err)
		msg := st.Message()
		switch st.Code() {
		case codes.Internal, codes.Unknown, codes.DataLoss:
			msg = "Something went wrong on our side. Please try again later."
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			msg = "The connection could not be started right now. Please try again later."
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		g.callbackPage(w, runtime.HTTPStatusFromCode(st.Code()), "Gmail was not connected", msg, nil)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: consentCookie(state), Value: binding, Path: consentCookiePath,
		MaxAge: int(consentCookieTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, resp.GetGoogleAuthorizationUrl(), http.StatusFound)
}

// consentCookieTTL bounds a consent cookie's life: a consent takes minutes.
const consentCookieTTL = time.Hour

// ingestClient is a client of the ingest service over the gateway's connection.
func (g *Gateway) ingestClient() (ingestv1.IngestServiceClient, bool) {
	for i, b := range g.backends {
		if b.name == "ingest" && i < len(g.conns) {
			return ingestv1.NewIngestServiceClient(g.conns[i]), true
		}
	}
	return nil, false
}

var callbackTemplate = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · mailroom</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>{{.Title}}</h1>
{{with .Mailbox}}<p>Mailbox <code>{{.Name}}</code>{{with .Address}} ({{.}}){{end}} is connected.</p>{{end}}
<p>{{.Message}}</p>
</body></html>
`))

func (g *Gateway) callbackPage(w http.ResponseWriter, code int, title, message string, mb *ingestv1.Mailbox) {
	w.WriteHeader(code)
	err := callbackTemplate.Execute(w, struct {
		Title, Message string
		Mailbox        *ingestv1.Mailbox
	}{title, message, mb})
	if err != nil {
		g.logger.Warn("callback page not written", "error", err.Error())
	}
}
