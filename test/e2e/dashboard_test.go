package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakegmail"
	"mailroom.dev/fakes/fakeopenai"
	"mailroom.dev/platform/testenv"
)

// dashboardFile is the Grafana dashboard the monitoring component ships.
const dashboardFile = "../../deploy/k8s/components/monitoring/dashboards/mailroom.json"

// panelQuery is one query of one panel of the dashboard.
type panelQuery struct{ panel, expr string }

// dashboardQueries returns every panel's queries, rows' panels included.
func dashboardQueries(t *testing.T) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []panelQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, panelQuery{p.Title, tg.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatalf("%s has no panel queries", dashboardFile)
	}
	return out
}

// TestEveryDashboardPanelHasData runs a real Prometheus (Debian's) scraping
// the gateway's /metrics of a running suite, as `mailroom dev` serves it
// (every service's metrics, labelled service), drives traffic through
// every part an operator watches — imports classified by the fake OpenAI
// with 429s and a failure that ends in the dead letters, an ad-hoc
// classify, a Gmail sync — and checks that every query of the dashboard
// returns data.
func TestEveryDashboardPanelHasData(t *testing.T) {
	const openaiKey = "sk-dashboard-test-key-000000000000"
	fake, fakeURL, stop, err := fakeopenai.Start(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{openaiKey: {RPM: 60000, TPM: 10_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	gmail := fakegmail.New()
	defer gmail.Close()
	gmail.AddAccount("ada@gmail.example").AddMessages(5)

	// Prometheus scrapes the gateway's internal metrics address, as in
	// deploy/k8s (the public /metrics wants an admin's key).
	metricsAddr := freeAddr(t)
	e := start(t, options{extra: map[string]string{
		"MAILROOM_METRICS_ADDR": metricsAddr,
		"OPENAI_API_KEY":        openaiKey,
		"OPENAI_BASE_URL":       fakeURL + "/v1",
		"OPENAI_RPM":            "60000",
		"OPENAI_TPM":            "10000000",
		// One failed model call gives up: the mail goes to the dead letters.
		"OPENAI_MAX_ATTEMPTS":             "1",
		"MAILROOM_CLASSIFIER_MAX_DELIVER": "1",
		"MAILROOM_DAILY_BUDGET_USD":       "5",
		"MAILROOM_CREDIT_USD":             "20",
		"GOOGLE_OAUTH_CLIENT_ID":          gmail.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":      gmail.ClientSecret,
		"MAILROOM_PUBLIC_URL":             "http://mailroom.invalid",
		"MAILROOM_GOOGLE_AUTH_URL":        gmail.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":       gmail.TokenURL,
		"MAILROOM_GMAIL_ENDPOINT":         gmail.URL,
		"MAILROOM_GMAIL_QUOTA_PER_MINUTE": "1000000",
		"MAILROOM_SYNC_INTERVAL":          "0",
		"MAILROOM_RETENTION_DAYS":         "0",
	}})
	// The job is the gateway's, as its ServiceMonitor names it.
	prom := testenv.StartPrometheus(t, "gateway", metricsAddr)

	ada := e.user("ada")
	mb := e.mailbox("ada", ada, "inbox")
	// The first model call fails (and gives up), the next three are 429s
	// (held, sent again after the reset), the rest succeed.
	fake.Inject(fakeopenai.ServerError, 1)
	fake.Inject(fakeopenai.RateLimitStorm(300*time.Millisecond), 3)
	var msgs []map[string]any
	for i := range 6 {
		msgs = append(msgs, map[string]any{"raw": personalMail(i)})
	}
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": msgs[:1]})
	// The failing call comes first, then the others.
	waitFor(t, 20*time.Second, "the first model call", func() bool { return fake.Stats().Keys[openaiKey].Requests >= 1 })
	e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": msgs[1:]})
	e.must(200, "POST", "/v1/classify", ada, map[string]any{"subject": "Quarterly planning", "from": "boss@example.com", "body": "Can we move the planning meeting to Thursday?"})

	// A Gmail mailbox, connected and synced.
	gm := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", ada, map[string]any{"provider": "GMAIL"})
	authURL, _ := gm["authorizationUrl"].(string)
	browse(t, e.url, authURL, nil)
	job := e.must(200, "POST", "/v1/users/ada/mailboxes/gmail:sync", ada, map[string]any{"maxMessages": 50})
	name, _ := job["name"].(string)
	if last := e.watch(ada, name); last["state"] != "SYNC_JOB_STATE_SUCCEEDED" {
		t.Fatalf("sync job ended %v", last)
	}
	// Everything but the dead letter is classified: 5 imported, 5 synced.
	e.classified(ada, "ada", 10)

	// Rates and quantiles need counters that grow while Prometheus
	// watches: the traffic goes on, a mail a second, a 429 now and then.
	queries := dashboardQueries(t)
	deadline := time.Now().Add(60 * time.Second)
	for i := len(msgs); ; i++ {
		if i%4 == 0 {
			fake.Inject(fakeopenai.RateLimitStorm(100*time.Millisecond), 1)
		}
		e.must(200, "POST", "/v1/"+mb+"/messages:import", ada, map[string]any{"messages": []map[string]any{{"raw": personalMail(i)}}})
		var missing []string
		for _, q := range queries {
			// Grafana's $__rate_interval: four scrape intervals at least.
			expr := strings.ReplaceAll(q.expr, "$__rate_interval", "1m")
			if !hasNumber(prom.Query(t, expr)) {
				missing = append(missing, fmt.Sprintf("%s: %s", q.panel, expr))
			}
		}
		if len(missing) == 0 {
			t.Logf("all %d queries of the dashboard returned data", len(queries))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d dashboard queries returned no data (fake OpenAI: %+v):\n%s",
				len(missing), len(queries), fake.Stats(), strings.Join(missing, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// hasNumber reports whether one sample of an answer is a number (a
// quantile or a share over nothing is NaN: no data on a panel).
func hasNumber(samples []testenv.PrometheusSample) bool {
	for _, s := range samples {
		if s.Value != "NaN" {
			return true
		}
	}
	return false
}

// personalMail is a mail no rule classifies (the model must), the i-th of
// its kind, dated now.
func personalMail(i int) string {
	m := fmt.Sprintf("From: Grace Hopper <grace@example.org>\r\nTo: Ada Lovelace <ada@example.com>\r\n"+
		"Subject: Dinner on Friday? (%d)\r\nDate: %s\r\nMessage-ID: <dashboard-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Hi Ada,\r\n\r\nare you free for dinner on Friday? The usual place at %d.\r\n\r\nGrace\r\n",
		i, time.Now().Add(-time.Duration(i)*time.Minute).Format(time.RFC1123Z), i, 7+i)
	return base64.StdEncoding.EncodeToString([]byte(m))
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
