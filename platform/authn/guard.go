package authn

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/apierror"
)

// ExchangeFunc trades an API key for an identity token.
type ExchangeFunc func(ctx context.Context, apiKey string) (*authv1.ExchangeApiKeyResponse, error)

// ClientExchange returns an ExchangeFunc that asks auth over gRPC with no
// credential of its own: enough for a service's own service key, while
// auth exchanges a user's key only for a service (ClientExchangeAs).
func ClientExchange(c authv1.AuthServiceClient) ExchangeFunc {
	return func(ctx context.Context, apiKey string) (*authv1.ExchangeApiKeyResponse, error) {
		return c.ExchangeApiKey(ctx, &authv1.ExchangeApiKeyRequest{ApiKey: apiKey})
	}
}

// ClientExchangeAs returns an ExchangeFunc that asks auth over gRPC as the
// service id (the gateway, or a service whose guard accepts API keys):
// auth exchanges users' keys for services only. A nil id asks with no
// credential, which auth refuses for any key but a service's own.
func ClientExchangeAs(c authv1.AuthServiceClient, id *ServiceIdentity) ExchangeFunc {
	if id == nil {
		return ClientExchange(c)
	}
	return func(ctx context.Context, apiKey string) (*authv1.ExchangeApiKeyResponse, error) {
		octx, err := id.Outgoing(ctx)
		if err != nil {
			return nil, err
		}
		return c.ExchangeApiKey(octx, &authv1.ExchangeApiKeyRequest{ApiKey: apiKey})
	}
}

// KeyCache caches API key exchanges for a short time, keyed by the key's
// hash so that no key sits in memory as a map key.
type KeyCache struct {
	exchange ExchangeFunc
	ttl      time.Duration
	rev      *Revocations

	mu      sync.Mutex
	entries map[[32]byte]cached
}

type cached struct {
	token  string
	user   string
	expire time.Time
	// sub and key are the token's subject and API key id, for revocations.
	sub, key string
}

// NewKeyCache returns a cache in front of exchange; entries live for ttl,
// and never past the token's own expiry.
func NewKeyCache(exchange ExchangeFunc, ttl time.Duration) *KeyCache {
	return &KeyCache{exchange: exchange, ttl: ttl, entries: map[[32]byte]cached{}}
}

// WatchRevocations makes c drop the exchanges of a key or user as soon as
// r learns it is revoked (and everything when r loses its watch), and
// keep exchanges for r.FallbackTTL at most while r is not live.
func (c *KeyCache) WatchRevocations(r *Revocations) {
	c.mu.Lock()
	c.rev = r
	c.mu.Unlock()
	r.Subscribe(c.revoke)
}

func (c *KeyCache) revoke(ev Revocation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if ev.Reset || (e.sub == ev.User && (ev.Key == "" || e.key == ev.Key)) {
			delete(c.entries, h)
		}
	}
}

// Token returns an identity token for apiKey.
func (c *KeyCache) Token(ctx context.Context, apiKey string) (string, error) {
	token, _, err := c.Identity(ctx, apiKey)
	return token, err
}

// Identity returns an identity token for apiKey and the key's owner
// (users/{user}; empty for a service key), as auth vouched for them.
func (c *KeyCache) Identity(ctx context.Context, apiKey string) (token, user string, err error) {
	h := sha256.Sum256([]byte(apiKey))
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[h]
	c.mu.Unlock()
	if ok && now.Before(e.expire) {
		return e.token, e.user, nil
	}
	resp, err := c.exchange(ctx, apiKey)
	if err != nil {
		return "", "", err
	}
	ttl := c.ttl
	c.mu.Lock()
	rev := c.rev
	c.mu.Unlock()
	if rev != nil && !rev.Live() {
		ttl = min(ttl, rev.fallbackTTL())
	}
	exp := now.Add(ttl)
	if t := resp.GetExpireTime().AsTime(); resp.GetExpireTime() != nil && t.Add(-30*time.Second).Before(exp) {
		exp = t.Add(-30 * time.Second)
	}
	c.mu.Lock()
	if len(c.entries) > 10000 {
		c.entries = map[[32]byte]cached{} // bound memory under a flood of distinct keys
	}
	e = cached{token: resp.GetToken(), user: resp.GetUser(), expire: exp}
	// The token comes from auth: its claims are read, not verified.
	var claims Claims
	if _, _, err := jwt.NewParser().ParseUnverified(resp.GetToken(), &claims); err == nil && claims.Role != roleServiceClaim {
		e.sub, e.key = claims.Subject, claims.Key
	}
	c.entries[h] = e
	c.mu.Unlock()
	return resp.GetToken(), resp.GetUser(), nil
}

