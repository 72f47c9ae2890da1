// Package pricing is the classifier's price table: what a model's tokens
// cost, per million, in US dollars, with the Batch API's discount. Built-in
// defaults cover the models mailroom knows; the operator extends or
// overrides them with OPENAI_PRICES (inline) or OPENAI_PRICES_FILE (JSON).
//
// A model that the table does not price must never cost $0 silently: Lookup
// says whether a price is known, and the service refuses to start with a
// budget and an unpriced model (see Missing).
package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Price is a model's price in US dollars per million tokens.
type Price struct {
	Input       float64 `json:"input"`
	CachedInput float64 `json:"cached_input"`
	Output      float64 `json:"output"`
	// BatchDiscount is the fraction taken off through the Batch API: 0.5
	// (OpenAI's) halves every token's price. 0 means the default, 0.5.
	BatchDiscount float64 `json:"batch_discount,omitempty"`
}

// DefaultBatchDiscount is OpenAI's Batch API discount: half price.
const DefaultBatchDiscount = 0.5

// Batch returns the price through the Batch API.
func (p Price) Batch() Price {
	d := p.BatchDiscount
	if d == 0 {
		d = DefaultBatchDiscount
	}
	f := 1 - d
	return Price{Input: p.Input * f, CachedInput: p.CachedInput * f, Output: p.Output * f, BatchDiscount: p.BatchDiscount}
}

// CostMicros is the price of a call in millionths of a US dollar (tokens ×
// $ per million tokens = micro-dollars); cached is the part of prompt
// served from the prompt cache.
func (p Price) CostMicros(prompt, cached, completion int64) int64 {
	usd := float64(prompt-cached)*p.Input + float64(cached)*p.CachedInput + float64(completion)*p.Output
	return int64(usd + 0.5)
}

// Table maps a model name to its price.
type Table map[string]Price

// Defaults returns the list prices of the models mailroom knows (USD per
// million tokens, standard tier, as OpenAI publishes them).
func Defaults() Table {
	return Table{
		"gpt-4o-mini":  {Input: 0.15, CachedInput: 0.075, Output: 0.60},
		"gpt-4o":       {Input: 2.50, CachedInput: 1.25, Output: 10.00},
		"gpt-4.1":      {Input: 2.00, CachedInput: 0.50, Output: 8.00},
		"gpt-4.1-mini": {Input: 0.40, CachedInput: 0.10, Output: 1.60},
		"gpt-4.1-nano": {Input: 0.10, CachedInput: 0.025, Output: 0.40},
		"gpt-5":        {Input: 1.25, CachedInput: 0.125, Output: 10.00},
		"gpt-5-mini":   {Input: 0.25, CachedInput: 0.025, Output: 2.00},
		"gpt-5-nano":   {Input: 0.05, CachedInput: 0.005, Output: 0.40},
	}
}

// snapshot matches a dated snapshot's suffix ("gpt-4o-mini-2024-07-18").
var snapshot = regexp.MustCompile(`-\d{4}-\d{2}-\d{2}$`)

// Lookup returns the price of model: its own entry, else (for a dated
// snapshot such as gpt-4o-2024-08-06) its family's; ok is false when the
// table prices neither.
func (t Table) Lookup(model string) (Price, bool) {
	if p, ok := t[model]; ok {
		return p, true
	}
	if base := snapshot.ReplaceAllString(model, ""); base != model {
		p, ok := t[base]
		return p, ok
	}
	return Price{}, false
}

// Missing returns the models of models that t does not price, in order.
func (t Table) Missing(models ...string) []string {
	var out []string
	for _, m := range models {
		if m == "" {
			continue
		}
		if _, ok := t.Lookup(m); !ok {
			out = append(out, m)
		}
	}
	return out
}

