package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth"
)

// startAuth runs an auth service with cfg on 127.0.0.1:0 and returns its
// address and a function that stops it.
func startAuth(t *testing.T, cfg auth.Config) (string, func()) {
	t.Helper()
	if cfg.NATS.URL == "" {
		cfg.NATS.URL = testenv.NATS(t) // revocations, the test's own
	}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return testenv.Serve(t, svc)
}

func TestVaultRotate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, ingestKey := "mr_"+testenv.RandomID(52), "mr_"+testenv.RandomID(52)
	k1, k2 := auth.NewVaultKey("k1"), auth.NewVaultKey("k2")
	cfg := auth.Config{Config: service.Config{DatabaseURL: testenv.SQLiteURL(t)}, BootstrapToken: admin, ServiceKeys: "ingest:" + ingestKey, VaultKeys: k1}
	addr, stop := startAuth(t, cfg)
	cc, err := grpcconn.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range []string{"a", "b"} {
		_, err := authv1.NewAuthServiceClient(cc).PutCredential(authn.OutgoingToken(ctx, ingestKey), &authv1.PutCredentialRequest{Credential: &authv1.Credential{
			Name: "users/admin/mailboxes/" + mb + "/credential", Kind: authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD, Secret: []byte("pw"),
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cc.Close()
	stop()

	cfg.VaultKeys = k2 + "," + k1
	addr, _ = startAuth(t, cfg)
	t.Setenv("MAILROOM_AUTH_ADDR", addr)
	t.Setenv("MAILROOM_KEY", admin)
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"vault", "rotate"}, &stdout, &stderr); err != nil {
		t.Fatalf("mailroom vault rotate: %v (stderr %s)", err, &stderr)
	}
	if got, want := stdout.String(), "rotated 2 credentials; every credential is now under key-encryption key k2\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	stdout.Reset()
	if err := run(ctx, []string{"vault", "rotate", "-addr", addr}, &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "rotated 0 credentials") {
		t.Errorf("a second rotation: %q, %v; want 0 moved", stdout.String(), err)
	}

	// A key that is not an admin's is refused, and the error says why
	// without repeating the key.
	t.Setenv("MAILROOM_KEY", ingestKey)
	err = run(ctx, []string{"vault", "rotate"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") || strings.Contains(err.Error(), ingestKey) {
		t.Errorf("rotate with a service key = %v, want PermissionDenied", err)
	}
	t.Setenv("MAILROOM_KEY", "")
	if err := run(ctx, []string{"vault", "rotate"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "MAILROOM_KEY") {
		t.Errorf("rotate without MAILROOM_KEY = %v", err)
	}
	if err := run(ctx, []string{"vault"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("mailroom vault = %v, want the usage", err)
	}
	if err := run(ctx, []string{"vault", "spin"}, &stdout, &stderr); err == nil {
		t.Error("mailroom vault spin succeeded")
	}
}
