// Package cluster runs mailroom in its production shape on one machine:
// three NATS servers clustered with JetStream, replicas of every service
// and gateways, each the service's own binary as a separate OS process,
// configured by environment alone as deploy/k8s configures them, against
// a Postgres server. A supervisor restarts what exits (as the kubelet
// does), keeps D/cluster.json current and stops everything, newest first,
// with SIGTERM. `mailroom cluster up|down` drive it; the chaos suite
// (test/chaos) and the scale-out benchmark run on it.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mailroom.dev/cmd/mailroom/suite"
	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/platform/redact"
	"mailroom.dev/services/auth"
)

// DefaultDir is where `mailroom cluster` keeps its state by default.
const DefaultDir = ".mailroom-cluster"

// OpenAI modes: what the classifiers talk to.
const (
	// OpenAIAuto is OpenAIEnv when OPENAI_API_KEY or OPENAI_API_KEYS is
	// set, OpenAIFake otherwise.
	OpenAIAuto = "auto"
	// OpenAIEnv passes the OPENAI_* variables of the environment on.
	OpenAIEnv = "env"
	// OpenAIFake serves the project's fake OpenAI inside the supervisor.
	OpenAIFake = "fake"
	// OpenAINone runs the classifiers on the rules tier alone.
	OpenAINone = "none"
)

// Options configure a cluster.
type Options struct {
	// Dir holds cluster.json, the keys, the NATS data and the logs.
	Dir string
	// Replicas is the number of replicas of each service and of gateways.
	Replicas int
	// BinDir holds auth, ingest, classifier, store, gateway (`make build`).
	BinDir string
	// NATSServer is the nats-server binary (2.10 or newer: sync_interval).
	NATSServer string
	// DatabaseURL is the Postgres server (postgres://…).
	DatabaseURL string
	// OpenAI is one of the OpenAI modes (default OpenAIAuto).
	OpenAI string
	// Env is the environment the processes start from (nil: os.Environ()).
	Env []string
	// Migrate applies every service's migrations to a database, once,
	// before the services start (they wait for the schema:
	// MAILROOM_MIGRATE=wait, as the migration Job does it in deploy/k8s).
	Migrate func(ctx context.Context, databaseURL string) error
	// Log receives the supervisor's own lines.
	Log io.Writer
	// ReadyTimeout bounds the wait for every process to be ready at start
	// (default 3 minutes); the cluster is stopped if it is not.
	ReadyTimeout time.Duration
}

// Validate says what is wrong with o, naming the flag or variable.
func (o *Options) Validate() error {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Replicas < 1 || o.Replicas > 9 {
		return fmt.Errorf("--replicas %d: must be 1 to 9", o.Replicas)
	}
	if o.DatabaseURL == "" {
		return errors.New("DATABASE_URL is required: a Postgres server (postgres://…) that every replica shares")
	}
	if u, err := url.Parse(o.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("DATABASE_URL %s: must be postgres://… (replicas in separate processes cannot share SQLite)", redact.URL(o.DatabaseURL))
	}
	switch o.OpenAI {
	case "":
		o.OpenAI = OpenAIAuto
	case OpenAIAuto, OpenAIEnv, OpenAIFake, OpenAINone:
	default:
		return fmt.Errorf("--openai %q: must be auto, env, fake or none", o.OpenAI)
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.OpenAI == OpenAIAuto {
		o.OpenAI = OpenAIFake
		if envOf(o.Env, "OPENAI_API_KEY") != "" || envOf(o.Env, "OPENAI_API_KEYS") != "" {
			o.OpenAI = OpenAIEnv
		}
	}
	for _, b := range []string{KindAuth, KindIngest, KindClassifier, KindStore, KindGateway} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("binary %s not found in %s (run make build, or give --bin): %w", b, o.BinDir, err)
		}
	}
	if o.NATSServer == "" {
		return errors.New("no nats-server binary: make build puts one in .bin/, or give --nats-server")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	return nil
}

