package fakeopenai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// chatRequest is the part of a Chat Completions request the fake reads.
// Other fields (temperature, seed, user, metadata …) are accepted and ignored.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxTokens           *int            `json:"max_tokens"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	Temperature         *float64        `json:"temperature"`
	ResponseFormat      *responseFormat `json:"response_format"`

	schema map[string]any // ResponseFormat.JSONSchema.Schema, decoded
}

type chatMessage struct {
	Role    string          `json:"role"`
	Name    string          `json:"name"`
	Content json.RawMessage `json:"content"`

	parts []string // the text of Content: one string, or each text part
}

type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Strict *bool           `json:"strict"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

// parseRequest decodes a body; on failure it returns OpenAI's param and
// message for the 400.
func parseRequest(body io.Reader) (*chatRequest, string, string) {
	b, err := readAll(body)
	if err != nil {
		return nil, "", err.Error()
	}
	var req chatRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"
	}
	for i := range req.Messages {
		m := &req.Messages[i]
		param := fmt.Sprintf("messages.[%d].content", i)
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || bytes.Equal(c, []byte("null")):
		case c[0] == '"':
			var s string
			if err := json.Unmarshal(c, &s); err != nil {
				return nil, param, "Invalid type for '" + param + "': expected one of a string or array of objects."
			}
			m.parts = []string{s}
		case c[0] == '[':
			var parts []struct {
				Type    string `json:"type"`
				Text    string `json:"text"`
				Refusal string `json:"refusal"`
			}
			if err := json.Unmarshal(c, &parts); err != nil {
				return nil, param, "Invalid type for '" + param + "': expected one of a string or array of objects."
			}
			for _, p := range parts {
				switch p.Type {
				case "text":
					m.parts = append(m.parts, p.Text)
				case "refusal":
					m.parts = append(m.parts, p.Refusal)
				}
			}
		default:
			return nil, param, "Invalid type for '" + param + "': expected one of a string or array of objects."
		}
	}
	return &req, "", ""
}

// validate checks what OpenAI checks before admission.
func (r *chatRequest) validate() (param, msg string) {
	if r.Model == "" {
		return "model", "you must provide a model parameter"
	}
	if len(r.Messages) == 0 {
		return "messages", "[] is too short - 'messages'"
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return fmt.Sprintf("messages.[%d].role", i), fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", m.Role)
		}
	}
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_completion_tokens", r.MaxCompletionTokens}, {"max_tokens", r.MaxTokens}} {
		if p.v != nil && *p.v < 1 {
			return p.name, fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", p.name, *p.v)
		}
	}
	if r.N != nil && (*r.N < 1 || *r.N > 128) {
		return "n", fmt.Sprintf("Invalid 'n': expected a value between 1 and 128, but got %d instead.", *r.N)
	}
	if r.Temperature != nil && *r.Temperature < 0 {
		return "temperature", fmt.Sprintf("Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got %g instead.", *r.Temperature)
	}
	if r.Temperature != nil && *r.Temperature > 2 {
		return "temperature", fmt.Sprintf("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got %g instead.", *r.Temperature)
	}
	if r.Stream {
		return "stream", "The fake OpenAI server does not stream: send stream=false."
	}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text":
		case "json_object":
			found := false
			for _, m := range r.Messages {
				for _, p := range m.parts {
					found = found || strings.Contains(strings.ToLower(p), "json")
				}
			}
			if !found {
				return "messages", "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
			}
		case "json_schema":
			js := rf.JSONSchema
			if js == nil {
				return "response_format.json_schema", "Missing required parameter: 'response_format.json_schema'."
			}
			if js.Name == "" {
				return "response_format.json_schema.name", "Missing required parameter: 'response_format.json_schema.name'."
			}
			if len(js.Schema) == 0 || json.Unmarshal(js.Schema, &r.schema) != nil || r.schema == nil {
				return "response_format", "Invalid schema for response_format '" + js.Name + "': schema must be a JSON object."
			}
			if js.Strict != nil && *js.Strict {
				if msg := checkStrict(r.schema); msg != "" {
					return "response_format", "Invalid schema for response_format '" + js.Name + "': " + msg
				}
			}
		default:
			return "response_format.type", fmt.Sprintf("Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", rf.Type)
		}
	}
	return "", ""
}

func (r *chatRequest) maxTokens(def int) int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return def
}

func (r *chatRequest) choices() int {
	if r.N == nil {
		return 1
	}
	return *r.N
}

// lastUserText is the text of the last user message.
func (r *chatRequest) lastUserText() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return strings.Join(r.Messages[i].parts, "\n")
		}
	}
	return ""
}

// Markers stand for the framing tokens of the rendered prompt; token ids are
// below 2^32, so they never collide.
const (
	markStart   = 1 << 40
	markMessage = 1<<40 + 1
	markEnd     = 1<<40 + 2
	markName    = 1<<40 + 3
)

// render returns the prompt as a sequence of one value per prompt token
// (without the final reply priming), the way CountPromptTokens counts it:
// per message 3 framing tokens, the role, the content parts, and the name
// plus one. Its length is the prompt tokens minus TokensReplyPriming, and its
// prefixes are what prompt caching matches.
func (r *chatRequest) render() []uint64 {
	var seq []uint64
	enc := func(s string) {
		if s == "" {
			return
		}
		for _, id := range encodeMemo(s) {
			seq = append(seq, uint64(id))
		}
	}
	for _, m := range r.Messages {
		seq = append(seq, markStart)
		enc(m.Role)
		if m.Name != "" {
			enc(m.Name)
			seq = append(seq, markName)
		}
		seq = append(seq, markMessage)
		for _, p := range m.parts {
			enc(p)
		}
		seq = append(seq, markEnd)
	}
	return seq
}

// The static part of a prompt (instructions, taxonomy) comes back with every
// request; remembering its tokens halves the fake's CPU per request.
var memo struct {
	sync.Mutex
	ids map[string][]uint
}

const (
	memoMinLen  = 256 // shorter texts are cheap to encode again
	memoEntries = 64
)

func encodeMemo(s string) []uint {
	if len(s) < memoMinLen {
		ids, _, _ := o200k().Encode(s)
		return ids
	}
	memo.Lock()
	ids, ok := memo.ids[s]
	memo.Unlock()
	if ok {
		return ids
	}
	ids, _, _ = o200k().Encode(s)
	memo.Lock()
	defer memo.Unlock()
	if memo.ids == nil || len(memo.ids) >= memoEntries {
		memo.ids = map[string][]uint{}
	}
	memo.ids[s] = ids
	return ids
}

// modelName is the model asked for, or "" when the body did not parse.
func (r *chatRequest) modelName() string {
	if r == nil {
		return ""
	}
	return r.Model
}
