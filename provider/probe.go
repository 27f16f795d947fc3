package provider

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Probe is how one kind of API is asked about a key, and how its answer is read.
type Probe interface {
	// Request returns the probe of model at baseURL, as the key's options
	// shape it, without the key.
	Request(baseURL, model string, o Options) Request
	// KeyHeader is the header the API reads a key from: Authorization
	// (as "Bearer <key>"), X-Api-Key or Api-Key.
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

// Options are what a key says about its probe besides the base URL and
// the model; the zero Options are every provider's default.
type Options struct {
	// APIVersion is the api-version an azure_openai key asks for; "" for
	// AzureAPIVersion.
	APIVersion string
	// BearerToken: the key's secret is a bearer token (a Microsoft Entra ID
	// token), sent as Authorization: Bearer whatever KeyHeader says.
	BearerToken bool
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
	// RetryAfter is a wait the body of a refusal asks for (Gemini's
	// retryDelay); 0 when it gives none.
	RetryAfter time.Duration
	// Served: a 2xx from an API that sends no rate-limit values unless a
	// window runs out (Gemini); it says that none was empty.
	Served bool
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

func (c chatCompletions) Request(baseURL, model string, _ Options) Request {
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

func (messages) Request(baseURL, model string, _ Options) Request {
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

// accountGet is a free GET of one path under base_url that tells a key's
// account, with a Bearer key and no model: what keyInfo and balance share.
type accountGet struct{ path string }

func (g accountGet) Request(baseURL, _ string, _ Options) Request {
	return Request{
		Method: http.MethodGet,
		URL:    baseURL + g.path,
		Header: http.Header{"Accept": {"application/json"}},
	}
}

func (accountGet) KeyHeader() string                        { return "Authorization" }
func (g accountGet) Authorize(h http.Header, apiKey string) { setKey(h, g.KeyHeader(), apiKey) }
func (accountGet) Free() bool                               { return true }
func (accountGet) NamesModel() bool                         { return false }

// keyInfo is OpenRouter's GET /key: what a key may spend and has left,
// free of charge.
type keyInfo struct{ accountGet }

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
		if !present(raw) {
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
	if present(d.Limit) { // a key without a limit has no credits to run out of
		var reset string
		if present(d.LimitReset) && json.Unmarshal(d.LimitReset, &reset) != nil {
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

// balance is DeepSeek's GET /user/balance: the account's money left, per
// currency, and whether it may call the API, free of charge.
type balance struct{ accountGet }

// BalanceResource is the resource of DeepSeek's is_available, as a status:
// allowed while the balance may pay for calls, rejected once it may not.
const BalanceResource = "balance"

func (balance) Read(body []byte) Answer {
	var b struct {
		IsAvailable  json.RawMessage `json:"is_available"`
		BalanceInfos json.RawMessage `json:"balance_infos"`
		Error        struct {
			Type json.RawMessage `json:"type"`
			Code json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return Answer{}
	}
	// Each field alone: one that is not what the documentation says is
	// dropped and counted, and the others still count.
	var a Answer
	if present(b.IsAvailable) {
		var available bool
		if json.Unmarshal(b.IsAvailable, &available) != nil {
			a.Dropped++
		} else {
			status := float64(ratelimit.StatusRejected)
			if available {
				status = ratelimit.StatusAllowed
			}
			a.Observations = append(a.Observations, ratelimit.Observation{Kind: ratelimit.Status, Resource: BalanceResource, Value: status})
		}
	}
	var infos []struct {
		Currency     json.RawMessage `json:"currency"`
		TotalBalance json.RawMessage `json:"total_balance"`
	}
	if present(b.BalanceInfos) && json.Unmarshal(b.BalanceInfos, &infos) != nil {
		a.Dropped++
	}
	for _, info := range infos {
		currency, okCurrency := currencyCode(info.Currency)
		total, okTotal := amount(info.TotalBalance)
		if !okCurrency || !okTotal {
			a.Dropped++
			continue
		}
		a.Observations = append(a.Observations, ratelimit.Observation{Kind: ratelimit.Balance, Resource: currency, Value: total})
	}
	a.ErrorCode = firstCode(b.Error.Type, b.Error.Code)
	return a
}

// present reports whether a JSON field was given a value.
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// currencyCode reads an ISO 4217 code, three upper-case letters: it
// becomes a label value, so nothing else is taken.
func currencyCode(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) != 3 {
		return "", false
	}
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return "", false
		}
	}
	return s, true
}

// amount reads a sum of money written as a JSON string ("110.00"), as
// DeepSeek writes them: digits with an optional sign and fraction, nothing
// that strconv would also take (hex, "Inf", underscores).
func amount(raw json.RawMessage) (float64, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	digits := strings.TrimPrefix(s, "-")
	whole, fraction, _ := strings.Cut(digits, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(fraction, "0123456789") != "" ||
		strings.HasSuffix(digits, ".") {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

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
