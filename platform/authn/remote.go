package authn

import (
	"time"

	"google.golang.org/grpc"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/grpcconn"
)

// Remote returns a Guard for a service other than auth: it verifies tokens
// with the JWKS of the auth service at addr and accepts API keys by
// exchanging them there. public lists the full method names reachable
// without a credential. Close the returned connection at shutdown. The
// connection is plaintext; see NewGuard for TLS.
func Remote(addr string, public ...string) (*Guard, *grpc.ClientConn, error) {
	cc, err := grpcconn.Dial(addr)
	if err != nil {
		return nil, nil, err
	}
	return NewGuard(authv1.NewAuthServiceClient(cc), public...), cc, nil
}

// NewGuard returns a Guard that verifies tokens with the JWKS of the auth
// service behind c and accepts API keys by exchanging them there (cached
// for 30 s). A service whose connection to auth needs options of its own
// (TLS: transport.Config.ClientCredentials) dials auth itself:
//
//	cc, err := grpcconn.Dial(cfg.AuthAddr, grpcconn.WithCredentials(creds))
//	guard := authn.NewGuard(authv1.NewAuthServiceClient(cc), public...)
func NewGuard(c authv1.AuthServiceClient, public ...string) *Guard {
	g := &Guard{
		Verifier: NewVerifier(ClientKeys(c)),
		Keys:     NewKeyCache(ClientExchange(c), 30*time.Second),
		Public:   map[string]bool{},
	}
	for _, m := range public {
		g.Public[m] = true
	}
	return g
}
