package simulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// requestParser validates a dialect's request body and says what it asks for.
type requestParser interface {
	parse(body []byte, readErr error, pathModel string) (call, error)
}

// requestShape is what a dialect's request body must hold: model, messages,
// a completion cap, and nothing else but a few optional fields.
type requestShape struct {
	capField    string   // the field that caps the completion
	capRequired bool     // whether the request must cap it
	roles       []string // the roles a message may have
	optional    []string // the other top-level fields accepted
}

// call is what a valid request asks for.
type call struct {
	model              string
	prompt, completion int // tokens
	// stream: the answer is an event stream; includeUsage: it ends with
	// the usage (OpenAI's stream_options.include_usage).
	stream, includeUsage bool
}

// defaultCompletion is how many tokens a request without a cap gets.
const defaultCompletion = 16

// parse validates a request body. Errors name the offending field. A
// request whose path names its model (pathModel) need not name it in its
// body, and is for that model whatever its body names.
func (rs *requestShape) parse(body []byte, readErr error, pathModel string) (call, error) {
	if readErr != nil {
		return call{}, errBodyTooLarge
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return call{}, errNotJSON
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name != "model" && name != "messages" && name != rs.capField && !slices.Contains(rs.optional, name) {
			return call{}, fmt.Errorf("%s: unknown field", name)
		}
	}

	c := call{prompt: 8, completion: defaultCompletion}
	if json.Unmarshal(fields["model"], &c.model) != nil || c.model == "" {
		if _, named := fields["model"]; pathModel == "" || named {
			return call{}, errors.New("model: a model name is required")
		}
	}
	if pathModel != "" {
		c.model = pathModel
	}
	var messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(fields["messages"], &messages) != nil || len(messages) == 0 {
		return call{}, errors.New("messages: a non-empty list of messages is required")
	}
	for i, m := range messages {
		if !slices.Contains(rs.roles, m.Role) {
			return call{}, fmt.Errorf("messages.%d.role: must be one of %s", i, strings.Join(rs.roles, ", "))
		}
		n, err := textLength(m.Content)
		if err != nil {
			return call{}, fmt.Errorf("messages.%d.content: %w", i, err)
		}
		c.prompt += (n + 3) / 4
	}
	if system, ok := fields["system"]; ok && !isNull(system) {
		n, err := textLength(system)
		if err != nil {
			return call{}, fmt.Errorf("system: %w", err)
		}
		c.prompt += (n + 3) / 4
	}
	if capValue, ok := fields[rs.capField]; ok && !isNull(capValue) {
		if json.Unmarshal(capValue, &c.completion) != nil || c.completion < 1 {
			return call{}, fmt.Errorf("%s: must be a positive integer", rs.capField)
		}
	} else if rs.capRequired {
		return call{}, fmt.Errorf("%s: field required", rs.capField)
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) && json.Unmarshal(raw, &c.stream) != nil {
		return call{}, errors.New("stream: must be true or false")
	}
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		if !c.stream {
			// OpenAI's words.
			return call{}, errors.New("stream_options: the 'stream_options' parameter is only allowed when 'stream' is enabled")
		}
		var options struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &options) != nil {
			return call{}, errors.New("stream_options: must be an object")
		}
		c.includeUsage = options.IncludeUsage != nil && *options.IncludeUsage
	}
	return c, nil
}

// textLength is the length of a message's text: a string, or a list of
// content blocks whose text counts.
func textLength(content json.RawMessage) (int, error) {
	var text string
	if json.Unmarshal(content, &text) == nil && !isNull(content) {
		return len(text), nil
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(content, &blocks) != nil || blocks == nil {
		return 0, errors.New("must be a string or a list of content blocks")
	}
	n := 0
	for _, b := range blocks {
		n += len(b.Text)
	}
	return n, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }
