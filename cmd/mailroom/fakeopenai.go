package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sort"
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

	limits := map[string]fakeopenai.Limits{}
	for _, k := range keys {
		limits[k] = fakeopenai.Limits{RPM: *rpm, TPM: *tpm}
	}
	srv := fakeopenai.New(fakeopenai.Config{
		Keys:             limits,
		Window:           *window,
		DefaultMaxTokens: *maxTokens,
		Latency:          *latency,
		Jitter:           *jitter,
		Seed:             *seed,
		Faults:           rates,
		Organization:     *org,
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
	}
}
