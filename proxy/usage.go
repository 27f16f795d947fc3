package proxy

import (
	"bytes"
	"encoding/json"

	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// Usage is what one response through the proxy spent of a key's declared
// limits: a request served, when a 2xx starts, and the tokens its usage
// reports, when its body ends.
type Usage struct {
	Key      string // the configured key's name
	Provider string
	Model    string // as in Observation
	tally.Spent
}

// usageFields are the token counts of the usage objects the providers
// answer with; nil where a field is not given. Each is read as documented:
//   - OpenAI's chat completions, usage: prompt_tokens, completion_tokens,
//     total_tokens (https://platform.openai.com/docs/api-reference/chat/object);
//   - OpenAI's Responses API, and Anthropic's messages, usage: input_tokens,
//     output_tokens, and total_tokens from OpenAI
//     (https://platform.openai.com/docs/api-reference/responses/object);
//   - Anthropic's cache_creation_input_tokens, which count toward its input
//     tokens per minute, while cache_read_input_tokens do not
//     (https://docs.claude.com/en/api/rate-limits#cache-aware-itpm);
//   - Gemini's usageMetadata: promptTokenCount, candidatesTokenCount,
//     thoughtsTokenCount (billed as output), totalTokenCount
//     (https://ai.google.dev/api/generate-content#UsageMetadata).
type usageFields struct {
	PromptTokens             *float64 `json:"prompt_tokens"`
	CompletionTokens         *float64 `json:"completion_tokens"`
	TotalTokens              *float64 `json:"total_tokens"`
	InputTokens              *float64 `json:"input_tokens"`
	OutputTokens             *float64 `json:"output_tokens"`
	CacheCreationInputTokens *float64 `json:"cache_creation_input_tokens"`
	PromptTokenCount         *float64 `json:"promptTokenCount"`
	CandidatesTokenCount     *float64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount       *float64 `json:"thoughtsTokenCount"`
	TotalTokenCount          *float64 `json:"totalTokenCount"`
}

// merge takes the fields o gives, in place of these: a stream's later
// usage is cumulative (Anthropic's message_delta after message_start).
// A negative count is no count.
func (u *usageFields) merge(o *usageFields) {
	for _, f := range [...]struct{ dst, src **float64 }{
		{&u.PromptTokens, &o.PromptTokens}, {&u.CompletionTokens, &o.CompletionTokens}, {&u.TotalTokens, &o.TotalTokens},
		{&u.InputTokens, &o.InputTokens}, {&u.OutputTokens, &o.OutputTokens}, {&u.CacheCreationInputTokens, &o.CacheCreationInputTokens},
		{&u.PromptTokenCount, &o.PromptTokenCount}, {&u.CandidatesTokenCount, &o.CandidatesTokenCount},
		{&u.ThoughtsTokenCount, &o.ThoughtsTokenCount}, {&u.TotalTokenCount, &o.TotalTokenCount},
	} {
		if *f.src != nil && **f.src >= 0 {
			*f.dst = *f.src
		}
	}
}

// spent returns the tokens the fields count: input, output, and their
// total where the provider gives none. ok is false when no field is given.
func (u *usageFields) spent() (s tally.Spent, ok bool) {
	v := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	switch {
	case u.PromptTokens != nil || u.CompletionTokens != nil:
		s.InputTokens, s.OutputTokens = v(u.PromptTokens), v(u.CompletionTokens)
		ok = true
	case u.InputTokens != nil || u.OutputTokens != nil || u.CacheCreationInputTokens != nil:
		s.InputTokens, s.OutputTokens = v(u.InputTokens)+v(u.CacheCreationInputTokens), v(u.OutputTokens)
		ok = true
	case u.PromptTokenCount != nil || u.CandidatesTokenCount != nil || u.ThoughtsTokenCount != nil:
		s.InputTokens, s.OutputTokens = v(u.PromptTokenCount), v(u.CandidatesTokenCount)+v(u.ThoughtsTokenCount)
		ok = true
	}
	switch {
	case u.TotalTokens != nil:
		s.Tokens, ok = *u.TotalTokens, true
	case u.TotalTokenCount != nil:
		s.Tokens, ok = *u.TotalTokenCount, true
	default:
		s.Tokens = s.InputTokens + s.OutputTokens
	}
	return s, ok
}

// readUsage decodes the usage object in b, if it is one.
func readUsage(b []byte) (*usageFields, bool) {
	var u usageFields
	if json.Unmarshal(b, &u) != nil {
		return nil, false
	}
	return &u, true
}

var usageKey = []byte(`"usage`)

// lastUsage returns the last usage object in b: the value of a member
// named "usage" or "usageMetadata". A string's quotes are escaped, so the
// bytes "usage" followed by a colon are a member's name, wherever b starts
// (b may be the end of a body). With topLevel, the object must be a member
// of the object that b's document ends with, or of the last element of the
// array it ends with (Gemini's streamed answers as one JSON array):
// nothing but its siblings may follow it.
func lastUsage(b []byte, topLevel bool) []byte {
	for end := len(b); ; {
		i := bytes.LastIndex(b[:end], usageKey)
		if i < 0 {
			return nil
		}
		end = i
		if escaped(b, i) {
			continue
		}
		j := objectNamedAt(b, i+len(usageKey))
		if j < 0 {
			continue
		}
		k := valueEnd(b, j)
		if k < 0 || topLevel && !endsDocument(b, k) {
			continue
		}
		return b[j:k]
	}
}

// hasUsageObject reports whether b names a usage (or usageMetadata) whose
// value is an object: cheaper than lastUsage on the many chunks of a stream
// whose usage is null.
func hasUsageObject(b []byte) bool {
	for from := 0; ; {
		// Past the quote, which starts every string of a JSON text: "u"
		// is rarer, and its search the faster.
		i := bytes.Index(b[from:], usageKey[1:])
		if i < 0 {
			return false
		}
		i += from
		j := i + len(usageKey) - 1
		from = j
		if i == 0 || b[i-1] != '"' {
			continue
		}
		if objectNamedAt(b, j) >= 0 {
			return true
		}
	}
}

// objectNamedAt returns where the object starts whose member name b[:j]
// ends with `"usage` (its closing quote, or `Metadata"`, at j), or -1 when
// the name is another or its value is no object (null, before a stream's
// last chunk).
func objectNamedAt(b []byte, j int) int {
	switch {
	case bytes.HasPrefix(b[j:], []byte(`"`)):
		j++
	case bytes.HasPrefix(b[j:], []byte(`Metadata"`)):
		j += len(`Metadata"`)
	default:
		return -1
	}
	if j = skipSpace(b, j); j >= len(b) || b[j] != ':' {
		return -1
	}
	if j = skipSpace(b, j+1); j >= len(b) || b[j] != '{' {
		return -1
	}
	return j
}

// escaped reports whether the quote at b[i] is escaped: after an odd
// number of backslashes.
func escaped(b []byte, i int) bool {
	n := 0
	for i--; i >= 0 && b[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// endsDocument reports whether b[i:] closes the object a member ends at
// i, and then, at most, the array around it: siblings, "}", "]" and
// nothing else.
func endsDocument(b []byte, i int) bool {
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) || b[i] != '"' {
			return false
		}
		if i = valueEnd(b, i); i < 0 {
			return false
		}
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return false
		}
		if i = skipSpace(b, i+1); i >= len(b) {
			return false
		}
		if i = valueEnd(b, i); i < 0 {
			return false
		}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		i = skipSpace(b, i+1)
	}
	return i == len(b)
}

// valueEnd walks the JSON value that starts at b[i], in bytes that may be
// cut short or not JSON at all (the tail of a body), and returns the index
// just past it: -1 when the value does not end within b. Over a body
// json.Valid vouched for (a request's model) it never returns -1.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case '{', '[':
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = valueEnd(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					if b[i] != closer {
						return -1
					}
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
	}
	return -1
}