// Models returns the priced models, sorted.
func (t Table) Models() []string {
	out := make([]string, 0, len(t))
	for m := range t {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// With returns a copy of t with the entries of over added or replacing
// t's.
func (t Table) With(over Table) Table {
	out := make(Table, len(t)+len(over))
	for m, p := range t {
		out[m] = p
	}
	for m, p := range over {
		out[m] = p
	}
	return out
}

// Load returns the defaults, overridden by the JSON file's entries (when
// file is set: what read returns for it), then by the inline list's.
func Load(inline, file string, read func(string) ([]byte, error)) (Table, error) {
	t := Defaults()
	if file != "" {
		raw, err := read(file)
		if err != nil {
			return nil, fmt.Errorf("OPENAI_PRICES_FILE: %w", err)
		}
		f, err := ParseJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("OPENAI_PRICES_FILE %s: %w", file, err)
		}
		t = t.With(f)
	}
	if strings.TrimSpace(inline) != "" {
		p, err := Parse(inline)
		if err != nil {
			return nil, fmt.Errorf("OPENAI_PRICES: %w", err)
		}
		t = t.With(p)
	}
	return t, nil
}

// Parse reads the inline form of OPENAI_PRICES: entries separated by ";",
// each MODEL=INPUT,CACHED_INPUT,OUTPUT[,BATCH_DISCOUNT] in US dollars per
// million tokens (the discount a fraction, 0.5 for half price), for example
// "my-model=1.10,0.55,4.40;gpt-4o-mini=0.15,0.075,0.60,0.5". A value that
// starts with "{" is read as the JSON of ParseJSON.
func Parse(s string) (Table, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		return ParseJSON([]byte(s))
	}
	t := Table{}
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		model, nums, ok := strings.Cut(entry, "=")
		model = strings.TrimSpace(model)
		if !ok || model == "" {
			return nil, fmt.Errorf("entry %d (%q): want MODEL=INPUT,CACHED_INPUT,OUTPUT[,BATCH_DISCOUNT]", i+1, entry)
		}
		fields := strings.Split(nums, ",")
		if len(fields) != 3 && len(fields) != 4 {
			return nil, fmt.Errorf("entry %d (%s): want 3 or 4 numbers (input, cached input, output per million tokens[, batch discount]), got %d", i+1, model, len(fields))
		}
		var v [4]float64
		names := [4]string{"input", "cached input", "output", "batch discount"}
		for j, f := range fields {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return nil, fmt.Errorf("entry %d (%s): %s price %q is not a number", i+1, model, names[j], strings.TrimSpace(f))
			}
			v[j] = x
		}
		if _, dup := t[model]; dup {
			return nil, fmt.Errorf("entry %d: model %s is priced twice", i+1, model)
		}
		p := Price{Input: v[0], CachedInput: v[1], Output: v[2], BatchDiscount: v[3]}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("entry %d (%s): %w", i+1, model, err)
		}
		t[model] = p
	}
	if len(t) == 0 {
		return nil, errors.New("no entries")
	}
	return t, nil
}

// ParseJSON reads a price table as JSON: an object from model name to
// {"input": …, "cached_input": …, "output": …, "batch_discount": …}.
func ParseJSON(raw []byte) (Table, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object of model → price: %w", err)
	}
	t := Table{}
	for model, r := range m {
		dec := json.NewDecoder(strings.NewReader(string(r)))
		dec.DisallowUnknownFields()
		var p struct {
			Input         *float64 `json:"input"`
			CachedInput   *float64 `json:"cached_input"`
			Output        *float64 `json:"output"`
			BatchDiscount float64  `json:"batch_discount"`
		}
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("model %s: %w", model, err)
		}
		if p.Input == nil || p.Output == nil {
			return nil, fmt.Errorf("model %s: input and output prices are required", model)
		}
		price := Price{Input: *p.Input, Output: *p.Output, BatchDiscount: p.BatchDiscount}
		if p.CachedInput != nil {
			price.CachedInput = *p.CachedInput
		} else {
			price.CachedInput = price.Input
		}
		if err := price.validate(); err != nil {
			return nil, fmt.Errorf("model %s: %w", model, err)
		}
		t[strings.TrimSpace(model)] = price
	}
	return t, nil
}

func (p Price) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"input", p.Input}, {"cached input", p.CachedInput}, {"output", p.Output}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%s price %v must be a finite number ≥ 0", f.name, f.v)
		}
	}
	if p.Input == 0 && p.Output == 0 {
		return errors.New("input and output prices are both 0: a free model would turn the budget off")
	}
	if p.CachedInput > p.Input {
		return fmt.Errorf("cached input price %v exceeds the input price %v", p.CachedInput, p.Input)
	}
	if math.IsNaN(p.BatchDiscount) || p.BatchDiscount < 0 || p.BatchDiscount >= 1 {
		return fmt.Errorf("batch discount %v must be a fraction in [0, 1)", p.BatchDiscount)
	}
	return nil
}
