package provider

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Probe is how one kind of API is asked about a key, and how its answer is read.
type Probe interface {
	// Request returns the probe of model at baseURL, without the key.
	Request(baseURL, model string) Request
	// KeyHeader is the header the API reads a key from: Authorization
	// (as "Bearer <key>") or X-Api-Key.
	KeyHeader() string
	// Authorize puts apiKey where the API looks for it: in KeyHeader.
	Authorize(h http.Header, apiKey string)
	// Read reads what a response body says; it never keeps text from it
	// other than a plain error code.
	Read(body []byte) Answer
	// Free reports whether the probe spends none of the limits it reads.
	Free() bool
	// NamesModel reports whether the request names a model.
	NamesModel() bool
}

// Request is a probe request, the same for every probe of one key and
// model: built once, sent many times.
type Request struct {
	Method string
	URL    string
	Body   []byte // nil: no body
	Header http.Header
}

// Answer is what a response body says.
type Answer struct {
	Tokens       float64 // billed to the probe
	ErrorCode    string  // the provider's error code, when a plain identifier
	Observations []ratelimit.Observation
	Dropped      int // values in the body that are not what the API documents
	// Served: the body is the answer to a request the API served, from an
	// API that sends no rate-limit values unless one runs out (Gemini): no
	// window was empty (ratelimit.Reading.Served). Trusted with a 2xx only.
	Served bool
	// RetryAfter is the wait the body asks for (Gemini's RetryInfo); 0 when
	// it asks for none.
	RetryAfter time.Duration
}

// ProbeMessage is the user message every chat probe sends.
const ProbeMessage = "Hi"

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatCompletions is OpenAI's chat completions API, which most providers
// speak: one message, one completion token at most.
type chatCompletions struct {
	// capField is the request field that caps the completion:
	// max_completion_tokens where the provider documents it, else max_tokens.
	capField string
}

func (c chatCompletions) Request(baseURL, model string) Request {
	body, _ := json.Marshal(map[string]any{
		"model":    model,
		"messages": []message{{Role: "user", Content: ProbeMessage}},
		// The provider reserves this against the token quota.
		c.capField: 1,
	})
	return Request{
		Method: http.MethodPost,
		URL:    baseURL + "/chat/completions",
		Body:   body,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
	}
}

func (chatCompletions) KeyHeader() string                        { return "Authorization" }
func (c chatCompletions) Authorize(h http.Header, apiKey string) { setKey(h, c.KeyHeader(), apiKey) }

func (chatCompletions) Read(body []byte) Answer {
	var b struct {
		Usage struct {
			TotalTokens float64 `json:"total_tokens"`
		} `json:"usage"`
		Code  json.RawMessage `json:"code"`
		Error struct {
			Code json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return Answer{}
	}
	return Answer{Tokens: nonNegative(b.Usage.TotalTokens), ErrorCode: firstCode(b.Code, b.Error.Code)}
}

func (chatCompletions) Free() bool       { return false }
func (chatCompletions) NamesModel() bool { return true }

// messages is Anthropic's Messages API.
type messages struct{}

// AnthropicVersion is the API version the probe asks for.
const AnthropicVersion = "2023-06-01"

func (messages) Request(baseURL, model string) Request {
	body, _ := json.Marshal(map[string]any{
		"model":      model,
		"max_tokens": 1,
		"messages":   []message{{Role: "user", Content: ProbeMessage}},
	})
	return Request{
		Method: http.MethodPost,
		URL:    baseURL + "/v1/messages",
		Body:   body,
		Header: http.Header{
			"Content-Type":      {"application/json"},
			"Accept":            {"application/json"},
			"Anthropic-Version": {AnthropicVersion},
		},
	}
}

func (messages) KeyHeader() string                        { return "X-Api-Key" }
func (m messages) Authorize(h http.Header, apiKey string) { setKey(h, m.KeyHeader(), apiKey) }

func (messages) Read(body []byte) Answer {
	var b struct {
		Usage struct {
			InputTokens  float64 `json:"input_tokens"`
			OutputTokens float64 `json:"output_tokens"`
		} `json:"usage"`
		Error struct {
			Type json.RawMessage `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return Answer{}
	}
	return Answer{
		Tokens:    nonNegative(b.Usage.InputTokens) + nonNegative(b.Usage.OutputTokens),
		ErrorCode: firstCode(b.Error.Type),
	}
}

func (messages) Free() bool       { return false }
func (messages) NamesModel() bool { return true }

// keyInfo is OpenRouter's GET /key: what a key may spend and has left,
// free of charge.
type keyInfo struct{}

func (keyInfo) Request(baseURL, _ string) Request {
	return Request{
		Method: http.MethodGet,
		URL:    baseURL + "/key",
		Header: http.Header{"Accept": {"application/json"}},
	}
}

func (keyInfo) KeyHeader() string                        { return "Authorization" }
func (k keyInfo) Authorize(h http.Header, apiKey string) { setKey(h, k.KeyHeader(), apiKey) }

// creditWindows are the windows of OpenRouter's limit_reset values.
var creditWindows = map[string]string{"daily": "day", "weekly": "week", "monthly": "month"}

func (keyInfo) Read(body []byte) Answer {
	var b struct {
		Data struct {
			Limit          json.RawMessage `json:"limit"`
			LimitRemaining json.RawMessage `json:"limit_remaining"`
			LimitReset     json.RawMessage `json:"limit_reset"`
			FreeRequests   struct {
				Limit     json.RawMessage `json:"limit"`
				Remaining json.RawMessage `json:"remaining"`
			} `json:"free_model_daily_requests"`
		} `json:"data"`
		Error struct {
			Code json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return Answer{}
	}
	// Each field alone: one that is not what the documentation says is
	// dropped and counted, and the others still count.
	var a Answer
	add := func(kind ratelimit.Kind, resource, window string, raw json.RawMessage) {
		if len(raw) == 0 || string(raw) == "null" {
			return
		}
		var v float64
		if json.Unmarshal(raw, &v) != nil || v < 0 {
			a.Dropped++
			return
		}
		a.Observations = append(a.Observations, ratelimit.Observation{Kind: kind, Resource: resource, Window: window, Value: v})
	}
	d := &b.Data
	if len(d.Limit) > 0 && string(d.Limit) != "null" { // a key without a limit has no credits to run out of
		var reset string
		if len(d.LimitReset) > 0 && string(d.LimitReset) != "null" && json.Unmarshal(d.LimitReset, &reset) != nil {
			a.Dropped++
		}
		window := creditWindows[reset]
		add(ratelimit.Limit, "credits", window, d.Limit)
		add(ratelimit.Remaining, "credits", window, d.LimitRemaining)
	}
	add(ratelimit.Limit, "free_model_requests", "day", d.FreeRequests.Limit)
	add(ratelimit.Remaining, "free_model_requests", "day", d.FreeRequests.Remaining)
	a.ErrorCode = firstCode(b.Error.Code)
	return a
}

func (keyInfo) Free() bool       { return true }
func (keyInfo) NamesModel() bool { return false }

// setKey puts apiKey in header, with the Bearer scheme in Authorization.
func setKey(h http.Header, header, apiKey string) {
	if header == "Authorization" {
		apiKey = "Bearer " + apiKey
	}
	h.Set(header, apiKey)
}

// firstCode returns the first of raws that is a JSON string holding a plain code.
func firstCode(raws ...json.RawMessage) string {
	for _, raw := range raws {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if code := plainCode(s); code != "" {
				return code
			}
		}
	}
	return ""
}

func nonNegative(v float64) float64 { return max(v, 0) }
