package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"mailroom.dev/platform/authn"
)

// authenticate runs on every route of the grpc-gateway mux, after routing:
// it records the route, refuses a body declared larger than the cap, and
// trades the caller's API key for an identity token, which replaces the
// Authorization header so that grpc-gateway sends the token (and never the
// key) to the services as `authorization: Bearer <jwt>` metadata.
func (g *Gateway) authenticate(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		if pat, ok := runtime.HTTPPattern(r.Context()); ok {
			setRoute(r.Context(), pat.String())
			if pat.String() == exchangeRoute {
				// The key is in the body, and the route its own limiter.
				g.serveExchange(w, r)
				return
			}
		}
		if r.ContentLength > g.cfg.MaxBodyBytes {
			g.writeError(w, r, tooLarge(g.cfg.MaxBodyBytes))
			return
		}
		cred, err := bearer(r)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		token := cred
		// An identity token passes through as it is: the services verify it.
		if authn.LooksLikeJWT(cred) {
			r = withPassedToken(r, cred)
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), g.cfg.AuthTimeout)
			var user string
			token, user, err = g.keys.Identity(ctx, cred)
			cancel()
			if err != nil {
				g.writeError(w, r, g.exchangeError(r.Context(), err))
				return
			}
			if d, ok := g.limits.takeUser(user, g.limits.now()); !ok {
				g.tooManyRequests(w, r, d, "this user is over its rate limit of "+strconv.FormatFloat(float64(g.limits.userRate), 'f', -1, 64)+" requests a second, across all of its API keys")
				return
			}
		}
		r = r.WithContext(r.Context())
		r.Header = r.Header.Clone()
		r.Header.Set("Authorization", "Bearer "+token)
		next(w, r, pathParams)
	}
}

// bearer returns the credential of r's `Authorization: Bearer` header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", status.Error(codes.Unauthenticated, "missing credential: send the header `Authorization: Bearer <API key>`")
	}
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") || strings.TrimSpace(h[7:]) == "" {
		return "", status.Error(codes.Unauthenticated, "malformed Authorization header: expected `Bearer <API key>`")
	}
	return strings.TrimSpace(h[7:]), nil
}

// exchangeError turns a failed API key exchange into what the caller sees:
// 401 for a key that auth refused, 503 when auth could not answer.
func (g *Gateway) exchangeError(ctx context.Context, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated:
		return err
	case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.FailedPrecondition:
		return status.Error(codes.Unauthenticated, "invalid API key")
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		g.logger.WarnContext(ctx, "api key exchange failed", "code", st.Code().String())
		return status.Error(codes.Unavailable, "authentication is unavailable; retry later")
	}
	g.logger.WarnContext(ctx, "api key exchange failed", "code", st.Code().String())
	return err
}
