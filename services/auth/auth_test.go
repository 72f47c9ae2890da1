package auth_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/auth"
)

// logBuffer collects log lines written at once by many goroutines.
type logBuffer = testenv.Buffer

// server is an auth service started on 127.0.0.1:0.
type server struct {
	addr   string
	client authv1.AuthServiceClient
	stop   func()
}

func start(t *testing.T, cfg auth.Config, logs *logBuffer) *server {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.NATS.URL == "" {
		cfg.NATS.URL = testenv.NATS(t) // revocations, the test's own
	}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	addr, stopService := testenv.Serve(t, svc)
	cc, err := grpcconn.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		_ = cc.Close()
		stopService()
	}
	t.Cleanup(stop)
	return &server{addr: addr, client: authv1.NewAuthServiceClient(cc), stop: stop}
}

func TestAuthService(t *testing.T) {
	for backend, url := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) { testAuthService(t, url(t)) })
	}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

func testAuthService(t *testing.T, dbURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logs := &logBuffer{}
	bootstrap := "test-bootstrap-" + testenv.RandomID(16)
	gatewayKey := "mr_gateway_" + testenv.RandomID(20)
	cfg := auth.Config{Config: service.Config{DatabaseURL: dbURL}, BootstrapToken: bootstrap, ServiceKeys: "gateway:" + gatewayKey}
	srv := start(t, cfg, logs)
	c := srv.client
	asAdmin := authn.OutgoingToken(ctx, bootstrap) // an API key, exchanged by auth's own guard

	// The admin creates ada and bob, and a key for ada.
	ada, err := c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: "ada", User: &authv1.User{DisplayName: "Ada Lovelace", Email: "ada@example.com"}})
	if err != nil {
		t.Fatalf("CreateUser(ada): %v", err)
	}
	if got := ada.GetUser(); got.GetName() != "users/ada" || got.GetRole() != authv1.Role_ROLE_USER || got.GetCreateTime() == nil {
		t.Errorf("CreateUser(ada) = %v, want users/ada, ROLE_USER, with a create time", got)
	}
	if _, err := c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: "bob"}); err != nil {
		t.Fatalf("CreateUser(bob): %v", err)
	}
	_, err = c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: "ada"})
	wantCode(t, "CreateUser(ada again)", err, codes.AlreadyExists)
	_, err = c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: "me"})
	wantCode(t, "CreateUser(me)", err, codes.InvalidArgument)
	_, err = c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: "Not_Valid"})
	wantCode(t, "CreateUser(Not_Valid)", err, codes.InvalidArgument)

	created, err := c.CreateApiKey(asAdmin, &authv1.CreateApiKeyRequest{Parent: "users/ada", ApiKey: &authv1.ApiKey{DisplayName: "laptop"}})
	if err != nil {
		t.Fatalf("CreateApiKey(ada): %v", err)
	}
	adaKey := created.GetApiKey().GetKey()
	if !strings.HasPrefix(adaKey, authn.APIKeyPrefix) || len(adaKey) < 40 {
		t.Fatalf("CreateApiKey returned a key of %d characters starting %q; want mr_ and 256 random bits", len(adaKey), adaKey[:min(3, len(adaKey))])
	}
	if p := created.GetApiKey().GetPrefix(); p == "" || !strings.HasPrefix(adaKey, p) || len(p) > 12 {
		t.Errorf("prefix %q is not a short beginning of the key", p)
	}
	if !strings.HasPrefix(created.GetApiKey().GetName(), "users/ada/apiKeys/") {
		t.Errorf("key name = %q, want users/ada/apiKeys/…", created.GetApiKey().GetName())
	}

	// The key appears nowhere but in that response.
	listed, err := c.ListApiKeys(asAdmin, &authv1.ListApiKeysRequest{Parent: "users/ada"})
	if err != nil {
		t.Fatalf("ListApiKeys: %v", err)
	}
	if n := len(listed.GetApiKeys()); n != 1 {
		t.Fatalf("ListApiKeys(ada) has %d keys, want 1", n)
	}
	if k := listed.GetApiKeys()[0]; k.GetKey() != "" || k.GetPrefix() != created.GetApiKey().GetPrefix() || k.GetName() != created.GetApiKey().GetName() {
		t.Errorf("listed key = %v, want name and prefix of the created key and no secret", k)
	}
	gotAda, err := c.GetUser(asAdmin, &authv1.GetUserRequest{Name: "users/ada"})
	if err != nil {
		t.Fatalf("GetUser(ada): %v", err)
	}
	// A user's key is exchanged for a service only (the gateway here); not
	// for a caller without a credential, nor for a user, even an admin.
	asGateway := authn.OutgoingToken(ctx, gatewayKey)
	for who, callCtx := range map[string]context.Context{"no credential": ctx, "ada herself": authn.OutgoingToken(ctx, adaKey), "the admin": asAdmin} {
		_, err := c.ExchangeApiKey(callCtx, &authv1.ExchangeApiKeyRequest{ApiKey: adaKey})
		wantCode(t, "ExchangeApiKey(ada's key) by "+who, err, codes.PermissionDenied)
	}
	gatewayToken, err := c.ExchangeApiKey(ctx, &authv1.ExchangeApiKeyRequest{ApiKey: gatewayKey}) // a service's own key: no credential needed
	if err != nil || gatewayToken.GetRole() != authv1.Role_ROLE_SERVICE {
		t.Fatalf("ExchangeApiKey(the gateway's key) = %v, %v; want a service token", gatewayToken, err)
	}
	exchanged, err := c.ExchangeApiKey(asGateway, &authv1.ExchangeApiKeyRequest{ApiKey: adaKey})
	if err != nil {
		t.Fatalf("ExchangeApiKey as the gateway: %v", err)
	}
	if _, err := c.ExchangeApiKey(authn.OutgoingToken(ctx, gatewayToken.GetToken()), &authv1.ExchangeApiKeyRequest{ApiKey: adaKey}); err != nil {
		t.Errorf("ExchangeApiKey with the gateway's identity token: %v", err)
	}
	if _, err := c.ExchangeApiKey(authn.OutgoingToken(ctx, exchanged.GetToken()), &authv1.ExchangeApiKeyRequest{ApiKey: adaKey}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ExchangeApiKey with ada's identity token: %v, want PermissionDenied", err)
	}
	for what, m := range map[string]proto.Message{"ListApiKeys": listed, "GetUser": gotAda, "ExchangeApiKey": exchanged} {
		assertNoSecret(t, what+" response", m, adaKey)
	}
	assertNoPlaintextKeys(t, dbURL, adaKey, bootstrap)

	// The token names ada, a user, and verifies with auth's JWKS.
	if exchanged.GetUser() != "users/ada" || exchanged.GetRole() != authv1.Role_ROLE_USER {
		t.Errorf("ExchangeApiKey = %s %v, want users/ada ROLE_USER", exchanged.GetUser(), exchanged.GetRole())
	}
	if ttl := time.Until(exchanged.GetExpireTime().AsTime()); ttl < 50*time.Second || ttl > time.Minute {
		t.Errorf("token expires in %v, want about the 1m TTL", ttl)
	}
	adaToken := exchanged.GetToken()
	verifier := authn.NewVerifier(authn.ClientKeys(c))
	caller, err := verifier.Verify(ctx, adaToken)
	if err != nil {
		t.Fatalf("Verify(ada's token): %v", err)
	}
	if want := (authn.Caller{User: "ada"}); caller != want {
		t.Errorf("caller = %+v, want %+v", caller, want)
	}
	jwks, err := c.GetJwks(ctx, &authv1.GetJwksRequest{})
	if err != nil {
		t.Fatalf("GetJwks without a credential: %v", err)
	}
	if ks := jwks.GetKeys(); len(ks) != 1 || ks[0].GetKty() != "OKP" || ks[0].GetCrv() != "Ed25519" || ks[0].GetAlg() != "EdDSA" || ks[0].GetUse() != "sig" || ks[0].GetKid() == "" {
		t.Errorf("GetJwks = %v, want one Ed25519 signing key", ks)
	}

	// Ada, with her token, reaches herself and no one else.
	asAda := authn.OutgoingToken(ctx, adaToken)
	_, err = c.GetUser(asAda, &authv1.GetUserRequest{Name: "users/bob"})
	wantCode(t, "ada GetUser(bob)", err, codes.PermissionDenied)
	_, err = c.CreateApiKey(asAda, &authv1.CreateApiKeyRequest{Parent: "users/bob"})
	wantCode(t, "ada CreateApiKey(bob)", err, codes.PermissionDenied)
	_, err = c.ListApiKeys(asAda, &authv1.ListApiKeysRequest{Parent: "users/bob"})
	wantCode(t, "ada ListApiKeys(bob)", err, codes.PermissionDenied)
	_, err = c.CreateUser(asAda, &authv1.CreateUserRequest{UserId: "carol"})
	wantCode(t, "ada CreateUser", err, codes.PermissionDenied)
	_, err = c.ListUsers(asAda, &authv1.ListUsersRequest{})
	wantCode(t, "ada ListUsers", err, codes.PermissionDenied)
	me, err := c.GetUser(asAda, &authv1.GetUserRequest{Name: "users/me"})
	if err != nil || me.GetUser().GetName() != "users/ada" || me.GetUser().GetEmail() != "ada@example.com" {
		t.Errorf("ada GetUser(users/me) = %v, %v; want users/ada", me, err)
	}
	second, err := c.CreateApiKey(asAda, &authv1.CreateApiKeyRequest{Parent: "users/me", ApiKey: &authv1.ApiKey{DisplayName: "phone"}})
	if err != nil {
		t.Fatalf("ada CreateApiKey(users/me): %v", err)
	}
	if !strings.HasPrefix(second.GetApiKey().GetName(), "users/ada/apiKeys/") {
		t.Errorf("ada's own key is named %q, want users/ada/apiKeys/…", second.GetApiKey().GetName())
	}
	// Her API key works straight as a bearer credential too.
	me, err = c.GetUser(authn.OutgoingToken(ctx, adaKey), &authv1.GetUserRequest{Name: "users/me"})
	if err != nil || me.GetUser().GetName() != "users/ada" {
		t.Errorf("GetUser(users/me) with ada's API key = %v, %v", me, err)
	}

	// A deleted key no longer exchanges, nor authenticates.
	secondKey := second.GetApiKey().GetKey()
	if _, err := c.DeleteApiKey(asAda, &authv1.DeleteApiKeyRequest{Name: strings.Replace(second.GetApiKey().GetName(), "users/ada/", "users/me/", 1)}); err != nil {
		t.Fatalf("ada DeleteApiKey(her second key): %v", err)
	}
	_, err = c.ExchangeApiKey(asGateway, &authv1.ExchangeApiKeyRequest{ApiKey: secondKey})
	wantCode(t, "ExchangeApiKey(revoked)", err, codes.Unauthenticated)
	if err != nil && strings.Contains(err.Error(), secondKey) {
		t.Error("the exchange error repeats the key")
	}
	_, err = c.GetUser(authn.OutgoingToken(ctx, secondKey), &authv1.GetUserRequest{Name: "users/me"})
	wantCode(t, "GetUser with a revoked key", err, codes.Unauthenticated)
	_, err = c.DeleteApiKey(asAda, &authv1.DeleteApiKeyRequest{Name: second.GetApiKey().GetName()})
	wantCode(t, "DeleteApiKey(already deleted)", err, codes.NotFound)
	_, err = c.DeleteApiKey(asAda, &authv1.DeleteApiKeyRequest{Name: "users/bob/apiKeys/whatever"})
	wantCode(t, "ada DeleteApiKey(bob's)", err, codes.PermissionDenied)
	if l, err := c.ListApiKeys(asAda, &authv1.ListApiKeysRequest{Parent: "users/me"}); err != nil || len(l.GetApiKeys()) != 1 {
		t.Errorf("ada's keys after the delete = %v, %v; want the first one only", l, err)
	}

	// Without a valid credential nothing but the public methods answer.
	_, err = c.GetUser(ctx, &authv1.GetUserRequest{Name: "users/ada"})
	wantCode(t, "GetUser without a credential", err, codes.Unauthenticated)
	_, err = c.GetUser(authn.OutgoingToken(ctx, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEifQ.x"), &authv1.GetUserRequest{Name: "users/ada"})
	wantCode(t, "GetUser with a forged token", err, codes.Unauthenticated)
	_, err = c.ExchangeApiKey(ctx, &authv1.ExchangeApiKeyRequest{ApiKey: "mr_not-a-key"})
	wantCode(t, "ExchangeApiKey(unknown)", err, codes.Unauthenticated)

	// A restart on the same database keeps the signing key and the
	// bootstrap key: an earlier token still verifies.
	kid := jwks.GetKeys()[0].GetKid()
	srv.stop()
	srv = start(t, cfg, logs)
	c = srv.client
	caller, err = authn.NewVerifier(authn.ClientKeys(c)).Verify(ctx, adaToken)
	if err != nil || caller.User != "ada" {
		t.Errorf("after a restart, Verify(ada's earlier token) = %+v, %v", caller, err)
	}
	if jwks, err := c.GetJwks(ctx, &authv1.GetJwksRequest{}); err != nil || len(jwks.GetKeys()) != 1 || jwks.GetKeys()[0].GetKid() != kid {
		t.Errorf("after a restart, GetJwks = %v, %v; want the one key %s", jwks, err, kid)
	}
	asAdmin = authn.OutgoingToken(ctx, bootstrap)
	me, err = c.GetUser(asAdmin, &authv1.GetUserRequest{Name: "users/me"})
	if err != nil || me.GetUser().GetName() != "users/admin" || me.GetUser().GetRole() != authv1.Role_ROLE_ADMIN {
		t.Errorf("after a restart, the bootstrap token is %v, %v; want users/admin ROLE_ADMIN", me, err)
	}
	if l, err := c.ListApiKeys(asAdmin, &authv1.ListApiKeysRequest{Parent: "users/admin"}); err != nil || len(l.GetApiKeys()) != 1 {
		t.Errorf("after a restart, admin's keys = %v, %v; want the one bootstrap key", l, err)
	}
	users, err := c.ListUsers(asAdmin, &authv1.ListUsersRequest{PageSize: 2})
	if err != nil || len(users.GetUsers()) != 2 || users.GetNextPageToken() == "" {
		t.Fatalf("ListUsers(page_size 2) = %v, %v; want 2 users and a next page", users, err)
	}
	rest, err := c.ListUsers(asAdmin, &authv1.ListUsersRequest{PageSize: 2, PageToken: users.GetNextPageToken()})
	if err != nil || len(rest.GetUsers()) != 1 || rest.GetNextPageToken() != "" {
		t.Errorf("ListUsers(second page) = %v, %v; want the last user", rest, err)
	}

	srv.stop()
	for _, secret := range []string{adaKey, secondKey, bootstrap, adaToken, exchanged.GetToken()} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs hold a secret (%d characters)", len(secret))
		}
	}
}

