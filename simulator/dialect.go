package simulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Dialect is the API a simulator speaks: one provider's request shape,
// rate-limit headers and error bodies.
type Dialect string

// Dialects the simulator speaks. Chat dialects serve POST
// .../chat/completions with a Bearer key; what each shows of a key's
// buckets follows its name. Chat dialects and Anthropic answer a request
// with "stream": true as an event stream, written at once, in the
// provider's events: the usage last (OpenAI's with
// stream_options.include_usage only).
const (
	// Cerebras: x-ratelimit-{limit,remaining,reset}-{requests,tokens}-{minute,hour,day}, reset in float seconds.
	Cerebras Dialect = "cerebras"
	// OpenAI: x-ratelimit-{limit,remaining,reset}-{requests,tokens}, each from the minute window, else the
	// day window; resets as Go durations.
	OpenAI Dialect = "openai"
	// Groq: as OpenAI, but requests always per day.
	Groq Dialect = "groq"
	// Mistral: x-ratelimit-{limit,remaining}-req-minute, -tokens-minute, -tokens-month; 422 for a malformed request.
	Mistral Dialect = "mistral"
	// Together: x-ratelimit-{limit,remaining,reset} (requests) and x-tokenlimit-{limit,remaining} (tokens),
	// each from the key's shortest window; reset in whole seconds.
	Together Dialect = "together"
	// Fireworks: x-ratelimit-{limit,remaining}-{requests,tokens-prompt,tokens-generated} from the key's
	// shortest window of requests, tokens_prompt and tokens_generated; x-ratelimit-over-limit.
	Fireworks Dialect = "fireworks"
	// SambaNova: x-ratelimit-{limit,remaining,reset}-requests (per minute) and -requests-day; reset in whole seconds.
	SambaNova Dialect = "sambanova"
	// Anthropic: POST .../v1/messages with x-api-key and anthropic-version;
	// anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset} per minute,
	// resets as RFC 3339 times compared with the simulator's own Date. A key in subscription mode
	// (SetSubscription) also gets anthropic-ratelimit-unified-*, from its "unified" buckets.
	Anthropic Dialect = "anthropic"
	// OpenRouter: GET .../key with a Bearer key, free of charge; the answer's body shows the key's "credits"
	// (day, week or month) and "free_model_requests" (day).
	OpenRouter Dialect = "openrouter"
	// XAI: x-ratelimit-{limit,remaining,reset}-{requests,tokens}, each from the key's shortest window,
	// resets as Go durations; errors are {"code","error"} with gRPC's words, and a wrong key gets 400.
	XAI Dialect = "xai"
	// DeepSeek: GET .../user/balance with a Bearer key, free of charge; the answer's body shows the key's
	// Balance (SetBalance), no rate-limit headers.
	DeepSeek Dialect = "deepseek"
	// AzureOpenAI: POST .../openai/deployments/{deployment}/chat/completions?api-version=... (a model is a
	// deployment; without api-version, 404 as Azure answers) or .../openai/v1/chat/completions with the
	// deployment as the body's model; an api-key, or a Microsoft Entra ID token as Authorization: Bearer.
	// Answers show x-ratelimit-remaining-{requests,tokens} of the minute window, no limit and no reset; a
	// 429 adds x-ratelimit-reset-* in whole seconds and retry-after-ms. A key with a "deployment" limit is
	// a provisioned (PTU) deployment: azure-openai-deployment-utilization, the percent of it in use.
	AzureOpenAI Dialect = "azure_openai"
	// Gemini: POST .../models/{model}:generateContent with x-goog-api-key (or ?key=), contents and
	// generationConfig.maxOutputTokens; usageMetadata on success. No rate-limit headers, no Retry-After: a 429's
	// body names each per-minute or per-day "requests" or "input_tokens" bucket that cannot take the request
	// (google.rpc.QuotaFailure, quotaValue on per-minute quotas only, as observed) and the wait
	// (google.rpc.RetryInfo).
	Gemini Dialect = "gemini"
)

// Dialects lists every dialect.
var Dialects = []Dialect{Cerebras, OpenAI, Groq, Mistral, Together, Fireworks, SambaNova, Anthropic, OpenRouter, XAI, DeepSeek, AzureOpenAI, Gemini}

