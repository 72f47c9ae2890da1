package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server (Debian's prometheus package)
// that scrapes a test's targets every second.
type Prometheus struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
}

// PrometheusSample is one series of an instant query's answer.
type PrometheusSample struct {
	Metric map[string]string
	Value  string
}

// StartPrometheus starts Debian's prometheus (PROMETHEUS_BIN, default
// "prometheus" on PATH) scraping each target's /metrics (host:port) every
// second, with job label job. The test is skipped when the binary is
// missing, unless MAILROOM_REQUIRE_PROMETHEUS=1, where it fails. The server
// stops when the test ends.
func StartPrometheus(t testing.TB, job string, targets ...string) *Prometheus {
	t.Helper()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: %q\n    static_configs:\n      - targets: [%s]\n",
		job, strings.Join(quoted, ", "))
	return StartPrometheusConfig(t, t.TempDir(), cfg)
}

// StartPrometheusConfig starts Debian's prometheus, as StartPrometheus
// does, with the configuration cfg written to dir/prometheus.yml (paths in
// it, such as a credentials_file, are relative to dir).
func StartPrometheusConfig(t testing.TB, dir, cfg string) *Prometheus {
	t.Helper()
	bin := os.Getenv("PROMETHEUS_BIN")
	if bin == "" {
		bin = "prometheus"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("MAILROOM_REQUIRE_PROMETHEUS") == "1" {
			t.Fatalf("testenv: no %s binary (apt-get install prometheus)", bin)
		}
		t.Skipf("testenv: no %s binary (apt-get install prometheus)", bin)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("testenv: start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	p := &Prometheus{URL: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: prometheus not ready on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Query runs an instant query; a query Prometheus refuses fails the test.
func (p *Prometheus) Query(t testing.TB, expr string) []PrometheusSample {
	t.Helper()
	resp, err := http.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatalf("prometheus query %q: %v", expr, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("prometheus query %q: %v", expr, err)
	}
	if body.Status != "success" {
		t.Fatalf("prometheus query %q: %s", expr, body.Error)
	}
	var out []PrometheusSample
	switch body.Data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &v); err != nil {
			t.Fatal(err)
		}
		for _, s := range v {
			out = append(out, PrometheusSample{Metric: s.Metric, Value: fmt.Sprint(s.Value[1])})
		}
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(body.Data.Result, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, PrometheusSample{Value: fmt.Sprint(s[1])})
	}
	return out
}

// WaitFor queries expr until it returns at least one series (for up to
// timeout) and returns them; it fails the test when none came.
func (p *Prometheus) WaitFor(t testing.TB, expr string, timeout time.Duration) []PrometheusSample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s := p.Query(t, expr); len(s) > 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %q returned nothing within %s", expr, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
