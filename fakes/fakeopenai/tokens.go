package fakeopenai

import (
	"sync"

	"github.com/tiktoken-go/tokenizer"
)

// Token accounting constants of OpenAI's chat format for the gpt-4o and
// later families (the OpenAI cookbook's num_tokens_from_messages).
const (
	// TokensPerMessage is what each message adds on top of its fields: the
	// <|start|>{role}\n … <|end|>\n framing.
	TokensPerMessage = 3
	// TokensPerName is what a message's name field adds on top of its tokens.
	TokensPerName = 1
	// TokensReplyPriming is what every prompt adds once for the assistant's
	// reply: <|start|>assistant<|message|>.
	TokensReplyPriming = 3
)

// Message is a chat message as the token counter sees it. Content is the
// message's text; a content sent as an array of parts counts as the sum of
// its text parts counted one by one (image and audio parts count nothing),
// which is what the fake server does.
type Message struct {
	Role    string
	Name    string
	Content string
}

var (
	codecOnce sync.Once
	codec     tokenizer.Codec
)

// o200k returns the o200k_base codec, built once (its vocabulary is
// embedded in the tokenizer module, so this works offline). The codec is
// safe for concurrent use: it keeps no state between calls.
func o200k() tokenizer.Codec {
	codecOnce.Do(func() {
		c, err := tokenizer.Get(tokenizer.O200kBase)
		if err != nil {
			panic("fakeopenai: o200k_base tokenizer: " + err.Error())
		}
		codec = c
	})
	return codec
}

// CountTokens returns the number of o200k_base tokens of text, the
// tokenizer of gpt-4o, gpt-4o-mini, gpt-4.1, o-series and gpt-5 models.
// Special-token strings such as "<|endoftext|>" are counted as plain text.
func CountTokens(text string) int {
	if text == "" {
		return 0
	}
	n, err := o200k().Count(text)
	if err != nil {
		// Count fails only on an internal regexp error; text of that kind
		// still costs about a token per 4 bytes.
		return (len(text) + 3) / 4
	}
	return n
}

// CountPromptTokens returns the prompt tokens OpenAI bills and rate-limits
// for a chat completion with these messages, counted as the OpenAI cookbook's
// num_tokens_from_messages does for gpt-4o-mini:
//
//	3 + Σ over messages (3 + tokens(role) + tokens(content) + [tokens(name) + 1 if name is set])
//
// where tokens() is o200k_base. The request's response_format (the JSON
// schema of Structured Outputs), tools and other parameters are not counted:
// the real API adds some tokens for a schema, the fake does not, and a
// client that budgets with this function is exact against the fake.
func CountPromptTokens(messages []Message) int {
	n := TokensReplyPriming
	for _, m := range messages {
		n += messageTokens(m.Role, m.Name, []string{m.Content})
	}
	return n
}

// messageTokens counts one message whose content is given as text parts.
func messageTokens(role, name string, parts []string) int {
	n := TokensPerMessage + CountTokens(role)
	for _, p := range parts {
		n += CountTokens(p)
	}
	if name != "" {
		n += CountTokens(name) + TokensPerName
	}
	return n
}
