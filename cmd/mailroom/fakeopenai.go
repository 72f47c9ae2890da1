package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

func init() {
	register("fakeopenai", "serve a fake OpenAI Chat Completions API with real rate limits, latency and faults (for demos and benchmarks)", fakeOpenAI)
}

// keyList is a repeatable flag whose values may also be comma lists.
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }

func (k *keyList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*k = append(*k, s)
		}
	}
	return nil
}

// specList is a repeatable flag of specs, each parsed when the flags are.
type specList[T any] struct {
	parse func(string) (T, error)
	items []T
}

func (l *specList[T]) String() string { return "" }

func (l *specList[T]) Set(v string) error {
	it, err := l.parse(v)
	if err != nil {
		return err
	}
	l.items = append(l.items, it)
	return nil
}

// parseLimits parses "RPM:TPM" (either may be 0: unlimited).
func parseLimits(v string) (fakeopenai.Limits, error) {
	r, t, ok := strings.Cut(v, ":")
	rpm, err1 := strconv.Atoi(r)
	tpm, err2 := strconv.Atoi(t)
	if !ok || err1 != nil || err2 != nil || rpm < 0 || tpm < 0 {
		return fakeopenai.Limits{}, fmt.Errorf("%q is not RPM:TPM", v)
	}
	return fakeopenai.Limits{RPM: rpm, TPM: tpm}, nil
}

// modelLimit is "MODEL=RPM:TPM".
type modelLimit struct {
	model  string
	limits fakeopenai.Limits
}

func parseModelLimit(v string) (modelLimit, error) {
	m, l, ok := strings.Cut(v, "=")
	if !ok || m == "" {
		return modelLimit{}, fmt.Errorf("%q is not MODEL=RPM:TPM", v)
	}
	lim, err := parseLimits(l)
	return modelLimit{m, lim}, err
}

// parseChange parses "AT=RPM:TPM" or "AT:MODEL=RPM:TPM" (for every key).
func parseChange(v string) (fakeopenai.LimitChange, error) {
	when, l, ok := strings.Cut(v, "=")
	if !ok {
		return fakeopenai.LimitChange{}, fmt.Errorf("%q is not AT[:MODEL]=RPM:TPM", v)
	}
	at, model, _ := strings.Cut(when, ":")
	d, err := time.ParseDuration(at)
	if err != nil {
		return fakeopenai.LimitChange{}, fmt.Errorf("%q: %w", v, err)
	}
	lim, err := parseLimits(l)
	return fakeopenai.LimitChange{At: d, Model: model, Limits: lim}, err
}

// parseLatencyStep parses "AT=LATENCY".
func parseLatencyStep(v string) (fakeopenai.LatencyStep, error) {
	at, lat, ok := strings.Cut(v, "=")
	a, err1 := time.ParseDuration(at)
	l, err2 := time.ParseDuration(lat)
	if !ok || err1 != nil || err2 != nil {
		return fakeopenai.LatencyStep{}, fmt.Errorf("%q is not AT=LATENCY", v)
	}
	return fakeopenai.LatencyStep{At: a, Latency: l}, nil
}