// Supervisor is a running cluster.
type Supervisor struct {
	opts  Options
	logf  func(format string, a ...any)
	procs []*proc // in start order
	nats  []*proc
	mu    sync.Mutex // guards writing cluster.json
	// OpenAIURL is the fake OpenAI's base URL when the supervisor serves it.
	OpenAIURL string
	fake      *http.Server
}

// Run starts a cluster and supervises it until ctx is done, then stops it
// newest first and writes D/down.json. ready is called once every process
// answers its health checks.
func Run(ctx context.Context, o Options, ready func(State)) (err error) {
	if err := o.Validate(); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(o.Log, nil))
	if err := suite.PrepareDir(o.Dir, logger); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o700); err != nil {
		return err
	}
	var logMu sync.Mutex
	s := &Supervisor{opts: o, logf: func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(o.Log, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}}
	_ = os.Remove(downFile(o.Dir))
	pidFile := filepath.Join(o.Dir, "supervisor.pid")
	if pid, alive := readPID(pidFile); alive && pid != os.Getpid() {
		return fmt.Errorf("a cluster is already running in %s (supervisor pid %d): mailroom cluster down --dir %s", o.Dir, pid, o.Dir)
	}
	_ = os.Remove(StateFile(o.Dir)) // a previous run's pids
	if err := writeFileAtomic(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	defer func() {
		exits := s.stopAll()
		b, _ := json.MarshalIndent(exits, "", "  ")
		if werr := writeFileAtomic(downFile(o.Dir), b, 0o600); werr != nil && err == nil {
			err = werr
		}
		for _, e := range exits {
			if !e.Clean && err == nil {
				err = fmt.Errorf("%s (pid %d) did not exit cleanly: %s", e.Name, e.PID, e.Status)
			}
		}
		if s.fake != nil {
			_ = s.fake.Close()
		}
		s.logf("stopped")
	}()
	if err := s.start(ctx); err != nil {
		return err
	}
	st, err := WaitReady(ctx, o.Dir, o.ReadyTimeout, 0)
	if err != nil {
		return err
	}
	s.logf("ready: %d gateways, %d processes, %d NATS nodes", len(st.Gateway), len(st.Processes), len(st.NATS))
	if ready != nil {
		ready(st)
	}
	<-ctx.Done()
	s.logf("stopping: %v", context.Cause(ctx))
	return nil
}

