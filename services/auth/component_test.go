package auth_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/sethvargo/go-envconfig"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authv1 "mailroom.dev/gen/go/mailroom/auth/v1"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/grpcserver"
	"mailroom.dev/platform/service"
	"mailroom.dev/platform/sqldb"
	"mailroom.dev/platform/telemetry"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/platform/transport"
	"mailroom.dev/platform/transport/transporttest"
	"mailroom.dev/services/auth"
)

// spans receives every span of the test binary, to scan for secrets.
var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "auth-test", Exporter: spans})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = shutdown(context.Background())
	os.Exit(code)
}

// randomKey is a key as `mailroom dev` makes them.
func randomKey() string { return "mr_" + testenv.RandomID(52) }

// assertNoSecrets fails when the logs, a span (name, attributes, events,
// status) or the database holds one of the secrets, in plain or base64.
func assertNoSecrets(t *testing.T, logs *logBuffer, dbURL string, secrets ...string) {
	t.Helper()
	var haystacks []string
	haystacks = append(haystacks, logs.String(), dumpDatabase(t, dbURL))
	for _, s := range spans.GetSpans() {
		var b strings.Builder
		b.WriteString(s.Name + "|" + s.Status.Description)
		for _, a := range s.Attributes {
			b.WriteString("|" + string(a.Key) + "=" + a.Value.Emit())
		}
		for _, e := range s.Events {
			b.WriteString("|" + e.Name)
			for _, a := range e.Attributes {
				b.WriteString("|" + string(a.Key) + "=" + a.Value.Emit())
			}
		}
		haystacks = append(haystacks, b.String())
	}
	for i, h := range haystacks {
		where := [...]string{"logs", "database"}[min(i, 1)]
		if i >= 2 {
			where = "spans"
		}
		for _, secret := range secrets {
			for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret))} {
				if strings.Contains(h, form) {
					t.Errorf("the %s hold a planted secret (%d characters)", where, len(secret))
				}
			}
		}
	}
}

// dumpDatabase returns every row of every auth table as text (bytes as they
// are), as a stolen dump would show them.
func dumpDatabase(t *testing.T, dbURL string) string {
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
	var out strings.Builder
	for _, table := range []string{"users", "api_keys", "service_keys", "signing_keys", "credentials"} {
		rows, err := db.QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out.Write(b)
				} else {
					fmt.Fprint(&out, v)
				}
				out.WriteByte('|')
			}
			out.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out.String()
}

// execSQL runs a statement on the database at dbURL (to tamper with it).
func execSQL(t *testing.T, dbURL, query string, args ...any) {
	t.Helper()
	ctx := context.Background()
	backend, dsn, err := sqldb.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	if backend == sqldb.Postgres {
		pool, err := sqldb.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		db = stdlib.OpenDBFromPool(pool)
	} else if db, err = sqldb.OpenSQLite(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatal(err)
	}
}

func TestVault(t *testing.T) {
	for backend, url := range testenv.DatabaseURLs() {
		t.Run(backend, func(t *testing.T) { testVault(t, url(t)) })
	}
}

