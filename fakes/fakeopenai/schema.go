package fakeopenai

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// keywordRules choose an enum value from the text of the last user message:
// the first rule with a keyword in the text whose value is in the enum wins.
// Unmatched text falls back to a hash of the text over the enum, so the
// answer is deterministic for a given mail.
var keywordRules = []struct {
	value    string
	keywords []string
}{
	{"newsletters", []string{"unsubscribe", "newsletter", "digest", "weekly roundup"}},
	{"finance", []string{"invoice", "receipt", "payment", "bank statement", "billing", "refund", "paid"}},
	{"security", []string{"password", "sign-in", "sign in", "signin", "log in", "login", "security", "verification code", "two-factor", "2fa"}},
	{"work", []string{"meeting", "calendar", "agenda", "invitation", "standup", "deadline", "project"}},
	{"travel", []string{"flight", "boarding pass", "itinerary", "hotel", "reservation", "check-in"}},
	{"shopping", []string{"your order", "order #", "shipped", "delivery", "tracking number", "cart"}},
	{"promotions", []string{"% off", "discount", "coupon", "sale ends", "limited time", "special offer"}},
	{"social", []string{"friend request", "followed you", "mentioned you", "commented on", "liked your"}},
	{"notifications", []string{"notification", "alert", "reminder", "automated message"}},
	{"personal", []string{"birthday", "family", "dinner", "weekend"}},
	{"important", []string{"urgent", "asap", "immediately", "action required"}},
	// Priority-like enums.
	{"high", []string{"urgent", "asap", "immediately", "action required", "password", "security"}},
	{"low", []string{"unsubscribe", "newsletter", "% off", "notification"}},
}

// generator builds a value valid against a JSON schema (the subset that
// Structured Outputs accepts) deterministically from the user's text.
type generator struct {
	root     map[string]any
	text     string // the last user message, lowercased
	now      time.Time
	outside  bool // put a value outside the enum into the first enum
	replaced bool
}

func hash64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// unit is a deterministic number in [0, 1) from the text and a field path.
func (g *generator) unit(path string) float64 {
	return float64(hash64(g.text, path)>>11) / float64(1<<53)
}

func (g *generator) value(s map[string]any, path string, depth int) any {
	if depth > 64 || s == nil {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		return g.value(resolveRef(g.root, ref), path, depth+1)
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return g.enum(e, path)
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if branches, ok := s[key].([]any); ok && len(branches) > 0 {
			// The first branch that is not null: nullable fields get a value.
			for _, b := range branches {
				if bm, ok := b.(map[string]any); ok && !isNullSchema(bm) {
					return g.value(bm, path, depth+1)
				}
			}
			return nil
		}
	}
	switch schemaType(s) {
	case "object":
		props, _ := s["properties"].(map[string]any)
		out := make(map[string]any, len(props))
		// Sorted, so that which field takes the outside-enum fault is stable.
		for _, name := range sortedKeys(props) {
			pm, _ := props[name].(map[string]any)
			out[name] = g.value(pm, path+"/"+name, depth+1)
		}
		return out
	case "array":
		n := 1
		if v, ok := num(s["minItems"]); ok && int(v) > n {
			n = int(v)
		}
		if v, ok := num(s["maxItems"]); ok && int(v) < n {
			n = int(v)
		}
		items, _ := s["items"].(map[string]any)
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(items, fmt.Sprintf("%s/%d", path, i), depth+1)
		}
		return out
	case "string":
		return g.str(s, path)
	case "number":
		return g.number(s, path)
	case "integer":
		return g.integer(s, path)
	case "boolean":
		return g.boolean(path)
	}
	return nil
}

