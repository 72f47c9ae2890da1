package authn_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/authn/authntest"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
)

func startNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevocationsDropCachesAndFailSafe: a watched revocation drops the
// cached exchanges of the key (and of the user) and refuses tokens issued
// before it; while NATS is away every cached exchange is dropped and new
// ones live DefaultFallbackTTL at most.
func TestRevocationsDropCachesAndFailSafe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := startNATS(t)
	_, js, err := eventbus.Connect(ns.ClientURL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	store, err := authn.OpenRevocations(ctx, js, "REVOCATIONS", 1)
	if err != nil {
		t.Fatal(err)
	}
	a := authntest.New(t)
	var exchanges atomic.Int32
	tokens := map[string]string{
		"key-1": a.TokenFor(authn.Caller{User: "ada"}), // no key claim: the fake's tokens
	}
	cache := authn.NewKeyCache(func(ctx context.Context, key string) (*authv1.ExchangeApiKeyResponse, error) {
		exchanges.Add(1)
		return &authv1.ExchangeApiKeyResponse{Token: tokens[key], User: "users/ada", ExpireTime: timestamppb.New(time.Now().Add(5 * time.Minute))}, nil
	}, 30*time.Second)
	rev := authn.NewRevocations()
	cache.WatchRevocations(rev)
	done := make(chan struct{})
	go func() { defer close(done); _ = rev.Watch(ctx, store) }()
	defer func() { cancel(); <-done }()
	eventually(t, "watch live", 5*time.Second, rev.Live)

	if _, err := cache.Token(ctx, "key-1"); err != nil {
		t.Fatal(err)
	}
	if !cache.Cached("key-1") {
		t.Fatal("exchange not cached while the watch is live")
	}
	issued := time.Now().Add(-time.Second)
	if err := store.RevokeUser(ctx, "ada", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ada's exchange dropped", time.Second, func() bool { return !cache.Cached("key-1") })
	if !rev.TokenRevoked("ada", "", issued) {
		t.Error("a token of ada issued before the deletion is not revoked")
	}
	if rev.TokenRevoked("ada", "", time.Now().Add(time.Second)) || rev.TokenRevoked("bob", "", issued) {
		t.Error("a later token of ada, or bob's, is revoked")
	}
	if err := store.RevokeKey(ctx, "bob", "k1", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's key revoked", time.Second, func() bool { return rev.TokenRevoked("bob", "k1", time.Now()) })
	if rev.TokenRevoked("bob", "k2", issued) {
		t.Error("bob's other key is revoked")
	}
	if deleted, err := store.Deleted(ctx, "ada", issued); err != nil || !deleted {
		t.Errorf("Deleted(ada, before the deletion) = %v, %v; want true", deleted, err)
	}
	if deleted, err := store.Deleted(ctx, "ada", time.Now().Add(time.Second)); err != nil || deleted {
		t.Errorf("Deleted(ada, after the deletion) = %v, %v; want false (a new user of the same id)", deleted, err)
	}

	// NATS goes away: the watch is no longer live, the cache is emptied
	// and holds new exchanges for a second at most.
	tokens["key-2"] = a.TokenFor(authn.Caller{User: "carol"})
	if _, err := cache.Token(ctx, "key-2"); err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	eventually(t, "watch not live without NATS", 5*time.Second, func() bool { return !rev.Live() })
	if cache.Cached("key-2") {
		t.Error("an exchange cached while the watch was live survived its loss")
	}
	if _, err := cache.Token(ctx, "key-2"); err != nil {
		t.Fatal(err)
	}
	if !cache.Cached("key-2") {
		t.Fatal("not cached at all without NATS")
	}
	eventually(t, "fallback TTL", authn.DefaultFallbackTTL+500*time.Millisecond, func() bool { return !cache.Cached("key-2") })
}

// TestRevocationsWithTheDeploymentsNATSUsers: with the users and subject
// permissions of deploy/k8s, auth records a revocation and the gateway's
// user watches it; the gateway's user cannot write one.
func TestRevocationsWithTheDeploymentsNATSUsers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := testenv.NATSWithDeployAuth(t, "../../deploy/k8s/components/nats/nats.yaml")
	_, authJS, err := eventbus.Connect(n.URL("auth"), "auth")
	if err != nil {
		t.Fatal(err)
	}
	store, err := authn.OpenRevocations(ctx, authJS, authn.RevocationBucket, 1)
	if err != nil {
		t.Fatalf("auth opening the bucket: %v", err)
	}
	_, gwJS, err := eventbus.Connect(n.URL("gateway"), "gateway")
	if err != nil {
		t.Fatal(err)
	}
	watched, err := authn.BindRevocations(ctx, gwJS, authn.RevocationBucket)
	if err != nil {
		t.Fatalf("the gateway binding the bucket: %v", err)
	}
	rev := authn.NewRevocations()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = rev.Watch(wctx, watched) }()
	defer func() { stop(); <-done }()
	eventually(t, "the gateway's watch live", 5*time.Second, rev.Live)
	if err := store.RevokeUser(ctx, "ada", time.Now()); err != nil {
		t.Fatalf("auth recording a revocation: %v", err)
	}
	eventually(t, "the gateway sees it", time.Second, func() bool { return rev.TokenRevoked("ada", "", time.Now().Add(-time.Minute)) })
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if err := watched.RevokeUser(pctx, "bob", time.Now()); err == nil {
		t.Error("the gateway's NATS user wrote a revocation")
	}
}