// start starts NATS, runs the migrations, then starts the services and
// the gateways, in that order.
func (s *Supervisor) start(ctx context.Context) error {
	o := s.opts
	keys, err := s.keys()
	if err != nil {
		return err
	}
	n := o.Replicas
	// Every address is chosen at once, so that no two are the same; they
	// stay a process's own across restarts (the others' comma lists name
	// them).
	ports, err := freePorts(3*2 + 4*n*2 + n)
	if err != nil {
		return err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }

	// NATS: three nodes, routes to each other, JetStream fsynced always.
	natsDir := filepath.Join(o.Dir, "nats")
	if err := os.MkdirAll(natsDir, 0o700); err != nil {
		return err
	}
	var clientURLs, routes []string
	type node struct{ client, cluster int }
	nodes := make([]node, 3)
	for i := range nodes {
		nodes[i] = node{next(), next()}
		clientURLs = append(clientURLs, fmt.Sprintf("nats://127.0.0.1:%d", nodes[i].client))
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", nodes[i].cluster))
	}
	for i, nd := range nodes {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := filepath.Join(natsDir, name+".conf")
		if err := os.WriteFile(conf, []byte(natsConfig(name, nd.client, nd.cluster, filepath.Join(natsDir, name), routes)), 0o600); err != nil {
			return err
		}
		abs, _ := filepath.Abs(conf)
		p := &proc{name: name, kind: KindNATS, addr: clientURLs[i], path: o.NATSServer, args: []string{"-c", abs},
			env: []string{"PATH=" + envOf(o.Env, "PATH")}, logPath: s.logPath(name), onChange: s.writeState}
		s.nats = append(s.nats, p)
	}
	for _, p := range s.nats {
		if err := p.supervise(s.logf); err != nil {
			return err
		}
		s.logf("started %s (pid %d) at %s", p.name, p.pid, p.addr)
	}
	if err := waitJetStream(ctx, strings.Join(clientURLs, ","), 2*time.Minute); err != nil {
		return err
	}
	s.logf("JetStream cluster of 3 nodes is up")

	if o.Migrate != nil {
		s.logf("migrating %s", redact.URL(o.DatabaseURL))
		if err := o.Migrate(ctx, o.DatabaseURL); err != nil {
			return fmt.Errorf("migrations: %w", err)
		}
	}

	// Where everything listens.
	grpcAddrs := map[string][]string{}
	metricsAddrs := map[string][]string{}
	for _, k := range serviceKinds {
		for range n {
			grpcAddrs[k] = append(grpcAddrs[k], fmt.Sprintf("127.0.0.1:%d", next()))
			metricsAddrs[k] = append(metricsAddrs[k], fmt.Sprintf("127.0.0.1:%d", next()))
		}
	}
	var httpAddrs []string
	for range n {
		httpAddrs = append(httpAddrs, fmt.Sprintf("127.0.0.1:%d", next()))
	}

	openai, err := s.openAI()
	if err != nil {
		return err
	}

	// The environment every process shares, as mailroom-config does in
	// deploy/k8s; then each kind's own secrets, as each has its own Secret.
	common := map[string]string{
		"DATABASE_URL":             o.DatabaseURL,
		"NATS_URL":                 strings.Join(clientURLs, ","),
		"MAILROOM_STREAM_REPLICAS": "3",
		"MAILROOM_MIGRATE":         "wait",
		"MAILROOM_AUTH_ADDR":       strings.Join(grpcAddrs[KindAuth], ","),
		"MAILROOM_INGEST_ADDR":     strings.Join(grpcAddrs[KindIngest], ","),
		"MAILROOM_CLASSIFIER_ADDR": strings.Join(grpcAddrs[KindClassifier], ","),
		"MAILROOM_STORE_ADDR":      strings.Join(grpcAddrs[KindStore], ","),
		"MAILROOM_PUBLIC_URL":      firstNonEmpty(envOf(o.Env, "MAILROOM_PUBLIC_URL"), "http://"+httpAddrs[0]),
	}
	base := baseEnv(o.Env)
	add := func(kind, name, addr string, own map[string]string) *proc {
		env := slices.Clone(base)
		if kind == KindClassifier {
			env = append(env, openai...)
		} else {
			// OpenAI's keys are the classifier's secret alone.
			env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "OPENAI_") })
		}
		for k, v := range common {
			env = append(env, k+"="+v)
		}
		for k, v := range own {
			env = append(env, k+"="+v)
		}
		p := &proc{name: name, kind: kind, addr: addr, path: filepath.Join(o.BinDir, kind), env: env,
			logPath: s.logPath(name), onChange: s.writeState}
		s.procs = append(s.procs, p)
		return p
	}
	// Every process is listed (cluster.json, pid 0) before any starts, so
	// that readiness is never judged on part of the cluster.
	batches := map[string][]*proc{}
	for _, k := range serviceKinds {
		for i := range n {
			own := map[string]string{
				"MAILROOM_GRPC_ADDR":    grpcAddrs[k][i],
				"MAILROOM_METRICS_ADDR": metricsAddrs[k][i],
				"MAILROOM_SERVICE_KEY":  keys.service[k],
			}
			name := fmt.Sprintf("%s-%d", k, i+1)
			switch k {
			case KindAuth:
				own["MAILROOM_SERVICE_KEYS"] = keys.serviceList
				own["MAILROOM_VAULT_KEYS"] = keys.vault
				own["MAILROOM_BOOTSTRAP_TOKEN"] = keys.admin
			case KindClassifier:
				own["MAILROOM_REPLICA_ID"] = name
			}
			batches[k] = append(batches[k], add(k, name, grpcAddrs[k][i], own))
		}
	}
	for i := range n {
		batches[KindGateway] = append(batches[KindGateway], add(KindGateway, fmt.Sprintf("gateway-%d", i+1), httpAddrs[i], map[string]string{
			"MAILROOM_HTTP_ADDR":   httpAddrs[i],
			"MAILROOM_SERVICE_KEY": keys.service[KindGateway],
		}))
	}
	s.writeState()
	for _, k := range append(slices.Clone(serviceKinds), KindGateway) {
		if err := s.startBatch(ctx, batches[k]); err != nil {
			return err
		}
	}
	return nil
}