// Cached reports whether apiKey has a live entry in the cache: a key that
// auth accepted a moment ago.
func (c *KeyCache) Cached(apiKey string) bool {
	h := sha256.Sum256([]byte(apiKey))
	c.mu.Lock()
	e, ok := c.entries[h]
	c.mu.Unlock()
	return ok && time.Now().Before(e.expire)
}

// Guard authenticates every call to a gRPC server, except the methods it
// lists as public (health and reflection always are).
type Guard struct {
	Verifier *Verifier
	// Keys, when set, also accepts API keys, so that grpcurl can call a
	// service straight with an API key.
	Keys *KeyCache
	// Public lists full method names reachable without a credential.
	Public map[string]bool
}

// roleServiceClaim is the role claim of a service identity token.
const roleServiceClaim = "service"

// WatchRevocations makes g refuse revoked tokens and drop revoked API
// keys' exchanges as r learns of them.
func (g *Guard) WatchRevocations(r *Revocations) {
	g.Verifier.Revocations = r
	if g.Keys != nil {
		g.Keys.WatchRevocations(r)
	}
}

// NewGuard returns a Guard that verifies tokens with the JWKS of the auth
// service behind c and accepts API keys by exchanging them there (cached
// for 30 s) as the service own (auth exchanges users' keys for services
// only; nil: API keys are refused by auth); public lists the full method
// names reachable without a credential. service.Base.DialAuth dials auth
// and builds one.
func NewGuard(c authv1.AuthServiceClient, own *ServiceIdentity, public ...string) *Guard {
	g := &Guard{
		Verifier: NewVerifier(ClientKeys(c)),
		Keys:     NewKeyCache(ClientExchangeAs(c, own), 30*time.Second),
		Public:   map[string]bool{},
	}
	for _, m := range public {
		g.Public[m] = true
	}
	return g
}

func (g *Guard) public(method string) bool {
	return g.Public[method] || strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// Authenticate returns ctx carrying the caller named by md's authorization.
func (g *Guard) Authenticate(ctx context.Context, method string) (context.Context, error) {
	if g.public(method) {
		return ctx, nil
	}
	cred := BearerFromContext(ctx)
	if cred == "" {
		return nil, apierror.Unauthenticatedf("missing credential: send `authorization: Bearer <API key or identity token>`")
	}
	if !LooksLikeJWT(cred) {
		if g.Keys == nil {
			return nil, apierror.Unauthenticatedf("API keys are not accepted here; send an identity token")
		}
		tok, err := g.Keys.Token(ctx, cred)
		if err != nil {
			return nil, err
		}
		cred = tok
	}
	c, err := g.Verifier.Verify(ctx, cred)
	if err != nil {
		return nil, err
	}
	return NewContext(ctx, c), nil
}

// LooksLikeJWT reports whether cred has the shape of a JWT (three base64url
// parts, a JSON header); anything else is taken for an API key.
func LooksLikeJWT(cred string) bool {
	return strings.Count(cred, ".") == 2 && strings.HasPrefix(cred, "eyJ")
}

// BearerFromContext returns the bearer credential of ctx's incoming metadata.
func BearerFromContext(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// Unary is the unary server interceptor.
func (g *Guard) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := g.Authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// Stream is the stream server interceptor.
func (g *Guard) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := g.Authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &wrapped{ServerStream: ss, ctx: ctx})
	}
}

type wrapped struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrapped) Context() context.Context { return w.ctx }

// OutgoingToken returns ctx with token set as the bearer credential of
// outgoing gRPC calls.
func OutgoingToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
