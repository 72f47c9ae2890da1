package idlelease_test

import (
	"context"
	"testing"
	"time"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/ingest/internal/idlelease"
)

// TestLeases runs on an embedded server and on the shared one on :4222
// (NATS 2.9, which has no per-key TTL: leases expire by the bucket's age
// limit): a lease is one replica's until released or expired, renewals
// keep it, and a replica that stops renewing loses it to another within
// about its TTL.
func TestLeases(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testLeases(t, testenv.NATS(t), "t"+testenv.RandomID(4)+".") })
	t.Run("shared", func(t *testing.T) {
		url, prefix := testenv.ExternalNATS(t)
		testLeases(t, url, prefix)
	})
}

func testLeases(t *testing.T, url, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ttl = time.Second
	open := func(id string, n int) *idlelease.Leases {
		nc, js, err := eventbus.Connect(url, "idlelease-test-"+id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		l, err := idlelease.Open(ctx, js, idlelease.Config{
			Bucket: eventbus.Topology{Prefix: prefix}.BucketName(idlelease.Bucket), ID: id, Cap: n, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := open("a", 3), open("b", 5)
	if _, err := idlelease.Open(ctx, nil, idlelease.Config{ID: "a.b"}); err == nil {
		t.Error("a replica id with a dot was taken")
	}
	k1, k2 := idlelease.Key("ada", "work"), idlelease.Key("ada", "home")
	if k1 == k2 || k1 != idlelease.Key("ada", "work") {
		t.Fatalf("keys %s %s", k1, k2)
	}

	take := func(l *idlelease.Leases, k string, want bool) {
		t.Helper()
		ok, err := l.Acquire(ctx, k)
		if err != nil || ok != want {
			t.Fatalf("%s Acquire = %v, %v; want %v", l.ID(), ok, err, want)
		}
	}
	take(a, k1, true)
	take(b, k1, false)
	take(b, k2, true)
	caps, holders, err := b.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if caps["a"] != 3 || caps["b"] != 5 || len(caps) != 2 || holders[k1] != "a" || holders[k2] != "b" || len(holders) != 2 {
		t.Fatalf("view: caps %v holders %v", caps, holders)
	}

	// Renewed every TTL/3 for twice the TTL, a's lease stays a's.
	for range 6 {
		time.Sleep(ttl / 3)
		if lost, err := a.Renew(ctx, k1); lost || err != nil {
			t.Fatalf("a Renew = %v, %v", lost, err)
		}
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		take(b, k1, false)
	}

	// Released, it is free at once.
	a.Release(ctx, k1)
	take(b, k1, true)
	if lost, err := a.Renew(ctx, k1); !lost || err != nil {
		t.Fatalf("a Renew after release = %v, %v; want lost", lost, err)
	}

	// b dies holding k1 and k2 (no renewal, no heartbeat): a takes both
	// once they expire.
	start := time.Now()
	var took time.Duration
	for time.Since(start) < 10*ttl {
		ok, err := a.Acquire(ctx, k1)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			took = time.Since(start)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took == 0 {
		t.Fatalf("a dead replica's lease was not free after %s", 10*ttl)
	}
	take(a, k2, true)
	t.Logf("a lease of a replica that stopped renewing was taken over after %s (TTL %s)", took.Round(time.Millisecond), ttl)
	if took > 3*ttl {
		t.Errorf("takeover after %s, want about the TTL (%s)", took, ttl)
	}
	caps, holders, err = a.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := caps["b"]; ok || holders[k1] != "a" || holders[k2] != "a" {
		t.Errorf("after b died: caps %v holders %v", caps, holders)
	}
	// b, back, finds its leases lost.
	if lost, err := b.Renew(ctx, k1); !lost || err != nil {
		t.Errorf("b Renew after takeover = %v, %v; want lost", lost, err)
	}
	a.Leave(ctx)
	if caps, _, err := a.View(ctx); err != nil || len(caps) != 0 {
		t.Errorf("after Leave: caps %v, %v", caps, err)
	}
}