// startBatch starts the replicas of one kind and waits (a while) for them
// to serve before the next kind starts, so that a service does not start
// before the auth it verifies callers with; a replica that is slow is left
// to the supervisor.
func (s *Supervisor) startBatch(ctx context.Context, batch []*proc) error {
	for _, p := range batch {
		if err := p.supervise(s.logf); err != nil {
			return err
		}
		s.logf("started %s (pid %d) at %s", p.name, p.pid, p.addr)
	}
	s.writeState()
	deadline := time.Now().Add(90 * time.Second)
	for _, p := range batch {
		for time.Now().Before(deadline) {
			if Check(ctx, Process{Kind: p.kind, Addr: p.addr}) == nil {
				break
			}
			if !ctxSleep(ctx, 200*time.Millisecond) {
				return context.Cause(ctx)
			}
		}
	}
	return nil
}

func (s *Supervisor) logPath(name string) string {
	abs, _ := filepath.Abs(filepath.Join(s.opts.Dir, "logs", name+".log"))
	return abs
}

// writeState writes cluster.json from the processes' current pids.
func (s *Supervisor) writeState() {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Gateway: []string{}, Processes: []Process{}, NATS: []NATSNode{}}
	for _, p := range s.nats {
		pid, _ := p.current()
		st.NATS = append(st.NATS, NATSNode{Name: p.name, PID: pid, URL: p.addr})
	}
	for _, p := range s.procs {
		pid, _ := p.current()
		st.Processes = append(st.Processes, Process{Name: p.name, Kind: p.kind, PID: pid, Addr: p.addr})
		if p.kind == KindGateway {
			st.Gateway = append(st.Gateway, "http://"+p.addr)
		}
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := writeFileAtomic(StateFile(s.opts.Dir), append(b, '\n'), 0o644); err != nil {
		s.logf("writing cluster.json: %v", err)
	}
}

// stopAll stops every process, newest first (by its latest start), each
// with SIGTERM and a drain, and returns how each ended.
func (s *Supervisor) stopAll() []Exit {
	all := append(slices.Clone(s.nats), s.procs...)
	sort.SliceStable(all, func(i, j int) bool {
		_, a := all[i].current()
		_, b := all[j].current()
		return a.After(b)
	})
	var exits []Exit
	for _, p := range all {
		if p.done == nil {
			continue // never started
		}
		e := p.stop()
		s.logf("stopped %s: %s", p.name, e.Status)
		exits = append(exits, e)
	}
	s.writeState()
	return exits
}

// keys are the cluster's secrets, kept in Dir (0600) so that a restarted
// process, or a cluster brought up again, finds the same ones.
type clusterKeys struct {
	admin, vault, serviceList string
	service                   map[string]string
}

func (s *Supervisor) keys() (clusterKeys, error) {
	dir := s.opts.Dir
	k := clusterKeys{service: map[string]string{}}
	var err error
	if k.admin = envOf(s.opts.Env, "MAILROOM_BOOTSTRAP_TOKEN"); k.admin == "" {
		if k.admin, err = suite.KeptSecret(filepath.Join(dir, "admin-key"), suite.RandomKey); err != nil {
			return k, err
		}
	}
	if k.vault = envOf(s.opts.Env, "MAILROOM_VAULT_KEYS"); k.vault == "" {
		if k.vault, err = suite.KeptSecret(filepath.Join(dir, "vault-key"), func() string { return auth.NewVaultKey("cluster") }); err != nil {
			return k, err
		}
	}
	var list []string
	for _, name := range []string{KindIngest, KindClassifier, KindStore, KindGateway} {
		key, err := suite.KeptSecret(filepath.Join(dir, "service-key-"+name), suite.RandomKey)
		if err != nil {
			return k, err
		}
		k.service[name] = key
		list = append(list, name+":"+key)
	}
	k.serviceList = strings.Join(list, ",")
	return k, nil
}

