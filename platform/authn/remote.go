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
// without a credential. Close the returned connection at shutdown.
func Remote(addr string, public ...string) (*Guard, *grpc.ClientConn, error) {
	cc, err := grpcconn.Dial(addr)
	if err != nil {
		return nil, nil, err
	}
	c := authv1.NewAuthServiceClient(cc)
	g := &Guard{
		Verifier: NewVerifier(ClientKeys(c)),
		Keys:     NewKeyCache(ClientExchange(c), 30*time.Second),
		Public:   map[string]bool{},
	}
	for _, m := range public {
		g.Public[m] = true
	}
	return g, cc, nil
}
