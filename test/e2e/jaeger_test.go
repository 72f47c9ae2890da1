package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// jaegerBinary returns the Jaeger binary `make jaeger` builds (JAEGER_BIN
// overrides it). The test is skipped without one, unless
// MAILROOM_REQUIRE_JAEGER=1 (CI), where it fails.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("JAEGER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../.bin/jaeger")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("MAILROOM_REQUIRE_JAEGER") == "1" {
			t.Fatalf("no Jaeger binary at %s (make jaeger builds it)", bin)
		}
		t.Skipf("no Jaeger binary at %s (make jaeger builds it)", bin)
	}
	return bin
}

// jaegerConfig is Jaeger v2's all-in-one reduced to what the test needs, on
// loopback ports of its own: the OTLP gRPC receiver, in-memory storage and
// the query API.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaegerTrace is a trace as Jaeger's query API (/api/traces/{id}) gives it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []jaegerTag `json:"tags"`
		Logs []struct {
			Fields []jaegerTag `json:"fields"`
		} `json:"logs"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string      `json:"serviceName"`
		Tags        []jaegerTag `json:"tags"`
	} `json:"processes"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func getJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// TestJaegerShowsOneTraceAcrossTheChain runs a real Jaeger (v2 all-in-one,
// built from its Go module by `make jaeger`) and `mailroom dev` exporting
// to it over OTLP, as the README says, imports one mail with a fresh API
// key, and reads the import's trace back from Jaeger's query API: one
// trace, with spans of the gateway, auth, ingest, the classifier and the
// store, each under its own service name, every span's parent in the trace,
// and no mail content, user id, mailbox id or key in any tag.
func TestJaegerShowsOneTraceAcrossTheChain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Jaeger and builds mailroom")
	}
	jaeger := jaegerBinary(t)
	work := t.TempDir()

	otlpAddr, queryAddr, queryGRPC := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(work, "jaeger.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, jaegerConfig, queryAddr, queryGRPC, otlpAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	var jaegerOut syncBuffer
	jcmd := exec.Command(jaeger, "--config", cfgPath)
	jcmd.Stdout, jcmd.Stderr = &jaegerOut, &jaegerOut
	if err := jcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = jcmd.Process.Kill()
		_ = jcmd.Wait()
		if t.Failed() {
			t.Logf("jaeger printed:\n%s", jaegerOut.String())
		}
	})
	query := "http://" + queryAddr
	waitHTTP(t, query+"/api/services", 60*time.Second)

	bin := filepath.Join(work, ".bin")
	build(t, bin, "../../cmd/mailroom", "mailroom", "")
	admin := "jaeger-admin-" + strings.Repeat("k", 40)
	gatewayAddr := freeAddr(t)
	devEnv := withoutVars(os.Environ(), "DATABASE_URL", "NATS_URL", "OPENAI_API_KEY", "OPENAI_API_KEYS", "MAILROOM_NATS_PREFIX",
		"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	devEnv = append(devEnv,
		"MAILROOM_HTTP_ADDR="+gatewayAddr,
		"MAILROOM_AUTH_ADDR="+freeAddr(t),
		"MAILROOM_INGEST_ADDR="+freeAddr(t),
		"MAILROOM_CLASSIFIER_ADDR="+freeAddr(t),
		"MAILROOM_STORE_ADDR="+freeAddr(t),
		"MAILROOM_BOOTSTRAP_TOKEN="+admin,
		// As the README says: traces to Jaeger, metrics on /metrics only.
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+otlpAddr,
		"OTEL_METRICS_EXPORTER=prometheus",
		// Export each batch soon, rather than every 5 s.
		"OTEL_BSP_SCHEDULE_DELAY=200",
	)
	var devOut syncBuffer
	dev := exec.Command(filepath.Join(bin, "mailroom"), "dev")
	dev.Dir, dev.Env, dev.Stdout, dev.Stderr = work, devEnv, &devOut, &devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Kill()
		_ = dev.Wait()
		if t.Failed() {
			t.Logf("mailroom dev printed:\n%s", devOut.String())
		}
	})
	gateway := "http://" + gatewayAddr
	waitHTTP(t, gateway+"/readyz", 60*time.Second)

	e := &env{t: t, url: gateway, admin: admin}
	ada := e.user("ada")
	mb := e.mailbox("ada", ada, "inbox")
	// A key the gateway has not exchanged yet: its exchange at auth is
	// part of the import's trace.
	k := e.must(200, "POST", "/v1/users/ada/apiKeys", admin, map[string]any{"displayName": "jaeger"})
	fresh, _ := k["key"].(string)

	traceID := trace.TraceID{0x6a, 0x61, 0x65, 0x67, 0x65, 0x72, 0x2d, 0x65, 0x32, 0x65, 0x2d, 0x74, 0x72, 0x61, 0x63, 0x65}
	const clientSpan = "00f067aa0ba902b7"
	e.header("traceparent", "00-"+traceID.String()+"-"+clientSpan+"-01")
	e.must(200, "POST", "/v1/"+mb+"/messages:import", fresh, map[string]any{"messages": []map[string]any{{"raw": raw(t, "newsletter.eml")}}})
	e.header("traceparent", "")
	e.classified(ada, "ada", 1)

	services := []string{"mailroom-gateway", "mailroom-auth", "mailroom-ingest", "mailroom-classifier", "mailroom-store"}
	var (
		tr       jaegerTrace
		perSvc   map[string]int
		problems []string
	)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var got struct {
			Data []jaegerTrace `json:"data"`
		}
		status, err := getJSON(query+"/api/traces/"+traceID.String(), &got)
		problems = nil
		switch {
		case err != nil:
			problems = append(problems, err.Error())
		case status != http.StatusOK:
			problems = append(problems, fmt.Sprintf("/api/traces/%s: status %d", traceID, status))
		case len(got.Data) != 1:
			problems = append(problems, fmt.Sprintf("%d traces, want 1", len(got.Data)))
		default:
			tr = got.Data[0]
			perSvc = map[string]int{}
			ids := map[string]bool{}
			for _, s := range tr.Spans {
				perSvc[tr.Processes[s.ProcessID].ServiceName]++
				ids[s.SpanID] = true
			}
			for _, svc := range services {
				if perSvc[svc] == 0 {
					problems = append(problems, "no span of "+svc)
				}
			}
			// One trace, no piece missing: every parent is in it (the
			// client's span, sent as traceparent, is the root's parent).
			for _, s := range tr.Spans {
				if s.TraceID != traceID.String() {
					problems = append(problems, fmt.Sprintf("span %s (%s) has trace id %s", s.SpanID, s.OperationName, s.TraceID))
				}
				for _, r := range s.References {
					if r.RefType == "CHILD_OF" && !ids[r.SpanID] && r.SpanID != clientSpan {
						problems = append(problems, fmt.Sprintf("span %s (%s) has parent %s, not in the trace", s.SpanID, s.OperationName, r.SpanID))
					}
				}
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(problems) > 0 {
		t.Fatalf("trace %s in Jaeger (spans per service %v):\n%s", traceID, perSvc, strings.Join(problems, "\n"))
	}
	var counts []string
	for svc, n := range perSvc {
		counts = append(counts, fmt.Sprintf("%s %d", svc, n))
	}
	sort.Strings(counts)
	t.Logf("trace %s: %d spans (%s)", traceID, len(tr.Spans), strings.Join(counts, ", "))

	// Jaeger lists every service.
	var svcs struct {
		Data []string `json:"data"`
	}
	if _, err := getJSON(query+"/api/services", &svcs); err != nil {
		t.Fatal(err)
	}
	for _, svc := range services {
		if !slices.Contains(svcs.Data, svc) {
			t.Errorf("/api/services = %v, lacks %s", svcs.Data, svc)
		}
	}

	// What Jaeger keeps holds no mail content, no user or mailbox id in a
	// path or a subject, no key.
	forbidden := []string{"Gopher Weekly", "generics in practice", "gopherweekly", "ada@example.com",
		"users/ada", "mailboxes/inbox", "backfill.ada", "classified.ada", fresh, ada, admin}
	check := func(where string, tags []jaegerTag) {
		for _, tag := range tags {
			v := fmt.Sprint(tag.Value)
			for _, f := range forbidden {
				if strings.Contains(v, f) {
					t.Errorf("%s: tag %s = %q holds %q", where, tag.Key, v, f)
				}
			}
		}
	}
	for _, s := range tr.Spans {
		where := tr.Processes[s.ProcessID].ServiceName + " " + s.OperationName
		check(where, s.Tags)
		for _, l := range s.Logs {
			check(where+" (event)", l.Fields)
		}
	}
	for _, p := range tr.Processes {
		check(p.ServiceName+" (process)", p.Tags)
	}
}
