// Command costbench is `make bench-cost`: a workload of 20 users × 500
// mails (bench/cost/workload.jsonl.gz, generated with a fixed seed by
// -generate) imported through the whole suite (cmd/mailroom/suite: gateway,
// ingest, classifier, store, embedded NATS and SQLite) against the fake
// OpenAI, once per configuration: every mail to the model in realtime (the
// old way); rules and the verdict cache; plus learned senders; plus the
// Batch API for the backfill. It prints model calls, tokens and dollars at
// gpt-4o-mini and gpt-4o prices, and how much mail ends in another category
// than the model alone gives it.
//
// Each user's mail is imported oldest first in pages (as a first sync
// fetches it), each page once the one before is classified.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-envconfig"

	"mailroom.dev/cmd/mailroom/suite"
	"mailroom.dev/fakes/fakeopenai"
)

type scenario struct {
	name string
	env  map[string]string
}

var scenarios = []scenario{
	{"every mail to the model, realtime (the old way)", map[string]string{"MAILROOM_RULES_TIER": "false", "MAILROOM_VERDICT_CACHE": "false", "MAILROOM_LEARN_SENDERS": "false", "OPENAI_BATCH": "off"}},
	{"rules + verdict cache", map[string]string{"MAILROOM_LEARN_SENDERS": "false", "OPENAI_BATCH": "off"}},
	{"+ learned senders", map[string]string{"OPENAI_BATCH": "off"}},
	{"+ Batch API for the backfill", map[string]string{"OPENAI_BATCH": "auto"}},
}

// price is a model's list price in US dollars per million tokens (the
// classifier's built-in table); the Batch API takes half off.
type price struct{ input, cached, output float64 }

var (
	mini = price{0.15, 0.075, 0.60}
	gpt4 = price{2.50, 1.25, 10.00}
)

type tokens struct{ calls, prompt, cached, completion int64 }

func (t tokens) dollars(p price, factor float64) float64 {
	return factor * (float64(t.prompt-t.cached)*p.input + float64(t.cached)*p.cached + float64(t.completion)*p.output) / 1e6
}

type result struct {
	name     string
	realtime tokens
	batch    tokens
	batches  int64
	category map[string]string // workload id → category
	sources  map[string]int
	took     time.Duration
}

func (r result) usd(p price) float64 { return r.realtime.dollars(p, 1) + r.batch.dollars(p, 0.5) }

const apiKey = "sk-costbench-000000000000"

