package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
)

// exchangeRoute is the route of AuthService.ExchangeApiKey (see
// proto/http_rules.yaml): a browser (the web console) trades an API key,
// sent in the body, for a short-lived identity token, which it then sends
// as its bearer credential instead of the key.
const exchangeRoute = "/v1/apiKeys:exchange"

// maxExchangeBody caps the body of an exchange: one API key in JSON.
const maxExchangeBody = 4 << 10

// serveExchange answers POST /v1/apiKeys:exchange itself rather than
// forwarding it: auth exchanges users' keys only for the gateway's service
// identity, and the exchange needs the limits that a bearer key gets in
// limitKeys and authenticate — the key's own bucket, the caller's address
// budget of refused keys, the owner's bucket — which the key in a body
// would otherwise bypass. It asks auth every time (no cache), so that the
// token returned lives its whole lifetime.
func (g *Gateway) serveExchange(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxExchangeBody {
		g.writeError(w, r, tooLarge(maxExchangeBody))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxExchangeBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		g.writeError(w, r, tooLarge(maxExchangeBody))
		return
	case err != nil:
		g.writeError(w, r, status.Error(codes.InvalidArgument, "could not read the request body"))
		return
	}
	var req authv1.ExchangeApiKeyRequest
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &req); err != nil {
		g.writeError(w, r, badField("api_key", "the body must be a JSON object {\"apiKey\": \"<API key>\"}"))
		return
	}
	key := req.GetApiKey()
	if key == "" {
		g.writeError(w, r, badField("api_key", "api_key is required"))
		return
	}
	now := g.limits.now()
	addr := clientAddr(r)
	h := sha256.Sum256([]byte(key))
	if g.limits.knownInvalid(h, now) {
		g.writeError(w, r, invalidKeyStatus())
		return
	}
	if d := g.limits.failureBudget(addr, now); d > 0 && !g.keys.Cached(key) {
		g.tooManyRequests(w, r, d, "too many invalid API keys from this address")
		return
	}
	if d, ok := g.limits.takeKey(h, now); !ok {
		g.tooManyRequests(w, r, d, "this API key is over its rate limit of "+strconv.FormatFloat(float64(g.limits.rate), 'f', -1, 64)+" requests a second")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), clientAddrKey{}, addr), g.cfg.AuthTimeout)
	resp, err := g.exchange(ctx, key)
	cancel()
	if err != nil {
		g.writeError(w, r, g.exchangeError(r.Context(), err))
		return
	}
	if resp.GetRole() == authv1.Role_ROLE_SERVICE || resp.GetUser() == "" {
		// A service key's token would pass through to the services as a
		// service identity: services call auth over gRPC, never here.
		g.writeError(w, r, status.Error(codes.PermissionDenied, "a service key cannot be exchanged through the REST API"))
		return
	}
	if d, ok := g.limits.takeUser(resp.GetUser(), g.limits.now()); !ok {
		g.tooManyRequests(w, r, d, "this user is over its rate limit of "+strconv.FormatFloat(float64(g.limits.userRate), 'f', -1, 64)+" requests a second, across all of its API keys")
		return
	}
	_, out := runtime.MarshalerForRequest(g.mux, r)
	body, err := out.Marshal(resp)
	if err != nil {
		g.writeError(w, r, status.Error(codes.Internal, "could not encode the response"))
		return
	}
	w.Header().Set("Content-Type", out.ContentType(resp))
	// The body is a credential: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// badField is InvalidArgument with a BadRequest naming field.
func badField(field, msg string) error {
	st := status.New(codes.InvalidArgument, msg)
	if d, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: apierror.Domain},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}},
	); err == nil {
		st = d
	}
	return st.Err()
}