// fakeOpenAI serves fakeopenai until ctx is done (Ctrl-C).
func fakeOpenAI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeopenai", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8089", "address to listen on")
	var keys keyList
	fs.Var(&keys, "key", `API key to accept; repeat it or give a comma list for several organizations (default "`+fakeopenai.DefaultKey+`")`)
	rpm := fs.Int("rpm", fakeopenai.DefaultLimits.RPM, "requests per minute of each key (0: unlimited)")
	tpm := fs.Int("tpm", fakeopenai.DefaultLimits.TPM, "tokens per minute of each key (0: unlimited)")
	window := fs.Duration("window", 6*time.Second, "the burst a key's buckets hold: this long's share of the per-minute limits")
	maxTokens := fs.Int("default-max-tokens", 4096, "completion tokens counted at admission when a request sets no max_completion_tokens")
	latency := fs.Duration("latency", 0, "base response time of an admitted request")
	jitter := fs.Duration("jitter", 0, "random extra response time, up to this")
	seed := fs.Uint64("seed", 1, "seed of the jitter and the random faults")
	org := fs.String("org", "org-fake", "organization named in 429 messages")
	perMinute := fs.Bool("remaining-per-minute", false, "report in x-ratelimit-remaining-* what is left of the per-minute limit, as OpenAI documents it (default: what is left of the window)")
	models := specList[modelLimit]{parse: parseModelLimit}
	fs.Var(&models, "model-limit", "MODEL=RPM:TPM: limits of their own for that model on each key (repeatable)")
	changes := specList[fakeopenai.LimitChange]{parse: parseChange}
	fs.Var(&changes, "change", "AT=RPM:TPM or AT:MODEL=RPM:TPM: each key's limits (or its model's) become these AT after the start (repeatable)")
	steps := specList[fakeopenai.LatencyStep]{parse: parseLatencyStep}
	fs.Var(&steps, "latency-step", "AT=LATENCY: the base latency from AT after the start (repeatable)")
	var other fakeopenai.OtherClient
	fs.Float64Var(&other.Share, "other-share", 0, "another client on the first key's organization sends this share of its limits (0 to 1)")
	fs.IntVar(&other.Tokens, "other-tokens", 0, "admission tokens of each of the other client's requests (0: TPM ÷ RPM)")
	var rates fakeopenai.FaultRates
	fs.Float64Var(&rates.ServerError, "fault-rate-500", 0, "probability of a 500 server_error (after admission)")
	fs.Float64Var(&rates.Overloaded, "fault-rate-503", 0, "probability of a 503 overloaded (before admission)")
	fs.Float64Var(&rates.RateLimit, "fault-rate-429", 0, "probability of a 429 beyond the real limits (see -retry-after)")
	fs.Float64Var(&rates.ConnReset, "fault-rate-reset", 0, "probability of closing the connection without an answer")
	fs.Float64Var(&rates.Slow, "fault-rate-slow", 0, "probability of a slow answer (see -slow-latency)")
	fs.Float64Var(&rates.InvalidJSON, "fault-rate-invalid-json", 0, "probability of message content that is not JSON")
	fs.Float64Var(&rates.OutsideEnum, "fault-rate-outside-enum", 0, "probability of an answer outside the schema's enum")
	fs.DurationVar(&rates.SlowLatency, "slow-latency", 10*time.Second, "response time of a slow answer")
	fs.DurationVar(&rates.RateLimitRetryAfter, "retry-after", time.Second, `the "try again in" of an injected 429`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fakeopenai: unexpected arguments %q", fs.Args())
	}
	if len(keys) == 0 {
		keys = keyList{fakeopenai.DefaultKey}
	}
	sum := 0.0
	for name, p := range map[string]float64{
		"500": rates.ServerError, "503": rates.Overloaded, "429": rates.RateLimit, "reset": rates.ConnReset,
		"slow": rates.Slow, "invalid-json": rates.InvalidJSON, "outside-enum": rates.OutsideEnum,
	} {
		if p < 0 || p > 1 {
			return fmt.Errorf("fakeopenai: -fault-rate-%s %v is not a probability", name, p)
		}
		sum += p
	}
	if sum > 1 {
		return fmt.Errorf("fakeopenai: the fault rates add up to %v, more than 1", sum)
	}
	if *rpm < 0 || *tpm < 0 || *window <= 0 {
		return errors.New("fakeopenai: -rpm and -tpm must be at least 0 and -window positive")
	}
	if other.Share < 0 || other.Share > 1 {
		return fmt.Errorf("fakeopenai: -other-share %v is not a share", other.Share)
	}

	limits := map[string]fakeopenai.Limits{}
	modelLimits := map[string]map[string]fakeopenai.Limits{}
	var keyChanges []fakeopenai.LimitChange
	for _, k := range keys {
		limits[k] = fakeopenai.Limits{RPM: *rpm, TPM: *tpm}
		for _, m := range models.items {
			if modelLimits[k] == nil {
				modelLimits[k] = map[string]fakeopenai.Limits{}
			}
			modelLimits[k][m.model] = m.limits
		}
		for _, c := range changes.items {
			c.Key = k
			keyChanges = append(keyChanges, c)
		}
	}
	other.Key = keys[0]
	srv := fakeopenai.New(fakeopenai.Config{
		Keys:               limits,
		ModelLimits:        modelLimits,
		RemainingPerMinute: *perMinute,
		Changes:            keyChanges,
		Other:              other,
		LatencySteps:       steps.items,
		Window:             *window,
		DefaultMaxTokens:   *maxTokens,
		Latency:            *latency,
		Jitter:             *jitter,
		Seed:               *seed,
		Faults:             rates,
		Organization:       *org,
	})
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("fakeopenai: %w", err)
	}
	base := "http://" + lis.Addr().String()
	keyVar := "OPENAI_API_KEY=" + keys[0]
	if len(keys) > 1 {
		keyVar = "OPENAI_API_KEYS=" + strings.Join(keys, ",")
	}
	limitText := func(n int, unit string) string {
		if n == 0 {
			return "unlimited " + unit
		}
		return fmt.Sprintf("%d %s", n, unit)
	}
	limitVars := ""
	if *rpm > 0 && *tpm > 0 {
		limitVars = fmt.Sprintf("\n  export OPENAI_RPM=%d OPENAI_TPM=%d", *rpm, *tpm)
	}
	fmt.Fprintf(stdout, `mailroom fakeopenai is listening on %s — Ctrl-C stops it.

  export OPENAI_BASE_URL=%s/v1
  export %s%s

Each key: %s and %s, enforced over %v windows.
Statistics: GET %s/fake/stats (POST %s/fake/reset starts them over).
`, base, base, keyVar, limitVars, limitText(*rpm, "RPM"), limitText(*tpm, "TPM"), *window, base, base)
	for _, m := range models.items {
		fmt.Fprintf(stdout, "Model %s: %s and %s of its own on each key.\n", m.model, limitText(m.limits.RPM, "RPM"), limitText(m.limits.TPM, "TPM"))
	}
	for _, c := range changes.items {
		fmt.Fprintf(stdout, "At %v: %s and %s%s.\n", c.At, limitText(c.Limits.RPM, "RPM"), limitText(c.Limits.TPM, "TPM"), map[bool]string{true: " for " + c.Model, false: ""}[c.Model != ""])
	}
	if other.Share > 0 {
		fmt.Fprintf(stdout, "Another client takes %.0f%% of %s's limits.\n", 100*other.Share, keys[0])
	}

	err = srv.Serve(ctx, lis)
	printSummary(stdout, srv.Stats())
	return err
}