// openAI returns the OPENAI_* variables of the classifiers.
func (s *Supervisor) openAI() ([]string, error) {
	switch s.opts.OpenAI {
	case OpenAIEnv:
		return nil, nil // baseEnv keeps OPENAI_* for the classifiers
	case OpenAINone:
		return []string{"OPENAI_API_KEY=", "OPENAI_API_KEYS="}, nil
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake OpenAI: %w", err)
	}
	fake := fakeopenai.New(fakeopenai.Config{})
	s.fake = &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.fake.Serve(lis) }()
	s.OpenAIURL = "http://" + lis.Addr().String() + "/v1"
	_ = os.WriteFile(filepath.Join(s.opts.Dir, "openai-url"), []byte(s.OpenAIURL+"\n"), 0o644)
	s.logf("fake OpenAI at %s (%d RPM, %d TPM; set OPENAI_API_KEY for a real one)", s.OpenAIURL, fakeopenai.DefaultLimits.RPM, fakeopenai.DefaultLimits.TPM)
	return []string{"OPENAI_API_KEY=" + fakeopenai.DefaultKey, "OPENAI_API_KEYS=", "OPENAI_BASE_URL=" + s.OpenAIURL}, nil
}

// natsConfig is a node's configuration: deploy/k8s's (JetStream on file
// storage fsynced on every write, a route to every node) on loopback
// ports. Lame duck mode is left out: its minimum is 30 s, and SIGTERM
// stops a node gracefully.
func natsConfig(name string, client, cluster int, store string, routes []string) string {
	abs, _ := filepath.Abs(store)
	return fmt.Sprintf(`# Written by mailroom cluster: node %[1]s of three.
server_name: %[1]s
listen: 127.0.0.1:%[2]d
max_payload: 8MB
jetstream {
  store_dir: %[4]q
  sync_interval: always
}
cluster {
  name: mailroom
  listen: 127.0.0.1:%[3]d
  routes: [
    %[5]s
  ]
}
`, name, client, cluster, abs, strings.Join(routes, "\n    "))
}

// waitJetStream waits until the JetStream cluster has a meta leader.
func waitJetStream(ctx context.Context, urls string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		nc, err := nats.Connect(urls, nats.Name("mailroom-cluster"), nats.Timeout(2*time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = js.AccountInfo(actx)
			acancel()
			nc.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		if !ctxSleep(ctx, 250*time.Millisecond) {
			return fmt.Errorf("the JetStream cluster did not come up within %s: %v", within, last)
		}
	}
}

// WaitReady waits until cluster.json in dir lists every process running
// and each answers: the services SERVING on grpc.health.v1, the gateways
// 200 on /readyz. supervisor, when not 0, is the supervisor's pid: its
// death ends the wait.
func WaitReady(ctx context.Context, dir string, within time.Duration, supervisor int) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		st, err := ReadState(dir)
		if err == nil {
			err = checkState(ctx, st)
			if err == nil {
				return st, nil
			}
		}
		last = err
		if supervisor != 0 && !alive(supervisor) {
			return st, fmt.Errorf("the supervisor (pid %d) exited: %v", supervisor, last)
		}
		if !ctxSleep(ctx, 250*time.Millisecond) {
			return st, fmt.Errorf("the cluster was not ready within %s: %v", within, last)
		}
	}
}

