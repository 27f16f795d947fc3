package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// problemKind is what went wrong, in no dialect's words.
type problemKind int

const (
	notFound problemKind = iota
	methodNotAllowed
	invalidRequest
	unauthorized
	unknownModel
	unavailable
	rateLimited
	queueExceeded
	insufficientQuota
)

// problem is a refused request.
type problem struct {
	kind     problemKind
	message  string
	key      string // unauthorized: the key the request presented
	resource string // rateLimited: the first resource that ran out
	// rateLimited: every bucket that cannot take the request, the seconds
	// until all can, the model asked for and the key's fault.
	exhausted  []exhaustion
	retryAfter float64
	model      string
	fault      Fault
}

// problems give each kind its usual status and the names the error
// shapes give it. An OpenAI code "" is null.
var problems = [...]struct {
	status                 int
	cerebrasCode           string
	openAIType, openAICode string
	anthropicType          string
}{
	notFound:          {http.StatusNotFound, "not_found", "invalid_request_error", "not_found", "not_found_error"},
	methodNotAllowed:  {http.StatusMethodNotAllowed, "method_not_allowed", "invalid_request_error", "method_not_allowed", "invalid_request_error"},
	invalidRequest:    {http.StatusBadRequest, "invalid_request", "invalid_request_error", "", "invalid_request_error"},
	unauthorized:      {http.StatusUnauthorized, "wrong_api_key", "invalid_request_error", "invalid_api_key", "authentication_error"},
	unknownModel:      {http.StatusNotFound, "model_not_found", "invalid_request_error", "model_not_found", "not_found_error"},
	unavailable:       {http.StatusServiceUnavailable, "service_unavailable", "server_error", "service_unavailable", "api_error"},
	rateLimited:       {http.StatusTooManyRequests, "", "", "rate_limit_exceeded", "rate_limit_error"},
	queueExceeded:     {http.StatusTooManyRequests, "queue_exceeded", "server_error", "queue_exceeded", "overloaded_error"},
	insufficientQuota: {http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota", "insufficient_quota", "invalid_request_error"},
}

// errorShape is how a dialect refuses a request.
type errorShape struct {
	status map[problemKind]int // where the provider's status is not the usual one
	body   func(p problem, status int) any
}

var (
	// cerebrasErrors are flat: {"message","type","code"}.
	cerebrasErrors = errorShape{body: func(p problem, _ int) any {
		code, message := problems[p.kind].cerebrasCode, p.message
		switch p.kind {
		case unauthorized:
			// Real APIs have echoed the key they refused: the exporter must cope.
			message = "Wrong API Key: " + p.key
		case rateLimited:
			code = map[bool]string{true: "request_quota_exceeded", false: "token_quota_exceeded"}[countsRequests(p.resource)]
		}
		return map[string]string{"message": message, "type": "invalid_request_error", "code": code}
	}}
	// openAIErrors are {"error":{"message","type","param","code"}}; a 429's
	// type says which resource ran out.
	openAIErrors  = errorShape{body: openAIError}
	mistralErrors = errorShape{status: map[problemKind]int{invalidRequest: http.StatusUnprocessableEntity}, body: openAIError}
	// anthropicErrors are {"type":"error","error":{"type","message"}}.
	anthropicErrors = errorShape{
		status: map[problemKind]int{queueExceeded: 529, insufficientQuota: http.StatusBadRequest},
		body: func(p problem, _ int) any {
			return map[string]any{"type": "error", "error": map[string]string{"type": problems[p.kind].anthropicType, "message": p.message}}
		},
	}
	// openRouterErrors are {"error":{"code":<status>,"message"}}.
	openRouterErrors = errorShape{
		status: map[problemKind]int{insufficientQuota: http.StatusPaymentRequired},
		body: func(p problem, status int) any {
			return map[string]any{"error": map[string]any{"code": status, "message": p.message}}
		},
	}
)

// xaiErrors are {"code","error"}: code is the gRPC status's description,
// error the message. A wrong key is a 400, a spent credit or spending
// limit a 429, as xAI answers them.
var xaiErrors = errorShape{
	status: map[problemKind]int{unauthorized: http.StatusBadRequest, queueExceeded: http.StatusServiceUnavailable},
	body: func(p problem, status int) any {
		message := p.message
		switch p.kind {
		case unauthorized:
			message = "Incorrect API key provided: " + maskEnds(p.key) + ". You can obtain an API key from https://console.x.ai."
		case insufficientQuota:
			message = "Your team has either used all available credits or reached its monthly spending limit. " +
				"To continue making API requests, please purchase more credits or raise your spending limit."
		}
		return map[string]string{"code": grpcDescriptions[status], "error": message}
	},
}

// grpcDescriptions are the descriptions of the gRPC codes that xAI's
// statuses stand for, as its error bodies give them.
var grpcDescriptions = map[int]string{
	http.StatusBadRequest:         "Client specified an invalid argument",
	http.StatusNotFound:           "Some requested entity was not found",
	http.StatusMethodNotAllowed:   "The operation is not implemented or is not supported/enabled in this service",
	http.StatusTooManyRequests:    "Some resource has been exhausted",
	http.StatusServiceUnavailable: "The service is currently unavailable",
}

// deepSeekErrors are OpenAI's shape, but code is always
// invalid_request_error and type says what went wrong: a wrong key is an
// authentication_error, a balance run out a 402 unknown_error.
var deepSeekErrors = errorShape{
	status: map[problemKind]int{insufficientQuota: http.StatusPaymentRequired, queueExceeded: http.StatusServiceUnavailable},
	body: func(p problem, _ int) any {
		kind, message := problems[p.kind].openAIType, p.message
		switch p.kind {
		case unauthorized:
			kind, message = "authentication_error", "Authentication Fails (auth header format should be Bearer sk-...)"
			if p.key != "" {
				message = "Authentication Fails, Your api key: ****" + lastFour(p.key) + " is invalid"
			}
		case insufficientQuota:
			kind, message = "unknown_error", "Insufficient Balance"
		case unavailable, queueExceeded:
			message = "Server Overloaded"
		}
		return map[string]any{"error": map[string]any{"message": message, "type": kind, "param": nil, "code": "invalid_request_error"}}
	},
}

// maskEnds shows the first and last two characters of a key, as xAI
// does ("xa***yz"); nothing of a short key.
func maskEnds(key string) string {
	if len(key) < 12 {
		return "***"
	}
	return key[:2] + "***" + key[len(key)-2:]
}

// lastFour is the end of a key that DeepSeek shows; nothing of a short key.
func lastFour(key string) string {
	if len(key) < 16 {
		return ""
	}
	return key[len(key)-4:]
}

func openAIError(p problem, _ int) any {
	kind := problems[p.kind]
	var code any
	if kind.openAICode != "" {
		code = kind.openAICode
	}
	if p.kind == rateLimited {
		kind.openAIType = map[bool]string{true: "requests", false: "tokens"}[countsRequests(p.resource)]
	}
	return map[string]any{"error": map[string]any{"message": p.message, "type": kind.openAIType, "param": nil, "code": code}}
}

// countsRequests reports whether a resource counts requests, not tokens.
func countsRequests(resource string) bool { return usage{requests: 1}.of(resource) > 0 }

// fail answers with p in the dialect's shape.
func (ans *answer) fail(sp *spec, now time.Time, p problem) {
	status, ok := sp.errors.status[p.kind]
	if !ok {
		status = problems[p.kind].status
	}
	ans.reply(sp, now, status, sp.errors.body(p, status))
}

// events answers 200 with an event stream.
func (ans *answer) events(sp *spec, now time.Time, events []event) {
	var b bytes.Buffer
	ans.chunks = nil
	for _, e := range events {
		start := b.Len()
		if e.name != "" {
			b.WriteString("event: " + e.name + "\n")
		}
		data, ok := e.data.(string)
		if !ok {
			raw, _ := json.Marshal(e.data)
			data = string(raw)
		}
		b.WriteString("data: " + data + "\n\n")
		ans.chunks = append(ans.chunks, bytes.Clone(b.Bytes()[start:]))
	}
	ans.status, ans.body = http.StatusOK, b.Bytes()
	ans.header.Set("Content-Type", "text/event-stream")
	ans.header.Set("Cache-Control", "no-cache")
	if sp.date {
		ans.header.Set("Date", now.UTC().Format(http.TimeFormat))
	}
}

// reply answers with a JSON body.
func (ans *answer) reply(sp *spec, now time.Time, status int, body any) {
	b, _ := json.Marshal(body)
	ans.status, ans.body = status, append(b, '\n')
	ans.header.Set("Content-Type", "application/json")
	if sp.date {
		ans.header.Set("Date", now.UTC().Format(http.TimeFormat))
	}
}
