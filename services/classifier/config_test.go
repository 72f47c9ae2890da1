package classifier_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"mailroom.dev/platform/config"
	"mailroom.dev/services/classifier"
)

func TestUnpricedModelWithABudgetRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*classifier.Config)
		want string // "" means it starts (as far as prices go)
	}{
		{"unknown model and a daily budget", func(c *classifier.Config) {
			c.OpenAIModel, c.DailyBudgetUSD = "my-finetune", 5
		}, "no price is known for my-finetune (OPENAI_MODEL)"},
		{"unknown escalation model and a credit", func(c *classifier.Config) {
			c.OpenAIEscalateModel, c.CreditUSD = "o9-preview", 18.04
		}, "no price is known for o9-preview (OPENAI_ESCALATE_MODEL)"},
		{"unknown model priced by OPENAI_PRICES", func(c *classifier.Config) {
			c.OpenAIModel, c.DailyBudgetUSD, c.OpenAIPrices = "my-finetune", 5, "my-finetune=0.3,0.15,1.2"
		}, ""},
		{"unknown model without a budget", func(c *classifier.Config) { c.OpenAIModel = "my-finetune" }, ""},
		{"a price that does not parse", func(c *classifier.Config) { c.OpenAIPrices = "gpt-4o=1,2" }, "OPENAI_PRICES: entry 1 (gpt-4o): want 3 or 4 numbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg classifier.Config
			cfg.DatabaseURL = "sqlite://" + t.TempDir() + "/never-opened.db"
			cfg.NATS.URL = "nats://127.0.0.1:1"
			if err := config.Defaults(&cfg); err != nil {
				t.Fatal(err)
			}
			cfg.OpenAIAPIKey = "sk-test"
			tc.tune(&cfg)
			_, err := cfg.CheckPrices()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckPrices: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckPrices = %v, want it to say %q", err, tc.want)
			}
			// New refuses before it touches anything.
			_, err = classifier.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want it to refuse saying %q", err, tc.want)
			}
		})
	}
}
