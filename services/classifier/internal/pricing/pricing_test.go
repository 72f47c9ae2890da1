package pricing_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mailroom.dev/services/classifier/internal/pricing"
)

func TestParseInline(t *testing.T) {
	got, err := pricing.Parse("my-model=1.10,0.55,4.40; gpt-4o-mini=0.15,0.075,0.60,0.4")
	if err != nil {
		t.Fatal(err)
	}
	want := pricing.Table{
		"my-model":    {Input: 1.10, CachedInput: 0.55, Output: 4.40},
		"gpt-4o-mini": {Input: 0.15, CachedInput: 0.075, Output: 0.60, BatchDiscount: 0.4},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseErrorsSayWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"my-model", `entry 1 ("my-model"): want MODEL=INPUT,CACHED_INPUT,OUTPUT[,BATCH_DISCOUNT]`},
		{"a=1,1,1;b=1,2", "entry 2 (b): want 3 or 4 numbers (input, cached input, output per million tokens[, batch discount]), got 2"},
		{"a=1,x,2", `entry 1 (a): cached input price "x" is not a number`},
		{"a=1,0.5,2;a=1,0.5,2", "entry 2: model a is priced twice"},
		{"a=0,0,0", "entry 1 (a): input and output prices are both 0: a free model would turn the budget off"},
		{"a=1,2,3", "entry 1 (a): cached input price 2 exceeds the input price 1"},
		{"a=1,0.5,3,1", "entry 1 (a): batch discount 1 must be a fraction in [0, 1)"},
		{"a=-1,0,3", "entry 1 (a): input price -1 must be a finite number ≥ 0"},
		{" ; ", "no entries"},
		{`{"a": {"input": 1}}`, "model a: input and output prices are required"},
		{`{"a": {"input": 1, "output": 2, "outptu": 3}}`, `model a: json: unknown field "outptu"`},
	} {
		_, err := pricing.Parse(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestLoadLayersFileThenInline(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(file, []byte(`{"local-llm": {"input": 0.2, "output": 0.8}, "gpt-4o": {"input": 2, "cached_input": 1, "output": 8}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := pricing.Load("gpt-4o=3,1.5,12", file, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := got.Lookup("local-llm"); p != (pricing.Price{Input: 0.2, CachedInput: 0.2, Output: 0.8}) {
		t.Errorf("local-llm from the file = %+v", p)
	}
	if p, _ := got.Lookup("gpt-4o"); p != (pricing.Price{Input: 3, CachedInput: 1.5, Output: 12}) {
		t.Errorf("gpt-4o = %+v, want the inline price (it wins over the file)", p)
	}
	if p, _ := got.Lookup("gpt-4o-mini"); p != pricing.Defaults()["gpt-4o-mini"] {
		t.Errorf("gpt-4o-mini = %+v, want the default", p)
	}

	_, err = pricing.Load("", filepath.Join(t.TempDir(), "missing.json"), os.ReadFile)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "OPENAI_PRICES_FILE: ") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := pricing.Load("x=1", "", os.ReadFile); err == nil || !strings.HasPrefix(err.Error(), "OPENAI_PRICES: entry 1 (x)") {
		t.Errorf("bad inline: %v", err)
	}
}

func TestLookupSnapshotsAndMissing(t *testing.T) {
	tab := pricing.Defaults()
	if p, ok := tab.Lookup("gpt-4o-mini-2024-07-18"); !ok || p != tab["gpt-4o-mini"] {
		t.Errorf("a dated snapshot takes its family's price: %+v %v", p, ok)
	}
	if got := tab.Missing("gpt-4o-mini", "", "o9-preview", "gpt-4o"); !cmp.Equal(got, []string{"o9-preview"}) {
		t.Errorf("Missing = %v", got)
	}
}

func TestCostAndBatch(t *testing.T) {
	p := pricing.Price{Input: 0.15, CachedInput: 0.075, Output: 0.60}
	// 1000 prompt tokens of which 400 cached, 40 completion:
	// 600×0.15 + 400×0.075 + 40×0.6 = 90 + 30 + 24 = 144 µ$.
	if got := p.CostMicros(1000, 400, 40); got != 144 {
		t.Errorf("CostMicros = %d, want 144", got)
	}
	if got := p.Batch().CostMicros(1000, 400, 40); got != 72 {
		t.Errorf("batch CostMicros = %d, want 72 (half)", got)
	}
	q := pricing.Price{Input: 1, CachedInput: 1, Output: 1, BatchDiscount: 0.25}
	if got := q.Batch().CostMicros(1000, 0, 0); got != 750 {
		t.Errorf("batch at a 25%% discount = %d, want 750", got)
	}
}
