package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/grpcconn"
)

// TestRevocationWithinASecond revokes an API key, then deletes its user,
// and expects both to be refused within a second by the gateway (which
// caches a key's exchange for 30 s) and by a service (the store, whose
// guard caches exchanges too and verifies identity tokens locally), also
// for identity tokens issued before the revocation, which would otherwise
// verify until they expire.
func TestRevocationWithinASecond(t *testing.T) {
	e := start(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := e.user("ada")
	k := e.must(200, "POST", "/v1/users/ada/apiKeys", e.admin, map[string]any{"displayName": "second"})
	second, _ := k["key"].(string)
	secondName, _ := k["name"].(string)
	bob := e.user("bob")

	// Identity tokens of ada's keys, as the gateway gets them.
	authCC, err := grpcconn.Dial(e.suite.GRPC["auth"])
	if err != nil {
		t.Fatal(err)
	}
	defer authCC.Close()
	authClient := authv1.NewAuthServiceClient(authCC)
	gw := authn.NewServiceIdentity(authn.ServiceGateway, authn.KeyToken(authn.NewKeyCache(authn.ClientExchange(authClient), time.Minute), e.suite.ServiceKeys["gateway"]))
	exchange := authn.ClientExchangeAs(authClient, gw)
	token := func(key string) string {
		resp, err := exchange(ctx, key)
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		return resp.GetToken()
	}
	firstToken, secondToken := token(first), token(second)

	storeCC, err := grpcconn.Dial(e.suite.GRPC["store"])
	if err != nil {
		t.Fatal(err)
	}
	defer storeCC.Close()
	store := storev1.NewStoreServiceClient(storeCC)
	// storeCode calls the store straight with cred (an API key, which its
	// guard exchanges and caches, or an identity token).
	storeCode := func(cred string) codes.Code {
		_, err := store.GetStats(authn.OutgoingToken(ctx, cred), &storev1.GetStatsRequest{Name: "users/me/stats"})
		return status.Code(err)
	}
	gatewayStatus := func(cred string) int {
		code, _ := e.call("GET", "/v1/users/me", cred, nil)
		return code
	}

	// Everything works, and the caches hold every credential.
	for name, cred := range map[string]string{"first key": first, "second key": second, "first token": firstToken, "second token": secondToken} {
		if got := gatewayStatus(cred); got != 200 {
			t.Fatalf("gateway with ada's %s: %d, want 200", name, got)
		}
		if got := storeCode(cred); got != codes.OK {
			t.Fatalf("store with ada's %s: %v, want OK", name, got)
		}
	}

	// within polls check until it holds, for at most a second after the
	// revocation returned.
	within := func(what string, since time.Time, check func() bool) {
		t.Helper()
		for !check() {
			if time.Since(since) > time.Second {
				t.Errorf("%s: still accepted a second after the revocation", what)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	e.must(200, "DELETE", "/v1/"+secondName, e.admin, nil)
	revoked := time.Now()
	within("gateway with the revoked key", revoked, func() bool { return gatewayStatus(second) == 401 })
	within("store with the revoked key", revoked, func() bool { return storeCode(second) == codes.Unauthenticated })
	within("store with a token of the revoked key", revoked, func() bool { return storeCode(secondToken) == codes.Unauthenticated })
	within("gateway with a token of the revoked key", revoked, func() bool { return gatewayStatus(secondToken) == 401 })
	// ada's other key and its token still work: only that key is revoked.
	if got := gatewayStatus(first); got != 200 {
		t.Errorf("gateway with ada's other key after the revocation: %d, want 200", got)
	}
	if got := storeCode(firstToken); got != codes.OK {
		t.Errorf("store with a token of ada's other key after the revocation: %v, want OK", got)
	}

	e.must(200, "DELETE", "/v1/users/ada", e.admin, nil)
	deleted := time.Now()
	within("gateway with a deleted user's key", deleted, func() bool { return gatewayStatus(first) == 401 })
	within("store with a deleted user's key", deleted, func() bool { return storeCode(first) == codes.Unauthenticated })
	within("store with a deleted user's token", deleted, func() bool { return storeCode(firstToken) == codes.Unauthenticated })
	within("gateway with a deleted user's token", deleted, func() bool { return gatewayStatus(firstToken) == 401 })
	// bob is untouched.
	if got := gatewayStatus(bob); got != 200 {
		t.Errorf("gateway with bob's key after ada's deletion: %d, want 200", got)
	}
	// The refusal says why, and never repeats the token.
	_, err = store.GetStats(authn.OutgoingToken(ctx, firstToken), &storev1.GetStatsRequest{Name: "users/me/stats"})
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "revoked") || strings.Contains(msg, firstToken) {
		t.Errorf("store's refusal of a deleted user's token: %q, want it to say revoked", msg)
	}
}