// assertNoSecret fails when m, in any encoding a client sees, holds secret.
func assertNoSecret(t *testing.T, what string, m proto.Message, secret string) {
	t.Helper()
	bin, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bin, []byte(secret)) || bytes.Contains(js, []byte(secret)) {
		t.Errorf("the %s holds the API key", what)
	}
}

// assertNoPlaintextKeys reads every row of api_keys straight from the
// database and fails when one holds a secret, or any part of it past the
// prefix.
func assertNoPlaintextKeys(t *testing.T, dbURL string, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	backend, dsn, err := sqldb.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	switch backend {
	case sqldb.Postgres:
		pool, err := sqldb.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		db = stdlib.OpenDBFromPool(pool)
	default:
		db, err = sqldb.OpenSQLite(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT * FROM api_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var row strings.Builder
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				row.Write(b)
			} else {
				fmt.Fprint(&row, v)
			}
			row.WriteByte('|')
		}
		for _, s := range secrets {
			if tail := s[len(s)/2:]; strings.Contains(row.String(), tail) {
				t.Errorf("a row of api_keys holds an API key in plain text")
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Errorf("api_keys has %d rows, want the bootstrap key and ada's", n)
	}
}

// A bootstrap token shorter than 32 characters is refused at start, with
// the reason and without the token.
func TestShortBootstrapTokenRefused(t *testing.T) {
	short := "admin-" + testenv.RandomID(10)
	cfg := auth.Config{Config: service.Config{DatabaseURL: testenv.SQLiteURL(t)}, BootstrapToken: short}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		_ = svc.Close()
		t.Fatal("auth.New accepted a 26-character bootstrap token")
	}
	if msg := err.Error(); !strings.Contains(msg, "MAILROOM_BOOTSTRAP_TOKEN has 26 characters") || !strings.Contains(msg, "at least 32") || strings.Contains(msg, short) {
		t.Errorf("error = %q, want the length, the minimum of 32 and not the token", msg)
	}
	cfg.BootstrapToken = short + testenv.RandomID(3)
	if err := cfg.Validate(); err != nil {
		t.Errorf("a 32-character token: %v", err)
	}
}

// Identity tokens live at most a minute: the default, and a longer
// MAILROOM_TOKEN_TTL is refused.
func TestTokenTTLAtMostAMinute(t *testing.T) {
	cfg := auth.Config{Config: service.Config{DatabaseURL: "sqlite://unused.db"}}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.TokenTTL <= 0 || cfg.TokenTTL > time.Minute {
		t.Errorf("default MAILROOM_TOKEN_TTL = %s, want at most 1m", cfg.TokenTTL)
	}
	cfg.TokenTTL = 5 * time.Minute
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "MAILROOM_TOKEN_TTL") {
		t.Errorf("Validate with a 5m TTL = %v, want an error naming MAILROOM_TOKEN_TTL", err)
	}
}
