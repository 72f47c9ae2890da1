package chaos_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterState is cluster.json.
type clusterState struct {
	Gateway   []string `json:"gateway"`
	Processes []struct {
		Name, Kind, Addr string
		PID              int
	} `json:"processes"`
	NATS []struct {
		Name, URL string
		PID       int
	} `json:"nats"`
}

// harness is one cluster, its Postgres and its model, shared by the
// scenarios (each backfills users of its own).
type harness struct {
	t        testing.TB
	work     string // the cluster's working directory
	dir      string // --dir
	bin      string
	env      []string
	pg       *postgres
	model    *model
	adminKey string
	http     *http.Client
}

// buildBinaries builds what `make build` puts in .bin/, or uses
// MAILROOM_BIN when it names a directory that holds them.
func buildBinaries(t testing.TB, dir string) string {
	t.Helper()
	if b := os.Getenv("MAILROOM_BIN"); b != "" {
		if !filepath.IsAbs(b) {
			// Relative to the repository's root, where make runs
			// (go test runs in this package's directory).
			abs, err := filepath.Abs(filepath.Join("../..", b))
			if err != nil {
				t.Fatal(err)
			}
			b = abs
		}
		return b
	}
	for _, b := range []struct{ name, pkg string }{
		{"mailroom", "./cmd/mailroom"},
		{"auth", "./services/auth/cmd/auth"},
		{"ingest", "./services/ingest/cmd/ingest"},
		{"classifier", "./services/classifier/cmd/classifier"},
		{"store", "./services/store/cmd/store"},
		{"gateway", "./gateway/cmd/gateway"},
		{"nats-server", "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.name, err, out)
		}
	}
	return dir
}

// postgres is a Postgres server of the suite's own (initdb, pg_ctl) on a
// free loopback port, so that restarting it disturbs nobody else.
type postgres struct {
	bin, data, port string
	uid, gid        uint32
	root            bool
}