func main() {
	generate := flag.Bool("generate", false, "write the workload file and exit")
	workload := flag.String("workload", "bench/cost/workload.jsonl.gz", "the workload file")
	users := flag.Int("users", 20, "users (with -generate)")
	perUser := flag.Int("per-user", 500, "mails per user (with -generate)")
	page := flag.Int("page", 50, "mails per user per import page")
	out := flag.String("out", "bench/out/cost", "where the report and logs go")
	flag.Parse()
	if *generate {
		if err := writeWorkload(*workload, Generate(*users, *perUser)); err != nil {
			log.Fatal(err)
		}
		fmt.Println("wrote", *workload)
		return
	}
	mails, err := readWorkload(*workload)
	if err != nil {
		log.Fatalf("%v (make it with -generate)", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	var results []result
	for i, sc := range scenarios {
		fmt.Fprintf(os.Stderr, "%d/%d %s …\n", i+1, len(scenarios), sc.name)
		r, err := run(sc, mails, *page, filepath.Join(*out, fmt.Sprintf("suite-%d.log", i+1)))
		if err != nil {
			log.Fatalf("%s: %v", sc.name, err)
		}
		results = append(results, r)
	}
	report := table(results, mails)
	fmt.Print(report)
	if err := os.WriteFile(filepath.Join(*out, "report.md"), []byte(report), 0o644); err != nil {
		log.Fatal(err)
	}
}

func table(rs []result, mails []Mail) string {
	var b strings.Builder
	base := rs[0]
	fmt.Fprintf(&b, "Workload: %d mails of %d users (%s).\n\n", len(mails), len(users(mails)), kinds(mails))
	b.WriteString("| configuration | model calls (realtime + batch) | prompt tokens | cached | completion | $ gpt-4o-mini | $ gpt-4o | vs old way | category differs from model alone |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		differs := 0
		for id, c := range base.category {
			if r.category[id] != c {
				differs++
			}
		}
		fmt.Fprintf(&b, "| %s | %d + %d | %d | %d | %d | %.4f | %.4f | %.1f%% | %.2f%% |\n", r.name,
			r.realtime.calls, r.batch.calls, r.realtime.prompt+r.batch.prompt, r.realtime.cached+r.batch.cached,
			r.realtime.completion+r.batch.completion, r.usd(mini), r.usd(gpt4), 100*r.usd(mini)/base.usd(mini),
			100*float64(differs)/float64(len(base.category)))
	}
	b.WriteString("\nVerdicts by source:\n\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "- %s: %v (%d batches; %s)\n", r.name, r.sources, r.batches, r.took.Round(time.Second))
	}
	return b.String()
}

func users(mails []Mail) []string {
	var us []string
	seen := map[string]bool{}
	for _, m := range mails {
		if !seen[m.User] {
			seen[m.User] = true
			us = append(us, m.User)
		}
	}
	return us
}

func run(sc scenario, mails []Mail, page int, logPath string) (result, error) {
	fake, fakeURL, stopFake, err := fakeopenai.Start(fakeopenai.Config{
		Keys:  map[string]fakeopenai.Limits{apiKey: {RPM: 100000, TPM: 100_000_000}},
		Batch: fakeopenai.BatchConfig{Completion: 2 * time.Second, EnqueuedTokens: map[string]int64{"gpt-4o-mini": 20_000_000}},
	})
	if err != nil {
		return result{}, err
	}
	defer stopFake()
	dir, err := os.MkdirTemp("", "costbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	logFile, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer logFile.Close()
	vars := map[string]string{
		"MAILROOM_HTTP_ADDR": "127.0.0.1:0", "MAILROOM_AUTH_ADDR": "127.0.0.1:0", "MAILROOM_INGEST_ADDR": "127.0.0.1:0",
		"MAILROOM_CLASSIFIER_ADDR": "127.0.0.1:0", "MAILROOM_STORE_ADDR": "127.0.0.1:0",
		"MAILROOM_BOOTSTRAP_TOKEN": "costbench-admin-0000000000000000",
		"OPENAI_API_KEY":           apiKey, "OPENAI_BASE_URL": fakeURL + "/v1", "OPENAI_MODEL": "gpt-4o-mini",
		"OPENAI_RPM": "100000", "OPENAI_TPM": "100000000",
		"OPENAI_BATCH_POLL": "250ms", "OPENAI_BATCH_WINDOW": "1s",
		"MAILROOM_RETENTION_DAYS": "0",
	}
	for k, v := range sc.env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := suite.Start(ctx, suite.Config{Dir: dir, Env: envconfig.MapLookuper(vars), Logger: logger})
	if err != nil {
		return result{}, err
	}
	defer func() { cancel(); _ = s.Wait() }()
	c := &client{url: s.HTTPURL, admin: s.AdminKey}
	if err := c.waitReady(); err != nil {
		return result{}, err
	}
	byUser := map[string][]Mail{}
	for _, m := range mails {
		byUser[m.User] = append(byUser[m.User], m)
	}
	keys := map[string]string{}
	for u := range byUser {
		k, err := c.setUp(u)
		if err != nil {
			return result{}, err
		}
		keys[u] = k
	}
	start := time.Now()
	names := map[string]string{} // message name → workload id
	var mu sync.Mutex
	for p := 0; ; p++ {
		var wg sync.WaitGroup
		errs := make(chan error, len(byUser))
		more := false
		for u, ms := range byUser {
			lo, hi := p*page, min((p+1)*page, len(ms))
			if lo >= hi {
				continue
			}
			more = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := c.importPage(u, keys[u], ms[lo:hi])
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for name, id := range got {
					names[name] = id
				}
				mu.Unlock()
				errs <- c.waitClassified(u, keys[u], hi)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return result{}, err
			}
		}
		if !more {
			break
		}
	}
	r := result{name: sc.name, category: map[string]string{}, sources: map[string]int{}, took: time.Since(start)}
	for u := range byUser {
		if err := c.collect(u, keys[u], names, &r); err != nil {
			return result{}, err
		}
	}
	st := fake.Stats().Keys[apiKey]
	r.realtime = tokens{st.Requests, st.PromptTokens, st.CachedTokens, st.CompletionTokens}
	bs := fake.BatchStats()
	r.batch = tokens{bs.Requests, bs.PromptTokens, bs.CachedTokens, bs.CompletionTokens}
	r.batches = bs.Batches
	return r, nil
}

type client struct{ url, admin string }

func (c *client) do(method, path, key string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (c *client) waitReady() error {
	for range 300 {
		if resp, err := http.Get(c.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the suite did not become ready")
}

func (c *client) setUp(user string) (string, error) {
	if err := c.do("POST", "/v1/users?userId="+user, c.admin, map[string]any{"displayName": user}, nil); err != nil {
		return "", err
	}
	var k struct{ Key string }
	if err := c.do("POST", "/v1/users/"+user+"/apiKeys", c.admin, map[string]any{"displayName": "bench"}, &k); err != nil {
		return "", err
	}
	return k.Key, c.do("POST", "/v1/users/me/mailboxes?mailboxId=inbox", k.Key, map[string]any{"provider": "IMPORT", "displayName": "bench"}, nil)
}

func raw(m Mail) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s@example.com\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@costbench.example>\r\n",
		m.From, m.User, m.Subject, time.Now().Add(-time.Duration(m.Age)*time.Minute).Format(time.RFC1123Z), m.ID)
	if m.ListID != "" {
		fmt.Fprintf(&b, "List-Id: <%s>\r\nList-Unsubscribe: <https://%s/unsubscribe>\r\n", m.ListID, m.ListID)
	}
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", m.Body)
	return base64.StdEncoding.EncodeToString([]byte(b.String()))
}

func (c *client) importPage(user, key string, ms []Mail) (map[string]string, error) {
	var body struct {
		Messages []map[string]string `json:"messages"`
	}
	for _, m := range ms {
		body.Messages = append(body.Messages, map[string]string{"raw": raw(m)})
	}
	var resp struct {
		Messages []struct{ Message string }
	}
	if err := c.do("POST", "/v1/users/me/mailboxes/inbox/messages:import", key, body, &resp); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, m := range resp.Messages {
		out[m.Message] = ms[i].ID
	}
	return out, nil
}

func (c *client) waitClassified(user, key string, n int) error {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var st struct{ Classified, Failed string }
		if err := c.do("GET", "/v1/users/me/stats", key, nil, &st); err != nil {
			return err
		}
		done, _ := strconv.Atoi(st.Classified)
		failed, _ := strconv.Atoi(st.Failed)
		if done+failed >= n {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: mail not classified within 10 minutes", user)
}

func (c *client) collect(user, key string, names map[string]string, r *result) error {
	token := ""
	for {
		var resp struct {
			Messages []struct {
				Name           string
				Classification struct{ Category, Source string }
			}
			NextPageToken string
		}
		if err := c.do("GET", "/v1/users/me/messages?pageSize=1000&pageToken="+token, key, nil, &resp); err != nil {
			return err
		}
		for _, m := range resp.Messages {
			r.category[names[m.Name]] = m.Classification.Category
			r.sources[strings.TrimPrefix(m.Classification.Source, "CLASSIFICATION_SOURCE_")]++
		}
		if resp.NextPageToken == "" {
			return nil
		}
		token = resp.NextPageToken
	}
}