// spec declares a dialect: what the API accepts and how it answers.
type spec struct {
	model  string // served when NewDialect is given no model
	method string
	path   string // the endpoint's path ends so, under any prefix
	key    func(http.Header) (key string, given bool)
	// route reads the path and query of a request to the endpoint: the
	// model when the path names it ("": the body's), or why it is refused;
	// nil: the path names no model.
	route func(*http.Request) (model string, refused *problem)
	// queryKey is the query parameter the API also reads a key from when
	// no header gives one; "" none.
	queryKey string
	version  string        // the anthropic-version header the API requires; "" none
	request  requestParser // nil: the request has no body and names no model
	// modelInPath: the model is named in the path, .../models/{model}:...,
	// not in the body.
	modelInPath bool
	// bodyOnly: no rate-limit headers and no Retry-After; a 429's body
	// says what ran out and how long to wait.
	bodyOnly bool
	// free: answering spends nothing, and the key's limits are per key,
	// not per model.
	free      bool
	headers   []pair
	reset     func(seconds float64, now time.Time) string
	overLimit string // a header that says "yes" on a 429, "no" otherwise
	// subscription: a key set to subscription mode gets the unified
	// windows of Claude subscription traffic, and is an OAuth token sent
	// as a Bearer token.
	subscription bool
	// remainingOnly: answers show remaining, no limit and no reset; a 429
	// adds the resets.
	remainingOnly bool
	retryAfterMs  bool   // a 429 carries retry-after-ms beside Retry-After
	utilization   string // a header showing the percent used of the key's "deployment" bucket
	date          bool   // the API's own Date, which its reset timestamps compare with
	errors        errorShape
	reply         func(reply) any
	// stream is the answer's events to a request that asks for a stream.
	stream func(reply) []event
}

// pair is the rate-limit headers of one bucket.
type pair struct {
	format   string   // header name, %s standing for limit, remaining or reset
	resource string   // the bucket's resource
	windows  []string // the bucket shown is in the key's first of these windows
	reset    bool     // whether the reset header is sent
}

var (
	minute     = []string{"minute"}
	day        = []string{"day"}
	month      = []string{"month"}
	anyWindow  = windowNames()
	chatRoles  = []string{"system", "developer", "user", "assistant", "tool"}
	chatFields = []string{"stream", "stream_options", "temperature", "top_p", "stop"}
)

func windowNames() []string {
	names := make([]string, len(Windows))
	for i, w := range Windows {
		names[i] = w.Name
	}
	return names
}

