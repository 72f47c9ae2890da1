package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"mailroom.dev/cmd/mailroom/suite"
	"mailroom.dev/platform/testenv"
)

// scrapeGateway reads the gateway's /metrics with the admin key, as an
// operator of mailroom dev does, and parses it (a registry whose families
// disagree, say on their help, answers 500 and fails here).
func scrapeGateway(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest("GET", e.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return families
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestDevMetricsCarryEveryService checks the one /metrics of mailroom dev
// (the gateway's): every series is labelled service, each of the five
// services is there with its own service.name, each reports its gRPC or
// HTTP server metrics, and every JetStream consumer of the chain — the
// classifier's lanes, the store's three, ingest's — reports its lag under
// the service that owns it. No label holds a user or mailbox id or a key.
func TestDevMetricsCarryEveryService(t *testing.T) {
	e := start(t, options{})
	ada := e.user("ada")
	mb := e.mailbox("ada", ada, "inbox")
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": raw(t, "newsletter.eml")}}})
	e.classified(ada, "ada", 1)
	e.must(200, "POST", "/v1/classify", ada, map[string]any{"subject": "Lunch?", "from": "grace@example.org", "body": "Are you free?"})

	// Every consumer of the chain, by the service that owns it.
	wantConsumers := map[string][]string{
		"classifier": {"classifier-interactive", "classifier-live", "classifier-backfill"},
		"store":      {"store-received", "store-classified", "store-dead-letters"},
		"ingest":     {"ingest-progress", "ingest-batch"},
	}
	var families map[string]*dto.MetricFamily
	var missing []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		families = scrapeGateway(t, e)
		missing = nil
		// The server metrics of each service (otelgrpc's on the four
		// services, the gateway's HTTP ones).
		has := func(family, service string) bool {
			for _, m := range families[family].GetMetric() {
				if label(m, "service") == service {
					return true
				}
			}
			return false
		}
		for _, svc := range suite.Services {
			family := "rpc_server_call_duration_seconds"
			if svc == "gateway" {
				family = "http_server_request_duration_seconds"
			}
			if !has(family, svc) {
				missing = append(missing, family+"{service="+svc+"}")
			}
			if !has("target_info", svc) {
				missing = append(missing, "target_info{service="+svc+"}")
			}
		}
		for _, family := range []string{"mailroom_consumer_pending", "mailroom_consumer_ack_pending", "mailroom_consumer_redelivered"} {
			got := map[string]string{}
			for _, m := range families[family].GetMetric() {
				got[label(m, "consumer")] = label(m, "service")
			}
			for svc, consumers := range wantConsumers {
				for _, c := range consumers {
					if got[c] != svc {
						missing = append(missing, family+"{consumer="+c+",service="+svc+"} (service: "+got[c]+")")
					}
				}
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("mailroom dev's /metrics lacks:\n%s", strings.Join(missing, "\n"))
	}

	for name, f := range families {
		for _, m := range f.GetMetric() {
			svc := label(m, "service")
			if !slices.Contains(suite.Services, svc) {
				t.Errorf("%s has service %q, want one of %v", name, svc, suite.Services)
			}
			if name == "target_info" && label(m, "service_name") != "mailroom-"+svc {
				t.Errorf("target_info of service %q has service_name %q", svc, label(m, "service_name"))
			}
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "ada") || strings.Contains(v, "inbox") || strings.Contains(v, "mr_") || strings.Contains(v, e.admin) {
					t.Errorf("%s: label %s = %q holds an id or a key", name, l.GetName(), v)
				}
			}
		}
	}
}

// TestReadmePrometheusScrapesDev runs Debian's Prometheus with the README's
// scrape configuration for mailroom dev, as written (only the gateway's
// port moved), beside a running suite whose admin key is in
// .mailroom/admin-key, and finds every service's series in it.
func TestReadmePrometheusScrapesDev(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- prometheus: dev -->\\s*```yaml\\n(.*?)```\\s*<!-- /prometheus -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no <!-- prometheus: dev --> yaml block")
	}
	e := start(t, options{})
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".mailroom"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".mailroom", "admin-key"), []byte(e.admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(string(m[1]), "127.0.0.1:8080", strings.TrimPrefix(e.url, "http://"))
	prom := testenv.StartPrometheusConfig(t, dir, cfg)

	prom.WaitFor(t, `up == 1`, 60*time.Second)
	var got []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		got = nil
		for _, s := range prom.Query(t, `count by (service) (target_info)`) {
			got = append(got, s.Metric["service"])
		}
		slices.Sort(got)
		if len(got) == len(suite.Services) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	want := slices.Clone(suite.Services)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Prometheus has target_info of services %v, want %v", got, want)
	}
	lag := prom.WaitFor(t, `count by (service) (mailroom_consumer_pending)`, 30*time.Second)
	if len(lag) != 3 {
		t.Errorf("consumer lag of %v, want the classifier's, ingest's and the store's", lag)
	}
}
