package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
)

// A node's configuration, read by nats-server's own parser, is deploy/k8s's:
// JetStream fsynced on every write, a route to each of the three nodes.
func TestNATSConfigIsProductions(t *testing.T) {
	dir := t.TempDir()
	routes := []string{"nats-route://127.0.0.1:6001", "nats-route://127.0.0.1:6002", "nats-route://127.0.0.1:6003"}
	path := filepath.Join(dir, "nats-2.conf")
	if err := os.WriteFile(path, []byte(natsConfig("nats-2", 4002, 6002, filepath.Join(dir, "nats-2"), routes)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || !opts.SyncAlways {
		t.Errorf("JetStream %v, sync_interval always %v; want both", opts.JetStream, opts.SyncAlways)
	}
	if opts.ServerName != "nats-2" || opts.Port != 4002 || opts.Host != "127.0.0.1" {
		t.Errorf("server %q on %s:%d, want nats-2 on 127.0.0.1:4002", opts.ServerName, opts.Host, opts.Port)
	}
	if opts.Cluster.Port != 6002 || len(opts.Routes) != 3 || opts.Cluster.Name != "mailroom" {
		t.Errorf("cluster %q on :%d with %d routes, want mailroom on :6002 with 3", opts.Cluster.Name, opts.Cluster.Port, len(opts.Routes))
	}
	if opts.StoreDir != filepath.Join(dir, "nats-2") {
		t.Errorf("store_dir %q, want %q", opts.StoreDir, filepath.Join(dir, "nats-2"))
	}
}

// Every service connects to NATS through eventbus.Connect, which takes a
// comma list of URLs (the cluster's three nodes): a node that is down is
// skipped.
func TestEventbusConnectTakesACommaList(t *testing.T) {
	url := testenv.NATS(t)
	list := "nats://127.0.0.1:1," + url
	nc, _, err := eventbus.Connect(list, "mailroom-cluster-test")
	if err != nil {
		t.Fatalf("Connect(%q): %v", list, err)
	}
	defer nc.Close()
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
	servers := nc.Servers()
	if len(servers) < 2 {
		t.Errorf("the connection knows %d servers (%v), want both of the list", len(servers), servers)
	}
}

func TestValidateSaysWhatIsWrong(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []string{"auth", "ingest", "classifier", "store", "gateway"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := func() Options {
		return Options{Replicas: 2, BinDir: bin, NATSServer: "/bin/true", DatabaseURL: "postgres://u@h/db", Env: []string{}}
	}
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no database", func(o *Options) { o.DatabaseURL = "" }, "DATABASE_URL is required"},
		{"sqlite", func(o *Options) { o.DatabaseURL = "sqlite://x.db" }, "must be postgres://"},
		{"replicas 0", func(o *Options) { o.Replicas = 0 }, "--replicas 0: must be 1 to 9"},
		{"replicas 10", func(o *Options) { o.Replicas = 10 }, "--replicas 10"},
		{"openai mode", func(o *Options) { o.OpenAI = "real" }, `--openai "real"`},
		{"no binaries", func(o *Options) { o.BinDir = t.TempDir() }, "binary auth not found"},
		{"no nats-server", func(o *Options) { o.NATSServer = "" }, "no nats-server binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.change(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error saying %q", err, tc.want)
			}
		})
	}
	o := good()
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate() of a good configuration: %v", err)
	}
	if o.Dir != DefaultDir || o.OpenAI != OpenAIFake {
		t.Errorf("defaults: dir %q, openai %q; want %q and fake (no OPENAI_API_KEY)", o.Dir, o.OpenAI, DefaultDir)
	}
	o = good()
	o.Env = []string{"OPENAI_API_KEYS=sk-a,sk-b"}
	if err := o.Validate(); err != nil || o.OpenAI != OpenAIEnv {
		t.Errorf("with OPENAI_API_KEYS: openai %q (%v), want env", o.OpenAI, err)
	}
}

// What the cluster sets for each process is not inherited from the
// caller's environment (a NATS_URL or a service key of another setup).
func TestBaseEnvDropsWhatTheClusterSets(t *testing.T) {
	got := baseEnv([]string{"PATH=/bin", "NATS_URL=nats://elsewhere:4222", "MAILROOM_SERVICE_KEYS=x:y", "MAILROOM_LOG_LEVEL=debug", "OPENAI_API_KEY=sk-1", "MAILROOM_KEY=mr_admin"})
	want := []string{"PATH=/bin", "MAILROOM_LOG_LEVEL=debug", "OPENAI_API_KEY=sk-1"}
	if !slices.Equal(got, want) {
		t.Errorf("baseEnv = %q, want %q", got, want)
	}
}
