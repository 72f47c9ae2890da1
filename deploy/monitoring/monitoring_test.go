package monitoring

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite prometheusrule.yaml from rules/mailroom.rules.yaml")

const dir = "../k8s/components/monitoring"

const ruleHeader = `# Generated from rules/mailroom.rules.yaml by
# ` + "`go test ./deploy/monitoring -update`" + `; edit that file (promtool tests it:
# ` + "`make alerts-test`" + `), never this one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: mailroom
`

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrometheusRuleIsTheRuleFile(t *testing.T) {
	var rules map[string]any
	if err := yaml.Unmarshal(read(t, "rules/mailroom.rules.yaml"), &rules); err != nil {
		t.Fatal(err)
	}
	if *update {
		spec, err := yaml.Marshal(map[string]any{"spec": rules})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "prometheusrule.yaml"), append([]byte(ruleHeader), spec...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pr struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	b := read(t, "prometheusrule.yaml")
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || !bytes.HasPrefix(b, []byte(ruleHeader)) {
		t.Errorf("prometheusrule.yaml is not the generated PrometheusRule")
	}
	if !reflect.DeepEqual(pr.Spec, rules) {
		t.Errorf("prometheusrule.yaml's spec differs from rules/mailroom.rules.yaml: run go test ./deploy/monitoring -update")
	}
}

// exported lists the Prometheus names of what mailroom exports (histograms
// by their base name); the dashboard and the rules may use nothing else,
// besides Prometheus's own up.
var exported = []string{
	"up",
	"mailroom_llm_requests_total", "mailroom_llm_tokens_total", "mailroom_llm_cost_usd_total", "mailroom_llm_request_duration_seconds",
	"mailroom_limiter_limit", "mailroom_limiter_available", "mailroom_limiter_in_flight", "mailroom_limiter_frozen",
	"mailroom_lane_waiting", "mailroom_lane_wait_seconds", "mailroom_classifications_total",
	"mailroom_dead_letters_total", "mailroom_dead_letters", "mailroom_consumer_pending", "mailroom_consumer_ack_pending",
	"mailroom_budget_remaining_usd", "mailroom_budget_limit_usd", "mailroom_budget_exhausted",
	"mailroom_store_rows_written_total", "mailroom_store_batch_seconds",
	"mailroom_sync_jobs", "mailroom_sync_jobs_ended_total", "mailroom_sync_messages_total", "mailroom_gmail_quota_units_total",
	"http_server_request_duration_seconds",
}

var metricName = regexp.MustCompile(`\b(up|mailroom_[a-z_]+|http_server_[a-z_]+)\b`)

func checkNames(t *testing.T, where, expr string) {
	t.Helper()
	for _, name := range metricName.FindAllString(expr, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if !slices.Contains(exported, name) && !slices.Contains(exported, base) {
			t.Errorf("%s uses %s, which mailroom does not export", where, name)
		}
	}
}

func TestRulesUseExportedMetrics(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(read(t, "rules/mailroom.rules.yaml"), &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			checkNames(t, r.Alert, r.Expr)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}
}

func TestDashboard(t *testing.T) {
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(read(t, "dashboards/mailroom.json"), &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid")
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkNames(t, "panel "+p.Title, tg.Expr)
			queries++
		}
	}
	if queries < 20 {
		t.Errorf("%d queries: the dashboard lost its panels", queries)
	}
}