func printSummary(w io.Writer, st fakeopenai.Stats) {
	keys := make([]string, 0, len(st.Keys))
	for k := range st.Keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "mailroom fakeopenai stopped after %v; at most %d requests in flight.\n", st.Now.Sub(st.Start).Round(time.Second), st.MaxInFlight)
	for _, k := range keys {
		ks := st.Keys[k]
		var faults []string
		for kind, n := range ks.Faults {
			faults = append(faults, fmt.Sprintf("%s %d", kind, n))
		}
		sort.Strings(faults)
		fmt.Fprintf(w, "  %s: %d requests, %d admitted (%d tokens), %d rate limited, faults: [%s]\n",
			k, ks.Requests, ks.Admitted, ks.AdmittedTokens, ks.RateLimited, strings.Join(faults, ", "))
		models := make([]string, 0, len(ks.Models))
		for m := range ks.Models {
			models = append(models, m)
		}
		sort.Strings(models)
		for _, m := range models {
			ms := ks.Models[m]
			fmt.Fprintf(w, "    %s: %d requests, %d admitted (%d tokens), %d rate limited\n", m, ms.Requests, ms.Admitted, ms.AdmittedTokens, ms.RateLimited)
		}
	}
	if o := st.Other; o.Requests > 0 {
		fmt.Fprintf(w, "  the other client: %d requests, %d admitted (%d tokens), %d refused\n", o.Requests, o.Admitted, o.AdmittedTokens, o.Refused)
	}
}
