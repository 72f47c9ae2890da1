package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailroom.dev/platform/testenv"
)

// clusterState is cluster.json as the issue specifies it.
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

// TestClusterWalkthrough runs `mailroom cluster up --replicas 2` on a fresh
// Postgres database with the binaries `make build` makes, runs the README's
// curl walkthrough through each gateway that cluster.json lists, kills a
// store replica to see the supervisor restart it, then `mailroom cluster
// down`, and expects every process to have exited cleanly.
func TestClusterWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs 13 processes")
	}
	dbURL := testenv.PostgresURL(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	curlScript := walkthrough(t, readme, "curl")

	work := t.TempDir()
	bin := filepath.Join(work, ".bin")
	buildClusterBinaries(t, bin)
	env := withoutVars(os.Environ(), "DATABASE_URL", "NATS_URL", "MAILROOM_BOOTSTRAP_TOKEN", "OPENAI_API_KEY", "OPENAI_API_KEYS",
		"OPENAI_BASE_URL", "MAILROOM_NATS_PREFIX", "MAILROOM", "MAILROOM_KEY")
	env = append(env, "DATABASE_URL="+dbURL)
	mailroom := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "mailroom"), args...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// --dir .mailroom: the walkthrough reads the admin key from .mailroom/admin-key.
	out, err := mailroom(5*time.Minute, "cluster", "up", "--dir", ".mailroom", "--replicas", "2")
	down := false
	t.Cleanup(func() {
		if !down {
			out, err := mailroom(3*time.Minute, "cluster", "down", "--dir", ".mailroom")
			t.Logf("cluster down (cleanup): %v\n%s", err, out)
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(work, ".mailroom", "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("--- %s (tail):\n%s", filepath.Base(l), b)
			}
		}
	})
	if err != nil {
		t.Fatalf("mailroom cluster up: %v\n%s", err, out)
	}
	if key, _ := os.ReadFile(filepath.Join(work, ".mailroom", "admin-key")); len(key) < 32 || strings.Contains(out, strings.TrimSpace(string(key))) {
		t.Errorf("the admin key is missing (%d bytes) or printed by cluster up", len(key))
	}

	st := readClusterState(t, filepath.Join(work, ".mailroom"))
	kinds := map[string]int{}
	pids := map[int]bool{}
	for _, p := range st.Processes {
		kinds[p.Kind]++
		if p.PID == 0 || pids[p.PID] {
			t.Errorf("%s has pid %d (zero or another process's)", p.Name, p.PID)
		}
		pids[p.PID] = true
	}
	for _, k := range []string{"auth", "ingest", "classifier", "store", "gateway"} {
		if kinds[k] != 2 {
			t.Errorf("cluster.json lists %d processes of kind %s, want 2", kinds[k], k)
		}
	}
	if len(st.NATS) != 3 || len(st.Gateway) != 2 {
		t.Fatalf("cluster.json lists %d NATS nodes and %d gateways, want 3 and 2: %+v", len(st.NATS), len(st.Gateway), st)
	}

	// The README's walkthrough through every gateway (the user and the
	// mailbox exist after the first: the second run's creates are refused
	// and the import is a duplicate, and it lists the newsletter again).
	for _, gw := range st.Gateway {
		out := runScript(t, work, env, curlScript, map[string]string{"http://127.0.0.1:8080": gw})
		if !regexp.MustCompile(`"category":\s*"newsletters"`).MatchString(out) {
			t.Fatalf("the curl walkthrough through %s did not list the newsletter classified as newsletters; it printed:\n%s", gw, out)
		}
	}

	// The supervisor restarts a process that dies, cluster.json follows,
	// and the restarted process serves again.
	var store1 int
	for _, p := range st.Processes {
		if p.Name == "store-1" {
			store1 = p.PID
		}
	}
	if err := syscall.Kill(store1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		restarted := 0
		for _, p := range readClusterState(t, filepath.Join(work, ".mailroom")).Processes {
			if p.Name == "store-1" && p.PID != 0 && p.PID != store1 {
				restarted = p.PID
			}
		}
		if restarted != 0 {
			// ... and it serves again.
			out, _ := mailroom(time.Minute, "cluster", "status", "--dir", ".mailroom")
			if regexp.MustCompile(`(?m)^store-1 .* yes$`).MatchString(out) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("store-1 (pid %d, killed) was not restarted and ready within 2 minutes", store1)
		}
		time.Sleep(200 * time.Millisecond)
	}

	out, err = mailroom(5*time.Minute, "cluster", "down", "--dir", ".mailroom")
	down = true
	if err != nil {
		t.Fatalf("mailroom cluster down: %v\n%s", err, out)
	}
	if got := strings.Count(out, "exit status 0"); got != 13 {
		t.Errorf("cluster down reported %d processes that exited with status 0, want 13:\n%s", got, out)
	}
	for _, p := range readClusterState(t, filepath.Join(work, ".mailroom")).Processes {
		if p.PID != 0 {
			t.Errorf("after down, cluster.json still lists %s with pid %d", p.Name, p.PID)
		}
	}
	for pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d still runs after cluster down", pid)
		}
	}
}

func readClusterState(t *testing.T, dir string) clusterState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st clusterState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("cluster.json: %v\n%s", err, b)
	}
	return st
}

// buildClusterBinaries builds what `make build` puts in .bin/ for
// `mailroom cluster`: the CLI, every service, the gateway and nats-server.
func buildClusterBinaries(t *testing.T, dir string) {
	t.Helper()
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
}