func testVault(t *testing.T, dbURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logs := &logBuffer{}
	bootstrap := randomKey()
	ingestKey, storeKey := randomKey(), randomKey()
	k1, k2 := auth.NewVaultKey("k1"), auth.NewVaultKey("k2")
	cfg := auth.Config{
		Config:         service.Config{DatabaseURL: dbURL},
		BootstrapToken: bootstrap,
		ServiceKeys:    "ingest:" + ingestKey + ",store:" + storeKey,
		VaultKeys:      k1,
	}
	srv := start(t, cfg, logs)
	c := srv.client
	asAdmin := authn.OutgoingToken(ctx, bootstrap)
	if _, err := c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: "ada"}); err != nil {
		t.Fatal(err)
	}
	adaKey, err := c.CreateApiKey(asAdmin, &authv1.CreateApiKeyRequest{Parent: "users/ada"})
	if err != nil {
		t.Fatal(err)
	}

	// A service key exchanges for a service identity.
	ex, err := c.ExchangeApiKey(ctx, &authv1.ExchangeApiKeyRequest{ApiKey: ingestKey})
	if err != nil {
		t.Fatalf("ExchangeApiKey(ingest's service key): %v", err)
	}
	if ex.GetRole() != authv1.Role_ROLE_SERVICE || ex.GetUser() != "" {
		t.Errorf("ExchangeApiKey(service key) = role %v user %q, want ROLE_SERVICE and no user", ex.GetRole(), ex.GetUser())
	}
	asIngest := authn.OutgoingToken(ctx, ex.GetToken())
	asStore := authn.OutgoingToken(ctx, storeKey) // a service key straight as a credential works too
	asAda := authn.OutgoingToken(ctx, adaKey.GetApiKey().GetKey())

	secrets := map[string]string{"work": "imap-pw-" + testenv.RandomID(20), "gmail": "1//refresh-" + testenv.RandomID(30)}
	put := func(mailbox string, kind authv1.CredentialKind) {
		t.Helper()
		resp, err := c.PutCredential(asIngest, &authv1.PutCredentialRequest{Credential: &authv1.Credential{
			Name: "users/ada/mailboxes/" + mailbox + "/credential", Kind: kind, Secret: []byte(secrets[mailbox]),
		}})
		if err != nil {
			t.Fatalf("PutCredential(%s) as ingest: %v", mailbox, err)
		}
		if got := resp.GetCredential(); got.GetSecret() != nil || got.GetKeyId() != "k1" || got.GetName() != "users/ada/mailboxes/"+mailbox+"/credential" {
			t.Errorf("PutCredential = %v, want the name, key k1 and no secret", got)
		}
	}
	put("work", authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD)
	put("gmail", authv1.CredentialKind_CREDENTIAL_KIND_GMAIL_REFRESH_TOKEN)
	got, err := c.GetCredential(asIngest, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/work/credential"})
	if err != nil || string(got.GetCredential().GetSecret()) != secrets["work"] || got.GetCredential().GetKind() != authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD {
		t.Fatalf("GetCredential as ingest = %v, %v", got, err)
	}

	// Only ingest reaches a mailbox's credential: not another service, not
	// the admin, not the credential's owner.
	for who, ctx := range map[string]context.Context{"store": asStore, "admin": asAdmin, "ada": asAda} {
		_, err := c.GetCredential(ctx, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/work/credential"})
		wantCode(t, who+" GetCredential", err, codes.PermissionDenied)
		_, err = c.PutCredential(ctx, &authv1.PutCredentialRequest{Credential: &authv1.Credential{Name: "users/ada/mailboxes/work/credential", Kind: 2, Secret: []byte("x")}})
		wantCode(t, who+" PutCredential", err, codes.PermissionDenied)
		_, err = c.DeleteCredential(ctx, &authv1.DeleteCredentialRequest{Name: "users/ada/mailboxes/work/credential"})
		wantCode(t, who+" DeleteCredential", err, codes.PermissionDenied)
	}
	// The store, and only the store, keeps webhook secrets there; a webhook
	// named like a mailbox does not touch the mailbox's credential.
	whsec := "whsec_" + testenv.RandomID(40)
	const whName = "users/ada/webhooks/work/secret"
	whPut, err := c.PutCredential(asStore, &authv1.PutCredentialRequest{Credential: &authv1.Credential{
		Name: whName, Kind: authv1.CredentialKind_CREDENTIAL_KIND_WEBHOOK_SECRET, Secret: []byte(whsec),
	}})
	if err != nil || whPut.GetCredential().GetName() != whName || whPut.GetCredential().GetSecret() != nil {
		t.Fatalf("PutCredential(webhook secret) as store = %v, %v", whPut, err)
	}
	whGot, err := c.GetCredential(asStore, &authv1.GetCredentialRequest{Name: whName})
	if err != nil || string(whGot.GetCredential().GetSecret()) != whsec || whGot.GetCredential().GetKind() != authv1.CredentialKind_CREDENTIAL_KIND_WEBHOOK_SECRET {
		t.Fatalf("GetCredential(webhook secret) as store = %v, %v", whGot, err)
	}
	if got, err := c.GetCredential(asIngest, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/work/credential"}); err != nil || string(got.GetCredential().GetSecret()) != secrets["work"] {
		t.Fatalf("the mailbox credential after a webhook secret of the same id = %v, %v", got, err)
	}
	for who, ctx := range map[string]context.Context{"ingest": asIngest, "admin": asAdmin, "ada": asAda} {
		_, err := c.GetCredential(ctx, &authv1.GetCredentialRequest{Name: whName})
		wantCode(t, who+" GetCredential(webhook secret)", err, codes.PermissionDenied)
		_, err = c.PutCredential(ctx, &authv1.PutCredentialRequest{Credential: &authv1.Credential{Name: whName, Kind: 3, Secret: []byte("x")}})
		wantCode(t, who+" PutCredential(webhook secret)", err, codes.PermissionDenied)
		_, err = c.DeleteCredential(ctx, &authv1.DeleteCredentialRequest{Name: whName})
		wantCode(t, who+" DeleteCredential(webhook secret)", err, codes.PermissionDenied)
	}
	_, err = c.PutCredential(asStore, &authv1.PutCredentialRequest{Credential: &authv1.Credential{Name: whName, Kind: authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD, Secret: []byte("x")}})
	wantCode(t, "PutCredential(webhook secret as an IMAP password)", err, codes.InvalidArgument)
	_, err = c.PutCredential(asIngest, &authv1.PutCredentialRequest{Credential: &authv1.Credential{Name: "users/ada/mailboxes/x/credential", Kind: authv1.CredentialKind_CREDENTIAL_KIND_WEBHOOK_SECRET, Secret: []byte("x")}})
	wantCode(t, "PutCredential(a mailbox credential as a webhook secret)", err, codes.InvalidArgument)
	_, err = c.GetCredential(ctx, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/work/credential"})
	wantCode(t, "GetCredential without a credential", err, codes.Unauthenticated)
	_, err = c.GetCredential(asIngest, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/work"})
	wantCode(t, "GetCredential(a mailbox name)", err, codes.InvalidArgument)
	_, err = c.PutCredential(asIngest, &authv1.PutCredentialRequest{Credential: &authv1.Credential{Name: "users/ada/mailboxes/x/credential", Secret: []byte("x")}})
	wantCode(t, "PutCredential without a kind", err, codes.InvalidArgument)

	// A row moved to another mailbox does not decrypt: Internal, no garbage.
	execSQL(t, dbURL, `INSERT INTO credentials (user_id, mailbox_id, kind, kek_id, wrapped_key, ciphertext, create_time, update_time)
		SELECT user_id, 'stolen', kind, kek_id, wrapped_key, ciphertext, create_time, update_time FROM credentials WHERE mailbox_id = 'work'`)
	swapped, err := c.GetCredential(asIngest, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/stolen/credential"})
	wantCode(t, "GetCredential(moved row)", err, codes.Internal)
	if swapped.GetCredential().GetSecret() != nil || strings.Contains(status.Convert(err).Message(), secrets["work"]) {
		t.Error("a moved row gave something away")
	}
	if _, err := c.DeleteCredential(asIngest, &authv1.DeleteCredentialRequest{Name: "users/ada/mailboxes/stolen/credential"}); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	_, err = c.DeleteCredential(asIngest, &authv1.DeleteCredentialRequest{Name: "users/ada/mailboxes/stolen/credential"})
	wantCode(t, "DeleteCredential(again)", err, codes.NotFound)

	// Rotation: k2 becomes active, `vault rotate` moves everything, k1 goes.
	srv.stop()
	cfg.VaultKeys = k2 + "," + k1
	srv = start(t, cfg, logs)
	c = srv.client
	_, err = c.RotateVaultKey(asAda, &authv1.RotateVaultKeyRequest{})
	wantCode(t, "ada RotateVaultKey", err, codes.PermissionDenied)
	_, err = c.RotateVaultKey(asIngest, &authv1.RotateVaultKeyRequest{})
	wantCode(t, "ingest RotateVaultKey", err, codes.PermissionDenied)
	rot, err := c.RotateVaultKey(asAdmin, &authv1.RotateVaultKeyRequest{})
	if err != nil || rot.GetRotated() != 3 || rot.GetKeyId() != "k2" {
		t.Fatalf("RotateVaultKey = %v, %v; want 3 credentials now under k2", rot, err)
	}
	srv.stop()
	cfg.VaultKeys = k2
	srv = start(t, cfg, logs)
	c = srv.client
	for mailbox, want := range secrets {
		got, err := c.GetCredential(asIngest, &authv1.GetCredentialRequest{Name: "users/ada/mailboxes/" + mailbox + "/credential"})
		if err != nil || string(got.GetCredential().GetSecret()) != want || got.GetCredential().GetKeyId() != "k2" {
			t.Errorf("with k2 alone, GetCredential(%s) = %v, %v", mailbox, got, err)
		}
	}
	if got, err := c.GetCredential(asStore, &authv1.GetCredentialRequest{Name: whName}); err != nil || string(got.GetCredential().GetSecret()) != whsec || got.GetCredential().GetKeyId() != "k2" {
		t.Errorf("with k2 alone, GetCredential(webhook secret) = %v, %v", got, err)
	}
	srv.stop()

	// Nothing of value in the logs, the spans or a dump of the database.
	planted := []string{bootstrap, ingestKey, storeKey, adaKey.GetApiKey().GetKey(), ex.GetToken(), secrets["work"], secrets["gmail"], whsec}
	for _, k := range []string{k1, k2} {
		_, material, _ := strings.Cut(k, ":")
		planted = append(planted, material)
	}
	assertNoSecrets(t, logs, dbURL, planted...)
}

// A vault without a key-encryption key refuses, and says why.
func TestVaultWithoutKeys(t *testing.T) {
	logs := &logBuffer{}
	ingestKey := randomKey()
	srv := start(t, auth.Config{Config: service.Config{DatabaseURL: testenv.SQLiteURL(t)}, BootstrapToken: randomKey(), ServiceKeys: "ingest:" + ingestKey}, logs)
	ctx := authn.OutgoingToken(context.Background(), ingestKey)
	_, err := srv.client.PutCredential(ctx, &authv1.PutCredentialRequest{Credential: &authv1.Credential{
		Name: "users/admin/mailboxes/m/credential", Kind: authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD, Secret: []byte("pw"),
	}})
	wantCode(t, "PutCredential without MAILROOM_VAULT_KEYS", err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "MAILROOM_VAULT_KEYS") {
		t.Errorf("message %q does not name MAILROOM_VAULT_KEYS", status.Convert(err).Message())
	}
	if !strings.Contains(logs.String(), "MAILROOM_VAULT_KEYS is not set") {
		t.Error("no warning at start about the missing vault keys")
	}
}

// purgeFake is a service's PurgeUserData: it admits auth's service identity
// only, and answers Unimplemented while failing is set.
type purgeFake struct {
	counts  map[string]int64
	failing atomic.Bool
	mu      sync.Mutex
	users   []string
}

func (f *purgeFake) purge(ctx context.Context, user string) (map[string]int64, error) {
	if err := authn.RequireService(ctx, authn.ServiceAuth); err != nil {
		return nil, err
	}
	if f.failing.Load() {
		return nil, status.Error(codes.Unimplemented, "method PurgeUserData not implemented")
	}
	f.mu.Lock()
	f.users = append(f.users, user)
	f.mu.Unlock()
	return f.counts, nil
}

type ingestPurge struct {
	ingestv1.UnimplementedIngestServiceServer
	*purgeFake
}

func (f ingestPurge) PurgeUserData(ctx context.Context, req *ingestv1.PurgeUserDataRequest) (*ingestv1.PurgeUserDataResponse, error) {
	d, err := f.purge(ctx, req.GetUser())
	return &ingestv1.PurgeUserDataResponse{Deleted: d}, err
}

type classifierPurge struct {
	classifierv1.UnimplementedClassifierServiceServer
	*purgeFake
}

func (f classifierPurge) PurgeUserData(ctx context.Context, req *classifierv1.PurgeUserDataRequest) (*classifierv1.PurgeUserDataResponse, error) {
	d, err := f.purge(ctx, req.GetUser())
	return &classifierv1.PurgeUserDataResponse{Deleted: d}, err
}

type storePurge struct {
	storev1.UnimplementedStoreServiceServer
	*purgeFake
}

func (f storePurge) PurgeUserData(ctx context.Context, req *storev1.PurgeUserDataRequest) (*storev1.PurgeUserDataResponse, error) {
	d, err := f.purge(ctx, req.GetUser())
	return &storev1.PurgeUserDataResponse{Deleted: d}, err
}

// serveFake serves register on lis with a guard that verifies tokens
// against the auth service at authAddr, as the real services do.
func serveFake(t *testing.T, lis net.Listener, authAddr string, register func(*grpc.Server)) {
	t.Helper()
	cc, err := grpcconn.Dial(authAddr)
	if err != nil {
		t.Fatal(err)
	}
	guard := authn.NewGuard(authv1.NewAuthServiceClient(cc), nil)
	s := grpcserver.New(grpcserver.Options{
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Unary:           []grpc.UnaryServerInterceptor{guard.Unary()},
		ShutdownTimeout: time.Second,
	})
	register(s.GRPC())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		<-done
		cc.Close()
	})
}

func TestDeleteUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The three services' listeners first: auth needs their addresses.
	lis := map[string]net.Listener{}
	for _, name := range []string{"ingest", "classifier", "store"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[name] = l
	}
	logs := &logBuffer{}
	bootstrap, ingestKey := randomKey(), randomKey()
	dbURL := testenv.SQLiteURL(t)
	srv := start(t, auth.Config{
		Config: service.Config{DatabaseURL: dbURL, Addrs: grpcconn.Addrs{
			Ingest:     lis["ingest"].Addr().String(),
			Classifier: lis["classifier"].Addr().String(),
			Store:      lis["store"].Addr().String(),
		}},
		BootstrapToken: bootstrap,
		ServiceKeys:    "ingest:" + ingestKey,
		VaultKeys:      auth.NewVaultKey("k1"),
	}, logs)
	ingest := &purgeFake{counts: map[string]int64{"mailboxes": 2, "sync_jobs": 5}}
	classifier := &purgeFake{counts: map[string]int64{"taxonomy_entries": 1, "cache_entries": 7}}
	store := &purgeFake{counts: map[string]int64{"messages": 120, "usage_records": 4}}
	store.failing.Store(true) // the store has not implemented PurgeUserData yet
	serveFake(t, lis["ingest"], srv.addr, func(s *grpc.Server) { ingestv1.RegisterIngestServiceServer(s, ingestPurge{purgeFake: ingest}) })
	serveFake(t, lis["classifier"], srv.addr, func(s *grpc.Server) {
		classifierv1.RegisterClassifierServiceServer(s, classifierPurge{purgeFake: classifier})
	})
	serveFake(t, lis["store"], srv.addr, func(s *grpc.Server) { storev1.RegisterStoreServiceServer(s, storePurge{purgeFake: store}) })

	c := srv.client
	asAdmin := authn.OutgoingToken(ctx, bootstrap)
	keys := map[string]string{}
	for _, u := range []string{"ada", "bob"} {
		if _, err := c.CreateUser(asAdmin, &authv1.CreateUserRequest{UserId: u}); err != nil {
			t.Fatal(err)
		}
		k, err := c.CreateApiKey(asAdmin, &authv1.CreateApiKeyRequest{Parent: "users/" + u})
		if err != nil {
			t.Fatal(err)
		}
		keys[u] = k.GetApiKey().GetKey()
		if _, err := c.PutCredential(authn.OutgoingToken(ctx, ingestKey), &authv1.PutCredentialRequest{Credential: &authv1.Credential{
			Name: "users/" + u + "/mailboxes/work/credential", Kind: authv1.CredentialKind_CREDENTIAL_KIND_IMAP_PASSWORD, Secret: []byte("pw-" + u),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	asAda := authn.OutgoingToken(ctx, keys["ada"])

	_, err := c.DeleteUser(asAda, &authv1.DeleteUserRequest{Name: "users/bob"})
	wantCode(t, "ada DeleteUser(bob)", err, codes.PermissionDenied)
	_, err = c.DeleteUser(asAdmin, &authv1.DeleteUserRequest{Name: "users/nobody"})
	wantCode(t, "DeleteUser(unknown)", err, codes.NotFound)

	// The store answers Unimplemented: the delete fails, and says so.
	_, err = c.DeleteUser(asAda, &authv1.DeleteUserRequest{Name: "users/me"})
	wantCode(t, "DeleteUser with the store failing", err, codes.Unavailable)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "store") || !strings.Contains(msg, "Unimplemented") {
		t.Errorf("message %q does not name the store and its answer", msg)
	}
	if _, err := c.GetUser(asAda, &authv1.GetUserRequest{Name: "users/me"}); err != nil {
		t.Errorf("after the failed delete, ada's key no longer works: %v", err)
	}

	// Again, once the store works: done, with every service's counts.
	store.failing.Store(false)
	resp, err := c.DeleteUser(asAda, &authv1.DeleteUserRequest{Name: "users/me"})
	if err != nil {
		t.Fatalf("DeleteUser again: %v", err)
	}
	want := map[string]int64{
		"ingest.mailboxes": 2, "ingest.sync_jobs": 5,
		"classifier.taxonomy_entries": 1, "classifier.cache_entries": 7,
		"store.messages": 120, "store.usage_records": 4,
		"auth.credentials": 1, "auth.api_keys": 1, "auth.users": 1,
	}
	if got := resp.GetDeleted(); len(got) != len(want) {
		t.Errorf("deleted = %v, want %v", got, want)
	}
	for k, v := range want {
		if got := resp.GetDeleted()[k]; got != v {
			t.Errorf("deleted[%s] = %d, want %d", k, got, v)
		}
	}
	for name, f := range map[string]*purgeFake{"ingest": ingest, "classifier": classifier, "store": store} {
		if len(f.users) == 0 || f.users[len(f.users)-1] != "ada" {
			t.Errorf("%s purged %v, want ada (as auth's service identity)", name, f.users)
		}
	}
	_, err = c.GetUser(asAdmin, &authv1.GetUserRequest{Name: "users/ada"})
	wantCode(t, "GetUser(deleted ada)", err, codes.NotFound)
	_, err = c.ExchangeApiKey(ctx, &authv1.ExchangeApiKeyRequest{ApiKey: keys["ada"]})
	wantCode(t, "ExchangeApiKey(deleted ada's key)", err, codes.Unauthenticated)
	_, err = c.DeleteUser(asAdmin, &authv1.DeleteUserRequest{Name: "users/ada"})
	wantCode(t, "DeleteUser(ada again)", err, codes.NotFound)

	// An admin deletes bob; ada's deletion left him alone.
	resp, err = c.DeleteUser(asAdmin, &authv1.DeleteUserRequest{Name: "users/bob"})
	if err != nil || resp.GetDeleted()["auth.users"] != 1 || resp.GetDeleted()["auth.credentials"] != 1 {
		t.Errorf("admin DeleteUser(bob) = %v, %v", resp, err)
	}

	// A user token where the service identity is required is refused.
	cc, err := grpcconn.Dial(lis["store"].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = storev1.NewStoreServiceClient(cc).PurgeUserData(asAdmin, &storev1.PurgeUserDataRequest{User: "admin"})
	wantCode(t, "an admin's PurgeUserData at the store", err, codes.PermissionDenied)

	srv.stop()
	assertNoSecrets(t, logs, dbURL, bootstrap, ingestKey, keys["ada"], keys["bob"], "pw-bob")
}

// TestMutualTLS starts auth requiring client certificates: a client without
// one is refused, a client with one is served.
func TestMutualTLS(t *testing.T) {
	pki := transporttest.New(t)
	srv := start(t, auth.Config{Config: service.Config{DatabaseURL: testenv.SQLiteURL(t), Transport: pki.Server()}}, &logBuffer{})
	for name, tc := range map[string]struct {
		client  transport.Config
		refused bool
	}{
		"plaintext":                {transport.Config{}, true},
		"no client certificate":    {pki.NoCert(), true},
		"another CA's certificate": {pki.Stranger(), true},
		"the CA's certificate":     {pki.Client(), false},
	} {
		t.Run(name, func(t *testing.T) {
			creds, err := tc.client.ClientCredentials()
			if err != nil {
				t.Fatal(err)
			}
			cc, err := grpcconn.Dial(srv.addr, grpcconn.WithCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = authv1.NewAuthServiceClient(cc).GetJwks(ctx, &authv1.GetJwksRequest{})
			switch {
			case tc.refused && status.Code(err) != codes.Unavailable:
				t.Errorf("GetJwks = %v, want Unavailable (refused at the handshake)", err)
			case !tc.refused && err != nil:
				t.Errorf("GetJwks = %v", err)
			}
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if (err != nil) != tc.refused {
				t.Errorf("health Check = %v", err)
			}
		})
	}
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	cfg := auth.Config{
		Config:         service.Config{DatabaseURL: "postgres://auth:db-password-123@db:5432/auth?sslmode=require&password=q-secret"},
		BootstrapToken: randomKey(),
		ServiceKeys:    "ingest:" + randomKey() + ",store:" + randomKey(),
		VaultKeys:      auth.NewVaultKey("k2") + "," + auth.NewVaultKey("k1"),
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", cfg)
	out := buf.String()
	secrets := []string{"db-password-123", "q-secret", cfg.BootstrapToken}
	for _, entry := range strings.Split(cfg.ServiceKeys+","+cfg.VaultKeys, ",") {
		_, secret, _ := strings.Cut(entry, ":")
		secrets = append(secrets, secret)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the logged config holds a secret: %s", out)
		}
	}
	for _, want := range []string{`"service_keys":"ingest,store"`, `"vault_keys":"active k2 of k2,k1"`, `"transport":"plaintext"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the logged config lacks %s: %s", want, out)
		}
	}
}

// The transport settings come from MAILROOM_TLS_* through the nested
// transport.Config, as cmd/auth reads them.
func TestConfigFromEnvironment(t *testing.T) {
	var cfg auth.Config
	err := config.Load(context.Background(), &cfg, envconfig.MapLookuper(map[string]string{
		"DATABASE_URL":              "sqlite:///tmp/x.db",
		"MAILROOM_TLS_CERT_FILE":    "/etc/mailroom/tls/tls.crt",
		"MAILROOM_TLS_KEY_FILE":     "/etc/mailroom/tls/tls.key",
		"MAILROOM_TLS_CA_FILE":      "/etc/mailroom/tls/ca.crt",
		"MAILROOM_TLS_CLIENT_CERTS": "require",
		"MAILROOM_SERVICE_KEYS":     "ingest:k",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := transport.Config{CertFile: "/etc/mailroom/tls/tls.crt", KeyFile: "/etc/mailroom/tls/tls.key", CAFile: "/etc/mailroom/tls/ca.crt", ClientCerts: "require"}
	if cfg.Transport != want {
		t.Errorf("Transport = %+v, want %+v", cfg.Transport, want)
	}
	if cfg.SigningKeyRotation != 720*time.Hour || cfg.Addrs.Ingest != "127.0.0.1:9102" || cfg.ListenAddr(service.Auth) != "127.0.0.1:9101" || cfg.ServiceKeys != "ingest:k" {
		t.Errorf("defaults: rotation %v, ingest %q, listen %q", cfg.SigningKeyRotation, cfg.Addrs.Ingest, cfg.ListenAddr(service.Auth))
	}
}