// specs are the dialects' declarations.
var specs = map[Dialect]*spec{
	// Windows named in the headers; reset in float seconds.
	Cerebras: chat("llama3.1-8b", "max_completion_tokens", cerebrasErrors, floatSeconds, cerebrasHeaders()...),
	// The requests pair is per minute or per day, by the account's tier;
	// the tokens pair has been seen resetting in 24h6m34s, a daily limit.
	OpenAI: chat("gpt-4o-mini", "max_completion_tokens", openAIErrors, goDuration,
		pair{"x-ratelimit-%s-requests", "requests", []string{"minute", "day"}, true},
		pair{"x-ratelimit-%s-tokens", "tokens", []string{"minute", "day"}, true}),
	Groq: chat("llama-3.1-8b-instant", "max_tokens", openAIErrors, goDuration,
		pair{"x-ratelimit-%s-requests", "requests", day, true},
		pair{"x-ratelimit-%s-tokens", "tokens", minute, true}),
	Mistral: chat("mistral-small-latest", "max_tokens", mistralErrors, nil,
		pair{"x-ratelimit-%s-req-minute", "requests", minute, false},
		pair{"x-ratelimit-%s-tokens-minute", "tokens", minute, false},
		pair{"x-ratelimit-%s-tokens-month", "tokens", month, false}),
	Together: chat("meta-llama/Llama-3.2-3B-Instruct-Turbo", "max_tokens", openAIErrors, wholeSeconds,
		pair{"x-ratelimit-%s", "requests", anyWindow, true},
		pair{"x-tokenlimit-%s", "tokens", anyWindow, false}),
	Fireworks: overLimit(chat("accounts/fireworks/models/llama-v3p1-8b-instruct", "max_tokens", openAIErrors, nil,
		pair{"x-ratelimit-%s-requests", "requests", anyWindow, false},
		pair{"x-ratelimit-%s-tokens-prompt", "tokens_prompt", anyWindow, false},
		pair{"x-ratelimit-%s-tokens-generated", "tokens_generated", anyWindow, false}), "x-ratelimit-over-limit"),
	SambaNova: chat("Meta-Llama-3.1-8B-Instruct", "max_tokens", openAIErrors, wholeSeconds,
		pair{"x-ratelimit-%s-requests", "requests", minute, true},
		pair{"x-ratelimit-%s-requests-day", "requests", day, true}),
	Anthropic: {
		model: "claude-haiku-4-5", method: http.MethodPost, path: "/v1/messages", key: apiKeyHeader, version: "2023-06-01",
		request: &requestShape{
			capField: "max_tokens", capRequired: true, roles: []string{"user", "assistant"},
			optional: []string{"system", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"},
		},
		headers: []pair{
			{"anthropic-ratelimit-requests-%s", "requests", minute, true},
			{"anthropic-ratelimit-tokens-%s", "tokens", minute, true},
			{"anthropic-ratelimit-input-tokens-%s", "input_tokens", minute, true},
			{"anthropic-ratelimit-output-tokens-%s", "output_tokens", minute, true},
		},
		reset: timestamp, date: true, subscription: true, errors: anthropicErrors, reply: anthropicMessage, stream: anthropicStream,
	},
	// GET /key: what a key may spend and has left, free of charge.
	OpenRouter: {
		method: http.MethodGet, path: "/key", key: bearerKey, free: true,
		errors: openRouterErrors, reply: openRouterKey,
	},
	// xAI documents neither its headers' windows nor their reset format:
	// the dialect shows the key's shortest windows, resets as OpenAI's.
	XAI: chat("grok-4.20-0309-non-reasoning", "max_completion_tokens", xaiErrors, goDuration,
		pair{"x-ratelimit-%s-requests", "requests", anyWindow, true},
		pair{"x-ratelimit-%s-tokens", "tokens", anyWindow, true}),
	// GET /user/balance: the account's money, free of charge.
	DeepSeek: {
		method: http.MethodGet, path: "/user/balance", key: bearerKey, free: true,
		errors: deepSeekErrors, reply: deepSeekBalance,
	},
	AzureOpenAI: azureSpec(),
	Gemini: {
		model: "gemini-3.5-flash-lite", method: http.MethodPost, path: ":generateContent", key: googKey, queryKey: "key",
		request: geminiShape{}, modelInPath: true, bodyOnly: true, errors: geminiErrors, reply: geminiAnswer,
	},
}

// chat declares a chat-completions dialect.
func chat(model, capField string, errors errorShape, reset func(float64, time.Time) string, headers ...pair) *spec {
	return &spec{
		model: model, method: http.MethodPost, path: "/chat/completions", key: bearerKey,
		request: &requestShape{capField: capField, roles: chatRoles, optional: chatFields},
		headers: headers, reset: reset, errors: errors, reply: chatCompletion, stream: chatStream,
	}
}

func overLimit(sp *spec, header string) *spec {
	sp.overLimit = header
	return sp
}

// cerebrasHeaders are {requests,tokens} x {minute,hour,day}, each with
// limit, remaining and reset.
func cerebrasHeaders() []pair {
	var pairs []pair
	for _, resource := range []string{"requests", "tokens"} {
		for _, window := range []string{"minute", "hour", "day"} {
			pairs = append(pairs, pair{"x-ratelimit-%s-" + resource + "-" + window, resource, []string{window}, true})
		}
	}
	return pairs
}

// writeHeaders writes the dialect's rate-limit headers from the buckets:
// integer limits and remainings, resets in the dialect's format.
func (sp *spec) writeHeaders(h http.Header, bs buckets, now time.Time, limited bool) {
	for _, p := range sp.headers {
		b := bs.first(p.resource, p.windows)
		if b == nil {
			continue
		}
		if !sp.remainingOnly {
			h.Set(fmt.Sprintf(p.format, "limit"), strconv.FormatFloat(b.limit, 'f', 0, 64))
		}
		h.Set(fmt.Sprintf(p.format, "remaining"), strconv.FormatFloat(b.remaining(), 'f', 0, 64))
		if p.reset && (!sp.remainingOnly || limited) {
			h.Set(fmt.Sprintf(p.format, "reset"), sp.reset(b.resetSeconds(), now))
		}
	}
	if b := bs.first("deployment", anyWindow); b != nil && sp.utilization != "" {
		h.Set(sp.utilization, utilizationPercent(b))
	}
	if sp.overLimit != "" {
		h.Set(sp.overLimit, map[bool]string{false: "no", true: "yes"}[limited])
	}
}

// writeBadHeaders writes the dialect's limit headers with values that are
// not numbers.
func (sp *spec) writeBadHeaders(h http.Header) {
	kind := map[bool]string{false: "limit", true: "remaining"}[sp.remainingOnly]
	for _, p := range sp.headers {
		h.Set(fmt.Sprintf(p.format, kind), "unknown")
	}
	if sp.utilization != "" {
		h.Set(sp.utilization, "unknown")
	}
}

// Reset formats.

// floatSeconds is Cerebras's: "41.204916477203369".
func floatSeconds(seconds float64, _ time.Time) string {
	return strconv.FormatFloat(seconds, 'f', -1, 64)
}

// goDuration is OpenAI's and Groq's: "6m0s", "59.56s", "20ms", rounded up
// to the millisecond.
func goDuration(seconds float64, _ time.Time) string {
	return ceilTo(seconds, time.Millisecond).String()
}

// wholeSeconds rounds up to the second: "7".
func wholeSeconds(seconds float64, _ time.Time) string {
	return strconv.FormatInt(int64(ceilTo(seconds, time.Second)/time.Second), 10)
}

// timestamp is Anthropic's: the RFC 3339 time of the reset on the API's
// clock, rounded up to the second.
func timestamp(seconds float64, now time.Time) string {
	at := now.Add(time.Duration(math.Round(seconds * 1e9)))
	if whole := at.Truncate(time.Second); whole.Before(at) {
		at = whole.Add(time.Second)
	}
	return at.UTC().Format(time.RFC3339)
}

// ceilTo rounds seconds up to a whole unit (after rounding to the
// nanosecond, so that float noise does not add a unit).
func ceilTo(seconds float64, unit time.Duration) time.Duration {
	d := time.Duration(math.Round(seconds * 1e9))
	return (d + unit - 1) / unit * unit
}
