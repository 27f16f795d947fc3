package simulator

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// reply is what a successful answer is built from.
type reply struct {
	call    call
	buckets buckets
	key     string
	balance Balance
	fault   Fault
	now     time.Time
	id      int
}

// chatCompletion is an OpenAI chat.completion object.
func chatCompletion(rp reply) any {
	c := rp.call
	return map[string]any{
		"id":      "chatcmpl-simulated",
		"object":  "chat.completion",
		"model":   c.model,
		"created": rp.now.Unix(),
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]string{"role": "assistant", "content": "Hello"},
			"finish_reason": "length",
		}},
		"usage": map[string]int{
			"prompt_tokens":     c.prompt,
			"completion_tokens": c.completion,
			"total_tokens":      c.prompt + c.completion,
		},
	}
}

// event is one event of a stream: its name, if it has one, and its data,
// written as JSON, or as it is if a string.
type event struct {
	name string
	data any
}

// chatStream is an OpenAI chat completion as chunks: the role, the
// content, the finish, and with stream_options.include_usage a last chunk
// with the usage and no choices, "usage": null on the others; then
// [DONE] (https://platform.openai.com/docs/api-reference/chat-streaming).
func chatStream(rp reply) []event {
	c := rp.call
	chunk := func(choices []any) event {
		data := map[string]any{
			"id": "chatcmpl-simulated", "object": "chat.completion.chunk", "model": c.model, "created": rp.now.Unix(), "choices": choices,
		}
		if c.includeUsage {
			data["usage"] = nil
		}
		return event{data: data}
	}
	choice := func(delta map[string]string, finish any) []any {
		return []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}
	}
	events := []event{
		chunk(choice(map[string]string{"role": "assistant", "content": ""}, nil)),
		chunk(choice(map[string]string{"content": "Hello"}, nil)),
		chunk(choice(map[string]string{}, "length")),
	}
	if c.includeUsage {
		last := chunk([]any{})
		last.data.(map[string]any)["usage"] = chatCompletion(rp).(map[string]any)["usage"]
		events = append(events, last)
	}
	return append(events, event{data: "[DONE]"})
}

// anthropicStream is an Anthropic message as events: message_start with
// the input tokens and one output token, the text's block, and
// message_delta with the output tokens so far, the whole count
// (https://docs.claude.com/en/docs/build-with-claude/streaming).
func anthropicStream(rp reply) []event {
	c := rp.call
	message := anthropicMessage(rp).(map[string]any)
	message["content"], message["stop_reason"] = []any{}, nil
	message["usage"] = map[string]int{"input_tokens": c.prompt, "output_tokens": 1}
	return []event{
		{"message_start", map[string]any{"type": "message_start", "message": message}},
		{"content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]string{"type": "text", "text": ""}}},
		{"ping", map[string]string{"type": "ping"}},
		{"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": "Hi"}}},
		{"content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}},
		{"message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "max_tokens", "stop_sequence": nil},
			"usage": map[string]int{"output_tokens": c.completion}}},
		{"message_stop", map[string]string{"type": "message_stop"}},
	}
}

// anthropicMessage is an Anthropic message cut short by max_tokens.
func anthropicMessage(rp reply) any {
	c := rp.call
	return map[string]any{
		"id":            fmt.Sprintf("msg_sim%08d", rp.id),
		"type":          "message",
		"role":          "assistant",
		"content":       []any{map[string]string{"type": "text", "text": "Hi"}},
		"model":         c.model,
		"stop_reason":   "max_tokens",
		"stop_sequence": nil,
		"usage":         map[string]int{"input_tokens": c.prompt, "output_tokens": c.completion},
	}
}

// creditResets are OpenRouter's limit_reset values by window.
var creditResets = []struct{ window, name string }{{"day", "daily"}, {"week", "weekly"}, {"month", "monthly"}}

// freeTierDailyRequests is OpenRouter's daily free-model request limit for
// accounts that have bought credits; free-tier accounts get fewer.
const freeTierDailyRequests = 1000

// openRouterKey is OpenRouter's GET /key answer, from the key's "credits"
// bucket (its day, week or month window gives limit_reset) and its
// "free_model_requests" day bucket. usage is the credits spent and not yet
// refilled.
func openRouterKey(rp reply) any {
	data := map[string]any{
		"label":                     maskKey(rp.key),
		"limit":                     nil,
		"limit_reset":               nil,
		"limit_remaining":           nil,
		"include_byok_in_limit":     false,
		"usage":                     0.0,
		"is_free_tier":              false,
		"free_model_daily_requests": nil,
	}
	for _, r := range creditResets {
		if b := rp.buckets["credits"][r.window]; b != nil {
			left := math.Max(0, b.level)
			data["limit"], data["limit_reset"], data["limit_remaining"], data["usage"] = b.limit, r.name, left, b.limit-left
			break
		}
	}
	if b := rp.buckets["free_model_requests"]["day"]; b != nil {
		data["free_model_daily_requests"] = map[string]float64{"used": b.limit - b.remaining(), "limit": b.limit, "remaining": b.remaining()}
		data["is_free_tier"] = b.limit < freeTierDailyRequests
	}
	for _, field := range []string{"limit", "limit_reset", "limit_remaining", "free_model_daily_requests"} {
		switch rp.fault {
		case NoHeaders:
			delete(data, field)
		case BadHeaders:
			data[field] = "unknown"
		}
	}
	return map[string]any{"data": data}
}

// maskKey shows a few characters of a key, never the key: at most a
// quarter of it in front and the last three, as OpenRouter's labels do
// ("sk-or-v1-abc...xyz"); nothing of a short key.
func maskKey(key string) string {
	if len(key) < 16 {
		return "..."
	}
	return key[:min(12, len(key)/4)] + "..." + key[len(key)-3:]
}

// deepSeekBalance is DeepSeek's GET /user/balance answer: amounts as
// strings with two decimals, the total the sum of granted and topped up.
func deepSeekBalance(rp reply) any {
	infos := make([]map[string]string, len(rp.balance.Currencies))
	for i, c := range rp.balance.Currencies {
		infos[i] = map[string]string{
			"currency":          c.Currency,
			"total_balance":     money(c.Granted + c.ToppedUp),
			"granted_balance":   money(c.Granted),
			"topped_up_balance": money(c.ToppedUp),
		}
	}
	body := map[string]any{"is_available": rp.balance.Available, "balance_infos": infos}
	for _, field := range []string{"is_available", "balance_infos"} {
		switch rp.fault {
		case NoHeaders:
			delete(body, field)
		case BadHeaders:
			body[field] = "unknown"
		}
	}
	return body
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