func (g *generator) enum(values []any, path string) any {
	var candidates []any
	for _, v := range values {
		if v != nil {
			candidates = append(candidates, v)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	if g.outside && !g.replaced {
		g.replaced = true
		return outsideValue(candidates)
	}
	for _, r := range keywordRules {
		if !slices.Contains(candidates, any(r.value)) {
			continue
		}
		for _, k := range r.keywords {
			if strings.Contains(g.text, k) {
				return r.value
			}
		}
	}
	return candidates[hash64(g.text, path)%uint64(len(candidates))]
}

// outsideValue is a string that none of the enum's values equals.
func outsideValue(values []any) string {
	v := "uncategorized"
	for slices.Contains(values, any(v)) {
		v += "-x"
	}
	return v
}

func (g *generator) str(s map[string]any, path string) string {
	name := strings.ToLower(path[strings.LastIndex(path, "/")+1:])
	var v string
	switch format, _ := s["format"].(string); format {
	case "date-time":
		v = g.now.UTC().Format(time.RFC3339)
	case "date":
		v = g.now.UTC().Format(time.DateOnly)
	case "time":
		v = g.now.UTC().Format(time.TimeOnly)
	case "email":
		v = "someone@example.com"
	case "uri":
		v = "https://example.com/"
	case "uuid":
		v = "00000000-0000-4000-8000-000000000000"
	default:
		switch {
		case strings.Contains(name, "reason"), strings.Contains(name, "explanation"),
			strings.Contains(name, "rationale"), strings.Contains(name, "summary"):
			v = "Chosen by the fake OpenAI server from keywords in the mail."
		default:
			v = "fake " + name
		}
	}
	if m, ok := num(s["maxLength"]); ok && len([]rune(v)) > int(m) {
		v = string([]rune(v)[:int(m)])
	}
	if m, ok := num(s["minLength"]); ok {
		for len([]rune(v)) < int(m) {
			v += "x"
		}
	}
	return v
}

// number answers in [0.55, 0.99] (a plausible confidence) unless the schema
// bounds it otherwise.
func (g *generator) number(s map[string]any, path string) float64 {
	u := g.unit(path)
	lo, hasLo := bound(s, "minimum", "exclusiveMinimum")
	hi, hasHi := bound(s, "maximum", "exclusiveMaximum")
	var v float64
	switch {
	case hasLo && hasHi:
		v = lo + (hi-lo)*(0.05+0.9*u)
	case hasLo:
		v = lo + 0.05 + u
	case hasHi:
		v = hi - 0.05 - u
	default:
		v = 0.55 + 0.44*u
	}
	r := math.Round(v*100) / 100
	if (hasLo && r <= lo) || (hasHi && r >= hi) {
		return v // a range narrower than the rounding keeps every digit
	}
	return r
}

func (g *generator) integer(s map[string]any, path string) int64 {
	h := hash64(g.text, path)
	lo, hasLo := bound(s, "minimum", "")
	hi, hasHi := bound(s, "maximum", "")
	if v, ok := num(s["exclusiveMinimum"]); ok {
		lo, hasLo = math.Floor(v)+1, true
	}
	if v, ok := num(s["exclusiveMaximum"]); ok {
		hi, hasHi = math.Ceil(v)-1, true
	}
	switch {
	case hasLo && hasHi && hi >= lo:
		return int64(lo) + int64(h%uint64(hi-lo+1))
	case hasLo:
		return int64(lo) + int64(h%5)
	case hasHi:
		return int64(hi) - int64(h%5)
	}
	return 1 + int64(h%5)
}

func (g *generator) boolean(path string) bool {
	if strings.Contains(strings.ToLower(path), "reply") {
		for _, k := range []string{"?", "please reply", "let me know", "rsvp", "can you", "could you"} {
			if strings.Contains(g.text, k) {
				return true
			}
		}
		return false
	}
	return hash64(g.text, path)%2 == 0
}

func bound(s map[string]any, inclusive, exclusive string) (float64, bool) {
	if v, ok := num(s[inclusive]); ok {
		return v, true
	}
	if exclusive != "" {
		return num(s[exclusive])
	}
	return 0, false
}

func num(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// schemaType is the first non-null type of s, inferred from its keywords
// when "type" is absent.
func schemaType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if xs, ok := x.(string); ok && xs != "null" {
				return xs
			}
		}
		return "null"
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	if _, ok := s["items"]; ok {
		return "array"
	}
	return "string"
}

func isNullSchema(s map[string]any) bool {
	t, ok := s["type"].(string)
	return ok && t == "null"
}

// resolveRef resolves a local reference such as "#/$defs/Category" or "#".
func resolveRef(root map[string]any, ref string) map[string]any {
	if ref == "#" {
		return root
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = root
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

// checkStrict reports the first way s breaks the rules OpenAI enforces on a
// strict Structured Outputs schema, worded as OpenAI words it, or "" when it
// keeps them: the root is an object; every object sets
// additionalProperties to false and lists every property as required; every
// $ref resolves.
func checkStrict(root map[string]any) string {
	if schemaType(root) != "object" || root["anyOf"] != nil {
		return "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"" + schemaType(root) + "\"'."
	}
	return strictWalk(root, root, nil, 0)
}

func strictWalk(root, s map[string]any, context []string, depth int) string {
	if depth > 64 {
		return ""
	}
	where := "In context=(" + quoteJoin(context) + "), "
	if ref, ok := s["$ref"].(string); ok {
		if resolveRef(root, ref) == nil {
			return where + "reference '" + ref + "' can't be resolved."
		}
		return ""
	}
	if props, ok := s["properties"].(map[string]any); ok || schemaType(s) == "object" {
		if ap, ok := s["additionalProperties"].(bool); !ok || ap {
			return where + "'additionalProperties' is required to be supplied and to be false."
		}
		required := map[string]bool{}
		if rs, ok := s["required"].([]any); ok {
			for _, r := range rs {
				if rstr, ok := r.(string); ok {
					required[rstr] = true
				}
			}
		}
		for _, name := range sortedKeys(props) {
			if !required[name] {
				return where + "'required' is required to be supplied and to be an array including every key in properties. Missing '" + name + "'."
			}
		}
		for _, name := range sortedKeys(props) {
			pm, _ := props[name].(map[string]any)
			if msg := strictWalk(root, pm, append(slices.Clone(context), "properties", name), depth+1); msg != "" {
				return msg
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		if msg := strictWalk(root, items, append(slices.Clone(context), "items"), depth+1); msg != "" {
			return msg
		}
	}
	for _, key := range []string{"anyOf", "$defs", "definitions"} {
		switch sub := s[key].(type) {
		case []any:
			for i, b := range sub {
				bm, _ := b.(map[string]any)
				if msg := strictWalk(root, bm, append(slices.Clone(context), key, fmt.Sprint(i)), depth+1); msg != "" {
					return msg
				}
			}
		case map[string]any:
			for _, name := range sortedKeys(sub) {
				bm, _ := sub[name].(map[string]any)
				if msg := strictWalk(root, bm, append(slices.Clone(context), key, name), depth+1); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}

func quoteJoin(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = "'" + p + "'"
	}
	return strings.Join(q, ", ")
}