func checkState(ctx context.Context, st State) error {
	if len(st.NATS) == 0 || len(st.Processes) == 0 {
		return errors.New("cluster.json lists no processes yet")
	}
	for _, n := range st.NATS {
		if n.PID == 0 {
			return fmt.Errorf("%s is not running", n.Name)
		}
	}
	for _, p := range st.Processes {
		if p.PID == 0 {
			return fmt.Errorf("%s is not running", p.Name)
		}
		if err := Check(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

// Check asks one process whether it is ready.
func Check(ctx context.Context, p Process) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if p.Kind == KindGateway {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	}
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health %s", resp.GetStatus())
	}
	return nil
}

// Down stops the cluster in dir: SIGTERM to its supervisor, which stops
// every process newest first and writes down.json; if the supervisor is
// gone, every process cluster.json lists is stopped directly, newest first
// (highest pid first: the restarted ones). It returns how each ended.
func Down(ctx context.Context, dir string) ([]Exit, error) {
	pidFile := filepath.Join(dir, "supervisor.pid")
	if pid, ok := readPID(pidFile); ok {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return nil, fmt.Errorf("stopping the supervisor (pid %d): %w", pid, err)
		}
		for alive(pid) {
			if !ctxSleep(ctx, 100*time.Millisecond) {
				return nil, fmt.Errorf("the supervisor (pid %d) has not stopped: %w", pid, context.Cause(ctx))
			}
		}
		b, err := os.ReadFile(downFile(dir))
		if err != nil {
			return nil, fmt.Errorf("the supervisor stopped without writing %s: see %s", downFile(dir), filepath.Join(dir, "logs", "supervisor.log"))
		}
		var exits []Exit
		if err := json.Unmarshal(b, &exits); err != nil {
			return nil, fmt.Errorf("%s: %w", downFile(dir), err)
		}
		return exits, nil
	}
	st, err := ReadState(dir)
	if err != nil {
		return nil, err
	}
	type entry struct {
		name string
		pid  int
	}
	// Without the supervisor, start times are unknown: the gateways and
	// services in the reverse of their start order, then NATS.
	var left []entry
	for _, p := range slices.Backward(st.Processes) {
		if p.PID != 0 && alive(p.PID) {
			left = append(left, entry{p.Name, p.PID})
		}
	}
	for _, n := range slices.Backward(st.NATS) {
		if n.PID != 0 && alive(n.PID) {
			left = append(left, entry{n.Name, n.PID})
		}
	}
	var exits []Exit
	for _, e := range left {
		_ = syscall.Kill(e.pid, syscall.SIGTERM)
		_ = syscall.Kill(e.pid, syscall.SIGCONT)
		deadline := time.Now().Add(stopTimeout)
		for alive(e.pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		ex := Exit{Name: e.name, PID: e.pid, Status: "stopped (not our child: status unknown)", Clean: true}
		if alive(e.pid) {
			_ = syscall.Kill(e.pid, syscall.SIGKILL)
			ex.Status, ex.Clean = "killed after "+stopTimeout.String(), false
		}
		exits = append(exits, ex)
	}
	return exits, nil
}

// SupervisorPID is the pid of the supervisor of the cluster in dir, or 0.
func SupervisorPID(dir string) int {
	pid, ok := readPID(filepath.Join(dir, "supervisor.pid"))
	if !ok {
		return 0
	}
	return pid
}

func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid)
}

// alive reports whether pid is a running process (not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// baseEnv is the environment every process starts from: the caller's,
// without what the cluster sets and without secrets that belong to one
// kind only (OPENAI_* stays for the classifiers: see openAI).
func baseEnv(env []string) []string {
	drop := []string{"DATABASE_URL", "NATS_URL", "MAILROOM_GRPC_ADDR", "MAILROOM_METRICS_ADDR", "MAILROOM_HTTP_ADDR",
		"MAILROOM_SERVICE_KEY", "MAILROOM_SERVICE_KEYS", "MAILROOM_VAULT_KEYS", "MAILROOM_BOOTSTRAP_TOKEN",
		"MAILROOM_AUTH_ADDR", "MAILROOM_INGEST_ADDR", "MAILROOM_CLASSIFIER_ADDR", "MAILROOM_STORE_ADDR",
		"MAILROOM_STREAM_REPLICAS", "MAILROOM_MIGRATE", "MAILROOM_PUBLIC_URL", "MAILROOM_REPLICA_ID",
		"MAILROOM", "MAILROOM_KEY"}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(drop, k) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func envOf(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in exec
		}
	}
	return v
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

// LookPath finds a binary: in dir first, then on PATH.
func LookPath(dir, name string) string {
	if dir != "" {
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