func startPostgres(t testing.TB) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		if os.Getenv("MAILROOM_REQUIRE_POSTGRES") == "1" {
			t.Fatal("no Postgres server binaries (/usr/lib/postgresql/*/bin) and MAILROOM_REQUIRE_POSTGRES=1: the chaos suite runs a Postgres of its own (apt-get install postgresql)")
		}
		t.Skip("no Postgres server binaries (/usr/lib/postgresql/*/bin): the chaos suite runs a Postgres of its own")
	}
	pg := &postgres{bin: filepath.Dir(bins[len(bins)-1])}
	base, err := os.MkdirTemp("", "mailroom-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	pg.data = filepath.Join(base, "data")
	pg.port = strconv.Itoa(freePort(t))
	if os.Geteuid() == 0 {
		// Postgres refuses to run as root: as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user to run a Postgres server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.uid, pg.gid, pg.root = uint32(uid), uint32(gid), true
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg.run(t, "initdb", "-D", pg.data, "-U", "postgres", "-A", "trust", "--no-sync")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nmax_connections = 300\nfsync = on\n", pg.port, filepath.Dir(pg.data))
	f, err := os.OpenFile(filepath.Join(pg.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(conf)
	f.Close()
	pg.ctl(t, "start")
	t.Cleanup(func() { pg.ctl(t, "stop") })
	return pg
}

func (pg *postgres) url(db string) string {
	return "postgres://postgres@127.0.0.1:" + pg.port + "/" + db + "?sslmode=disable"
}

func (pg *postgres) run(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = "/"
	if pg.root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: pg.uid, Gid: pg.gid}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ctl runs pg_ctl start|stop|restart and waits for it (-m fast: the
// clients' connections are cut, as a crash of the server cuts them).
func (pg *postgres) ctl(t testing.TB, action string) {
	t.Helper()
	pg.run(t, "pg_ctl", "-D", pg.data, "-w", "-m", "fast", "-l", filepath.Join(filepath.Dir(pg.data), "postgres.log"), action)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startHarness starts Postgres, the model m and `mailroom cluster up`
// with replicas of each service.
func startHarness(t testing.TB, replicas int, m *model) *harness {
	t.Helper()
	h := &harness{t: t, work: t.TempDir(), http: &http.Client{Timeout: 30 * time.Second}}
	h.dir = filepath.Join(h.work, "cluster")
	h.bin = buildBinaries(t, filepath.Join(h.work, "bin"))
	h.pg = startPostgres(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, h.pg.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE mailroom"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)

	h.model = m
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h.model, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })

	h.env = append(withoutVars(os.Environ(), "NATS_URL", "MAILROOM_BOOTSTRAP_TOKEN", "OPENAI_API_KEYS", "MAILROOM_NATS_PREFIX", "MAILROOM", "MAILROOM_KEY"),
		"DATABASE_URL="+h.pg.url("mailroom"),
		"OPENAI_API_KEY=sk-chaos",
		"OPENAI_BASE_URL=http://"+lis.Addr().String()+"/v1",
		// The backfill imports with one admin key from one address: the
		// gateway's per-key and per-user rates would make it slow, not test it.
		"MAILROOM_KEY_RATE=0", "MAILROOM_USER_RATE=0",
		// The IMAP server of the sync scenario is on loopback.
		"MAILROOM_IMAP_ALLOW_HOSTS=127.0.0.1",
		"MAILROOM_LOG_LEVEL=info",
		// Every mail of the backfill must go to the model, in realtime,
		// where the faults are played: no OpenAI batches (their expiry and
		// failure have tests of their own) and no learned senders (a
		// colleague's fourth mail, the poison mail among them, would be
		// classified from the record without the model).
		"OPENAI_BATCH=off", "MAILROOM_LEARN_SENDERS=false",
	)
	out, err := h.mailroom(6*time.Minute, "cluster", "up", "--dir", h.dir, "--replicas", strconv.Itoa(replicas))
	t.Cleanup(func() {
		out, err := h.mailroom(5*time.Minute, "cluster", "down", "--dir", h.dir)
		if err != nil {
			t.Errorf("mailroom cluster down: %v\n%s", err, out)
		}
		if t.Failed() || os.Getenv("MAILROOM_CHAOS_KEEP") != "" {
			keep := filepath.Join(os.TempDir(), "mailroom-chaos-logs-"+strconv.Itoa(os.Getpid()))
			_ = exec.Command("cp", "-r", filepath.Join(h.dir, "logs"), keep).Run()
			t.Logf("the cluster's logs are kept in %s", keep)
		}
	})
	if err != nil {
		t.Fatalf("mailroom cluster up: %v\n%s", err, out)
	}
	key, err := os.ReadFile(filepath.Join(h.dir, "admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	h.adminKey = strings.TrimSpace(string(key))
	return h
}

func (h *harness) mailroom(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.bin, "mailroom"), args...)
	cmd.Dir, cmd.Env = h.work, h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (h *harness) state() clusterState {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "cluster.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	var st clusterState
	if err := json.Unmarshal(b, &st); err != nil {
		h.t.Fatalf("cluster.json: %v", err)
	}
	return st
}

// pid is the current pid of the process called name.
func (h *harness) pid(name string) int {
	st := h.state()
	for _, p := range st.Processes {
		if p.Name == name {
			return p.PID
		}
	}
	for _, n := range st.NATS {
		if n.Name == name {
			return n.PID
		}
	}
	h.t.Fatalf("no process %s in cluster.json", name)
	return 0
}

func (h *harness) signal(name string, sig syscall.Signal) {
	h.t.Helper()
	pid := h.pid(name)
	if pid == 0 {
		h.t.Fatalf("%s is not running", name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		h.t.Fatalf("%s to %s (pid %d): %v", sig, name, pid, err)
	}
	h.t.Logf("%s → %s (pid %d)", sig, name, pid)
}

// streamLeader is the name of the NATS node that leads stream.
func (h *harness) streamLeader(stream string) string {
	h.t.Helper()
	var urls []string
	for _, n := range h.state().NATS {
		urls = append(urls, n.URL)
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		h.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		h.t.Fatalf("stream %s has no leader", stream)
	}
	if got := len(info.Cluster.Replicas) + 1; got != 3 {
		h.t.Errorf("stream %s has %d replicas, want 3", stream, got)
	}
	return info.Cluster.Leader
}

// api calls the REST API through one of the gateways, the next one after
// a failure (a gateway killed, a connection cut), as a client with a
// list of gateways behind a load balancer would; it retries until the
// call is answered by a service, not by an outage, or ctx ends.
func (h *harness) api(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	gws := h.state().Gateway
	var last error
	for attempt := 0; ; attempt++ {
		gw := gws[attempt%len(gws)]
		req, _ := http.NewRequestWithContext(ctx, method, gw+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+h.adminKey)
		resp, err := h.http.Do(req)
		if err == nil {
			out, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			// 5xx (a service unavailable behind the gateway) and 429 are
			// retried; anything else is the answer.
			if rerr == nil && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
				return resp.StatusCode, out, nil
			}
			last = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(out))
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
}

// backfill creates users × mails mails that need the model (and one
// poison mail for the first user), importing them through the gateways
// in batches of ten. A mail counts as imported once an import answered
// 200 for it.
type backfill struct {
	scenario      string
	users, mails  int
	imported      atomic.Int64
	importErrors  atomic.Int64
	done          chan struct{}
	err           error
	poisonUser    string
	poisonMessage string
}

func userID(scenario string, u int) string { return fmt.Sprintf("%s-u%02d", scenario, u) }

func (h *harness) startBackfill(ctx context.Context, scenario string, users, mails int) *backfill {
	bf := &backfill{scenario: scenario, users: users, mails: mails, done: make(chan struct{}), poisonUser: userID(scenario, 0)}
	for u := range users {
		uid := userID(scenario, u)
		if code, out, err := h.api(ctx, "POST", "/v1/users?userId="+uid, map[string]any{"displayName": "Chaos " + uid, "email": uid + "@example.com"}); err != nil || code != 200 {
			h.t.Fatalf("create user %s: %d %s %v", uid, code, out, err)
		}
		if code, out, err := h.api(ctx, "POST", "/v1/users/"+uid+"/mailboxes?mailboxId=inbox", map[string]any{"provider": "IMPORT", "displayName": "backfill"}); err != nil || code != 200 {
			h.t.Fatalf("create mailbox of %s: %d %s %v", uid, code, out, err)
		}
	}
	go func() {
		defer close(bf.done)
		var wg sync.WaitGroup
		errs := make(chan error, users)
		for u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				uid := userID(scenario, u)
				batch := []map[string]string{}
				flush := func() error {
					if len(batch) == 0 {
						return nil
					}
					code, out, err := h.api(ctx, "POST", "/v1/users/"+uid+"/mailboxes/inbox/messages:import", map[string]any{"messages": batch})
					if err != nil {
						return err
					}
					if code != 200 {
						return fmt.Errorf("import for %s: %d %s", uid, code, out)
					}
					bf.imported.Add(int64(len(batch)))
					batch = batch[:0]
					return nil
				}
				for i := range mails {
					batch = append(batch, map[string]string{"raw": base64.StdEncoding.EncodeToString(mail(scenario, u, i, ""))})
					if len(batch) == 10 {
						if err := flush(); err != nil {
							errs <- err
							return
						}
					}
				}
				if u == 0 {
					batch = append(batch, map[string]string{"raw": base64.StdEncoding.EncodeToString(mail(scenario, u, mails, poisonMarker))})
				}
				if err := flush(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		bf.err = errors.Join(func() (all []error) {
			for e := range errs {
				all = append(all, e)
			}
			return
		}()...)
	}()
	return bf
}

// mail is mail i of user u: a colleague's question, which no rule
// classifies, with a marker that makes its content (and its verdict cache
// key) unique. A poison mail carries the poison marker too.
func mail(scenario string, u, i int, poison string) []byte {
	m := marker(scenario, u, i)
	date := time.Now().Add(-time.Duration(i+1) * time.Minute).Format(time.RFC1123Z)
	return []byte(fmt.Sprintf("From: Colleague %[2]d <colleague%[2]d@example.org>\r\nTo: %[3]s@example.com\r\nSubject: Question about the plan %[1]s %[5]s\r\nDate: %[4]s\r\nMessage-ID: <%[1]s@chaos.example>\r\n\r\nHello, could you look at the plan (%[1]s) before Thursday and tell me what you think? %[5]s\r\n",
		m, i%17, userID(scenario, u), date, poison))
}

// counts are a scenario's rows in the store.
type counts struct {
	rows, classified, failed, pending int
	dupRows, dupVerdicts              int
	failedNotPoison                   int
}

func (h *harness) counts(ctx context.Context, scenario string) (counts, error) {
	var c counts
	conn, err := pgx.Connect(ctx, h.pg.url("mailroom"))
	if err != nil {
		return c, err
	}
	defer conn.Close(ctx)
	like := scenario + "-u%"
	err = conn.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE state = 'classified'),
		count(*) FILTER (WHERE state = 'failed'),
		count(*) FILTER (WHERE state = 'pending'),
		count(*) FILTER (WHERE state = 'failed' AND subject NOT LIKE '%`+poisonMarker+`%')
		FROM store_messages WHERE user_id LIKE $1`, like).Scan(&c.rows, &c.classified, &c.failed, &c.pending, &c.failedNotPoison)
	if err != nil {
		return c, err
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM store_messages WHERE user_id LIKE $1
		GROUP BY user_id, mailbox_id, provider_message_id HAVING count(*) > 1) d`, like).Scan(&c.dupRows); err != nil {
		return c, err
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM store_classification_usage WHERE user_id LIKE $1
		GROUP BY user_id, message_id HAVING count(*) > 1) d`, like).Scan(&c.dupVerdicts); err != nil {
		return c, err
	}
	return c, nil
}

func withoutVars(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
