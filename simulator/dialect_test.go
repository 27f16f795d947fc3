package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// start is a whole second, so that Date and reset timestamps are exact.
var start = time.Unix(1795000000, 0)

const simKey = "sk-sim-0123456789abcdef0123456789"

// request builds a request; header holds name, value pairs.
func request(method, path, body string, header ...string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

func serve(s *Simulator, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// capFields are the completion cap each chat dialect documents.
var capFields = map[Dialect]string{
	Cerebras: "max_completion_tokens", OpenAI: "max_completion_tokens",
	Groq: "max_tokens", Mistral: "max_tokens", Together: "max_tokens", Fireworks: "max_tokens", SambaNova: "max_tokens",
	XAI: "max_completion_tokens",
}

func chatBody(fields string) string {
	return `{"model":"m","messages":[{"role":"user","content":"Hi"}]` + fields + `}`
}

// dialectProbe is each dialect's correct probe of model "m", mounted under a prefix.
func dialectProbe(d Dialect, key string) *http.Request {
	switch d {
	case Anthropic:
		return request(http.MethodPost, "/anthropic/v1/messages", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`,
			"X-Api-Key", key, "Anthropic-Version", "2023-06-01", "Content-Type", "application/json")
	case OpenRouter:
		return request(http.MethodGet, "/openrouter/api/v1/key", "", "Authorization", "Bearer "+key, "Accept", "application/json")
	case DeepSeek:
		return request(http.MethodGet, "/deepseek/user/balance", "", "Authorization", "Bearer "+key, "Accept", "application/json")
	case AzureOpenAI:
		return request(http.MethodPost, "/openai/deployments/m/chat/completions?api-version=2024-10-21", azureBody,
			"Api-Key", key, "Content-Type", "application/json")
	case Gemini:
		return request(http.MethodPost, "/gemini/v1beta/models/m:generateContent", geminiProbe, "X-Goog-Api-Key", key, "Content-Type", "application/json")
	}
	return request(http.MethodPost, "/"+string(d)+"/v1/chat/completions", chatBody(`,"`+capFields[d]+`":1`),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
}

// azureBody is Azure's probe: the deployment is in the path.
const azureBody = `{"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1}`

// errorID is what identifies an error body in d's shape.
func errorID(d Dialect, body []byte) string {
	if d == XAI { // {"code","error"}, both strings
		var b struct{ Code, Error string }
		if err := json.Unmarshal(body, &b); err != nil || b.Error == "" {
			return "not xAI's shape: " + string(body)
		}
		return b.Code
	}
	var b struct {
		Type  string
		Code  any
		Error struct {
			Type   string
			Code   any
			Status string
		}
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "not JSON: " + string(body)
	}
	switch d {
	case Cerebras:
		return fmt.Sprint(b.Code)
	case Anthropic:
		return b.Type + ":" + b.Error.Type
	case OpenRouter, AzureOpenAI:
		return fmt.Sprint(b.Error.Code)
	case Gemini:
		return fmt.Sprint(b.Error.Code, " ", b.Error.Status)
	}
	return fmt.Sprint(b.Error.Type, "/", b.Error.Code)
}

// openAIStyle are the headers of OpenAI's shape: limit, remaining and
// reset of requests and of tokens.
func openAIStyle(requests, tokens [3]string) map[string]string {
	want := map[string]string{"Content-Type": "application/json"}
	for i, field := range []string{"Limit", "Remaining", "Reset"} {
		want["X-Ratelimit-"+field+"-Requests"], want["X-Ratelimit-"+field+"-Tokens"] = requests[i], tokens[i]
	}
	return want
}

// headerMismatches lists the headers of h that differ from want; exact:
// also those that h has and want has not.
func headerMismatches(h http.Header, want map[string]string, exact bool) []string {
	var mismatches []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if got := h.Get(name); got != want[name] {
			mismatches = append(mismatches, fmt.Sprintf("%s = %q, want %q", name, got, want[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(h)) {
		if _, ok := want[name]; exact && !ok {
			mismatches = append(mismatches, fmt.Sprintf("unexpected header %s: %q", name, h.Get(name)))
		}
	}
	return mismatches
}

type refusal struct {
	name   string
	req    *http.Request
	status int
	id     string // errorID of the body
}

// chatRefusals are the malformed probes every chat dialect refuses.
func chatRefusals(d Dialect) []refusal {
	path := "/" + string(d) + "/v1/chat/completions"
	good := chatBody(`,"` + capFields[d] + `":1`)
	otherCap := map[string]string{"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}[capFields[d]]
	bearer := []string{"Authorization", "Bearer " + simKey}
	invalid, unauthorized, ids := http.StatusBadRequest, http.StatusUnauthorized, map[string]string{
		"401": "invalid_request_error/invalid_api_key", "400": "invalid_request_error/<nil>", "model": "invalid_request_error/model_not_found",
		"404": "invalid_request_error/not_found", "405": "invalid_request_error/method_not_allowed",
	}
	switch d {
	case Mistral:
		invalid = http.StatusUnprocessableEntity
	case Cerebras:
		ids = map[string]string{"401": "wrong_api_key", "400": "invalid_request", "model": "model_not_found", "404": "not_found", "405": "method_not_allowed"}
	case XAI:
		// xAI answers a wrong key with 400, as it does a bad argument.
		unauthorized = http.StatusBadRequest
		ids = map[string]string{"401": grpcDescriptions[400], "400": grpcDescriptions[400], "model": grpcDescriptions[404],
			"404": grpcDescriptions[404], "405": grpcDescriptions[405]}
	}
	return []refusal{
		{"no key", request(http.MethodPost, path, good), unauthorized, ids["401"]},
		{"x-api-key instead of Bearer", request(http.MethodPost, path, good, "X-Api-Key", simKey), unauthorized, ids["401"]},
		{"key without Bearer", request(http.MethodPost, path, good, "Authorization", simKey), unauthorized, ids["401"]},
		{"wrong key", request(http.MethodPost, path, good, "Authorization", "Bearer sk-sim-wrong"), unauthorized, ids["401"]},
		{"GET", request(http.MethodGet, path, "", bearer...), 405, ids["405"]},
		{"wrong path", request(http.MethodPost, "/v1/completions", good, bearer...), 404, ids["404"]},
		{"not JSON", request(http.MethodPost, path, "model=m", bearer...), invalid, ids["400"]},
		{"no model", request(http.MethodPost, path, `{"messages":[{"role":"user","content":"Hi"}]}`, bearer...), invalid, ids["400"]},
		{"no messages", request(http.MethodPost, path, `{"model":"m"}`, bearer...), invalid, ids["400"]},
		{"empty messages", request(http.MethodPost, path, `{"model":"m","messages":[]}`, bearer...), invalid, ids["400"]},
		{"unknown role", request(http.MethodPost, path, `{"model":"m","messages":[{"role":"robot","content":"Hi"}]}`, bearer...), invalid, ids["400"]},
		{"unknown field", request(http.MethodPost, path, chatBody(`,"foo":1`), bearer...), invalid, ids["400"]},
		{"the other cap field", request(http.MethodPost, path, chatBody(`,"`+otherCap+`":1`), bearer...), invalid, ids["400"]},
		{"zero cap", request(http.MethodPost, path, chatBody(`,"`+capFields[d]+`":0`), bearer...), invalid, ids["400"]},
		{"stream_options without a stream", request(http.MethodPost, path, chatBody(`,"stream_options":{"include_usage":true}`), bearer...), invalid, ids["400"]},
		{"stream not a boolean", request(http.MethodPost, path, chatBody(`,"stream":"yes"`), bearer...), invalid, ids["400"]},
		{"unknown model", request(http.MethodPost, path, `{"model":"other","messages":[{"role":"user","content":"Hi"}]}`, bearer...), 404, ids["model"]},
	}
}

func TestDialects(t *testing.T) {
	const path = "/anthropic/v1/messages"
	apiKey, version := []string{"X-Api-Key", simKey}, []string{"Anthropic-Version", "2023-06-01"}
	anthropicBody := `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`
	for _, tc := range []struct {
		dialect Dialect
		limits  Limits
		// want is every header of the answer to one probe: 9 prompt tokens
		// ("Hi"), 1 completion token, at start.
		want    map[string]string
		refused []refusal
		// After Exhaust: the 429's error, Retry-After, and a header that
		// shows the empty bucket.
		limited, retryAfter, emptyHeader string
	}{{
		dialect: Cerebras,
		limits:  Limits{"requests": {"minute": 8, "day": 1024}, "tokens": {"minute": 640, "month": 1e6}},
		want: map[string]string{
			"Content-Type":                          "application/json",
			"X-Ratelimit-Limit-Requests-Minute":     "8",
			"X-Ratelimit-Remaining-Requests-Minute": "7",
			"X-Ratelimit-Reset-Requests-Minute":     "7.5",
			"X-Ratelimit-Limit-Requests-Day":        "1024",
			"X-Ratelimit-Remaining-Requests-Day":    "1023",
			"X-Ratelimit-Reset-Requests-Day":        "84.375",
			"X-Ratelimit-Limit-Tokens-Minute":       "640",
			"X-Ratelimit-Remaining-Tokens-Minute":   "630",
			"X-Ratelimit-Reset-Tokens-Minute":       "0.9375",
		},
		limited: "request_quota_exceeded", retryAfter: "85", emptyHeader: "X-Ratelimit-Remaining-Requests-Minute",
	}, {
		// Both pairs show the minute window when the key has one.
		dialect: OpenAI,
		limits:  Limits{"requests": {"minute": 8, "day": 1024}, "tokens": {"minute": 640, "day": 1e6}},
		want:    openAIStyle([3]string{"8", "7", "7.5s"}, [3]string{"640", "630", "938ms"}),
		limited: "requests/rate_limit_exceeded", retryAfter: "85", emptyHeader: "X-Ratelimit-Remaining-Requests",
	}, {
		dialect: Groq,
		limits:  Limits{"requests": {"minute": 8, "day": 1024}, "tokens": {"minute": 640}},
		want:    openAIStyle([3]string{"1024", "1023", "1m24.375s"}, [3]string{"640", "630", "938ms"}),
		limited: "requests/rate_limit_exceeded", retryAfter: "85", emptyHeader: "X-Ratelimit-Remaining-Requests",
	}, {
		dialect: Mistral,
		limits:  Limits{"requests": {"minute": 8}, "tokens": {"minute": 640, "month": 1e6}},
		want: map[string]string{
			"Content-Type":                        "application/json",
			"X-Ratelimit-Limit-Req-Minute":        "8",
			"X-Ratelimit-Remaining-Req-Minute":    "7",
			"X-Ratelimit-Limit-Tokens-Minute":     "640",
			"X-Ratelimit-Remaining-Tokens-Minute": "630",
			"X-Ratelimit-Limit-Tokens-Month":      "1000000",
			"X-Ratelimit-Remaining-Tokens-Month":  "999990",
		},
		limited: "requests/rate_limit_exceeded", retryAfter: "8", emptyHeader: "X-Ratelimit-Remaining-Req-Minute",
	}, {
		dialect: Together,
		limits:  Limits{"requests": {"minute": 8, "hour": 100}, "tokens": {"minute": 640}},
		want: map[string]string{
			"Content-Type":           "application/json",
			"X-Ratelimit-Limit":      "8",
			"X-Ratelimit-Remaining":  "7",
			"X-Ratelimit-Reset":      "8",
			"X-Tokenlimit-Limit":     "640",
			"X-Tokenlimit-Remaining": "630",
		},
		limited: "requests/rate_limit_exceeded", retryAfter: "36", emptyHeader: "X-Ratelimit-Remaining",
	}, {
		// Prompt and completion tokens are spent from their own buckets.
		dialect: Fireworks,
		limits:  Limits{"requests": {"minute": 8}, "tokens_prompt": {"minute": 640}, "tokens_generated": {"minute": 64}},
		want: map[string]string{
			"Content-Type":                           "application/json",
			"X-Ratelimit-Limit-Requests":             "8",
			"X-Ratelimit-Remaining-Requests":         "7",
			"X-Ratelimit-Limit-Tokens-Prompt":        "640",
			"X-Ratelimit-Remaining-Tokens-Prompt":    "631",
			"X-Ratelimit-Limit-Tokens-Generated":     "64",
			"X-Ratelimit-Remaining-Tokens-Generated": "63",
			"X-Ratelimit-Over-Limit":                 "no",
		},
		limited: "requests/rate_limit_exceeded", retryAfter: "8", emptyHeader: "X-Ratelimit-Remaining-Requests",
	}, {
		dialect: SambaNova,
		limits:  Limits{"requests": {"minute": 8, "day": 1024}},
		want: map[string]string{
			"Content-Type":                       "application/json",
			"X-Ratelimit-Limit-Requests":         "8",
			"X-Ratelimit-Remaining-Requests":     "7",
			"X-Ratelimit-Reset-Requests":         "8",
			"X-Ratelimit-Limit-Requests-Day":     "1024",
			"X-Ratelimit-Remaining-Requests-Day": "1023",
			"X-Ratelimit-Reset-Requests-Day":     "85",
		},
		limited: "requests/rate_limit_exceeded", retryAfter: "85", emptyHeader: "X-Ratelimit-Remaining-Requests-Day",
	}, {
		dialect: Anthropic,
		limits: Limits{"requests": {"minute": 8}, "tokens": {"minute": 640},
			"input_tokens": {"minute": 512}, "output_tokens": {"minute": 64}},
		want: map[string]string{
			"Content-Type":                                "application/json",
			"Date":                                        "Wed, 18 Nov 2026 11:06:40 GMT",
			"Anthropic-Ratelimit-Requests-Limit":          "8",
			"Anthropic-Ratelimit-Requests-Remaining":      "7",
			"Anthropic-Ratelimit-Requests-Reset":          "2026-11-18T11:06:48Z", // 7.5s, rounded up
			"Anthropic-Ratelimit-Tokens-Limit":            "640",
			"Anthropic-Ratelimit-Tokens-Remaining":        "630",
			"Anthropic-Ratelimit-Tokens-Reset":            "2026-11-18T11:06:41Z", // 0.9375s
			"Anthropic-Ratelimit-Input-Tokens-Limit":      "512",
			"Anthropic-Ratelimit-Input-Tokens-Remaining":  "503",
			"Anthropic-Ratelimit-Input-Tokens-Reset":      "2026-11-18T11:06:42Z", // 1.0546875s
			"Anthropic-Ratelimit-Output-Tokens-Limit":     "64",
			"Anthropic-Ratelimit-Output-Tokens-Remaining": "63",
			"Anthropic-Ratelimit-Output-Tokens-Reset":     "2026-11-18T11:06:41Z",
		},
		refused: []refusal{
			{"Bearer instead of x-api-key", request(http.MethodPost, path, anthropicBody, "Authorization", "Bearer "+simKey, version[0], version[1]), 401, "error:authentication_error"},
			{"wrong key", request(http.MethodPost, path, anthropicBody, "X-Api-Key", "sk-sim-wrong", version[0], version[1]), 401, "error:authentication_error"},
			{"no anthropic-version", request(http.MethodPost, path, anthropicBody, apiKey...), 400, "error:invalid_request_error"},
			{"unknown anthropic-version", request(http.MethodPost, path, anthropicBody, apiKey[0], apiKey[1], version[0], "2020-01-01"), 400, "error:invalid_request_error"},
			{"no max_tokens", request(http.MethodPost, path, `{"model":"m","messages":[{"role":"user","content":"Hi"}]}`, apiKey[0], apiKey[1], version[0], version[1]), 400, "error:invalid_request_error"},
			{"max_completion_tokens", request(http.MethodPost, path, `{"model":"m","max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`, apiKey[0], apiKey[1], version[0], version[1]), 400, "error:invalid_request_error"},
			{"unknown field", request(http.MethodPost, path, `{"model":"m","max_tokens":1,"foo":1,"messages":[{"role":"user","content":"Hi"}]}`, apiKey[0], apiKey[1], version[0], version[1]), 400, "error:invalid_request_error"},
			{"system role in messages", request(http.MethodPost, path, `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"Hi"}]}`, apiKey[0], apiKey[1], version[0], version[1]), 400, "error:invalid_request_error"},
			{"not JSON", request(http.MethodPost, path, `{`, apiKey[0], apiKey[1], version[0], version[1]), 400, "error:invalid_request_error"},
			{"unknown model", request(http.MethodPost, path, `{"model":"other","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`, apiKey[0], apiKey[1], version[0], version[1]), 404, "error:not_found_error"},
			{"chat completions path", request(http.MethodPost, "/anthropic/v1/chat/completions", anthropicBody, apiKey[0], apiKey[1], version[0], version[1]), 404, "error:not_found_error"},
			{"GET", request(http.MethodGet, path, "", apiKey[0], apiKey[1], version[0], version[1]), 405, "error:invalid_request_error"},
		},
		limited: "error:rate_limit_error", retryAfter: "8", emptyHeader: "Anthropic-Ratelimit-Requests-Remaining",
	}, {
		// The key endpoint is free: no headers, nothing spent.
		dialect: OpenRouter,
		limits:  Limits{"credits": {"month": 25}, "free_model_requests": {"day": 50}},
		want:    map[string]string{"Content-Type": "application/json"},
		refused: []refusal{
			{"wrong key", request(http.MethodGet, "/api/v1/key", "", "Authorization", "Bearer sk-sim-wrong"), 401, "401"},
			{"no key", request(http.MethodGet, "/api/v1/key", ""), 401, "401"},
			{"x-api-key", request(http.MethodGet, "/api/v1/key", "", "X-Api-Key", simKey), 401, "401"},
			{"POST", request(http.MethodPost, "/api/v1/key", "{}", "Authorization", "Bearer "+simKey), 405, "405"},
			{"chat completions", request(http.MethodPost, "/api/v1/chat/completions", chatBody(""), "Authorization", "Bearer "+simKey), 404, "404"},
		},
	}, {
		// The key's shortest windows, as OpenAI's shape.
		dialect: XAI,
		limits:  Limits{"requests": {"minute": 8, "day": 1024}, "tokens": {"minute": 640, "day": 1e6}},
		want:    openAIStyle([3]string{"8", "7", "7.5s"}, [3]string{"640", "630", "938ms"}),
		limited: grpcDescriptions[429], retryAfter: "85", emptyHeader: "X-Ratelimit-Remaining-Requests",
	}, {
		// The balance endpoint is free: no headers, nothing spent.
		dialect: DeepSeek,
		limits:  Limits{"requests": {"minute": 1}},
		want:    map[string]string{"Content-Type": "application/json"},
		refused: []refusal{
			{"wrong key", request(http.MethodGet, "/user/balance", "", "Authorization", "Bearer sk-sim-wrong"), 401, "authentication_error/invalid_request_error"},
			{"no key", request(http.MethodGet, "/user/balance", ""), 401, "authentication_error/invalid_request_error"},
			{"x-api-key", request(http.MethodGet, "/user/balance", "", "X-Api-Key", simKey), 401, "authentication_error/invalid_request_error"},
			{"POST", request(http.MethodPost, "/user/balance", "{}", "Authorization", "Bearer "+simKey), 405, "invalid_request_error/invalid_request_error"},
			{"chat completions", request(http.MethodPost, "/chat/completions", chatBody(""), "Authorization", "Bearer "+simKey), 404, "invalid_request_error/invalid_request_error"},
		},
	}, {
		// Remaining of the minute windows only: no limit, no reset until a 429.
		dialect: AzureOpenAI,
		limits:  Limits{"requests": {"minute": 8, "day": 1024}, "tokens": {"minute": 640}},
		want: map[string]string{
			"Content-Type":                   "application/json",
			"X-Ratelimit-Remaining-Requests": "7",
			"X-Ratelimit-Remaining-Tokens":   "630",
		},
		refused: azureRefusals(),
		limited: "429", retryAfter: "85", emptyHeader: "X-Ratelimit-Remaining-Requests",
	}} {
		t.Run(string(tc.dialect), func(t *testing.T) {
			s := NewDialect(tc.dialect, "m")
			s.SetClock(func() time.Time { return start })
			s.AddKey(simKey, tc.limits)
			if s.Dialect() != tc.dialect {
				t.Errorf("Dialect() = %q", s.Dialect())
			}

			r := dialectProbe(tc.dialect, simKey)
			w := serve(s, r)
			if w.Code != 200 {
				t.Fatalf("probe: %d %s", w.Code, w.Body)
			}
			for _, mismatch := range headerMismatches(w.Header(), tc.want, true) {
				t.Error(mismatch)
			}

			e, ok := s.LastExchange(simKey)
			sent, _ := io.ReadAll(dialectProbe(tc.dialect, simKey).Body)
			if !ok || e.Method != r.Method || e.Path != r.URL.Path || e.Status != 200 || !bytes.Equal(e.Body, sent) ||
				!bytes.Equal(e.ResponseBody, w.Body.Bytes()) || !maps.EqualFunc(e.ResponseHeader, w.Header(), slices.Equal) {
				t.Errorf("LastExchange = %+v, %v", e, ok)
			}
			if e.Query != r.URL.RawQuery {
				t.Errorf("LastExchange query %q, want %q", e.Query, r.URL.RawQuery)
			}
			if e.Header.Get("Authorization") != "" || e.Header.Get("X-Api-Key") != "" || e.Header.Get("Api-Key") != "" || len(e.Header) == 0 {
				t.Errorf("LastExchange kept the key, or no headers: %v", e.Header)
			}

			refused := tc.refused
			if _, chat := capFields[tc.dialect]; chat {
				refused = chatRefusals(tc.dialect)
			}
			for _, ref := range refused {
				w := serve(s, ref.req)
				if w.Code != ref.status || errorID(tc.dialect, w.Body.Bytes()) != ref.id {
					t.Errorf("%s: %d %s, want %d %s", ref.name, w.Code, w.Body, ref.status, ref.id)
				}
				if tc.dialect == Anthropic && w.Header().Get("Date") != tc.want["Date"] {
					t.Errorf("%s: Date %q", ref.name, w.Header().Get("Date"))
				}
			}

			if tc.limited == "" {
				return
			}
			s.Exhaust(simKey, "m")
			w = serve(s, dialectProbe(tc.dialect, simKey))
			if w.Code != 429 || errorID(tc.dialect, w.Body.Bytes()) != tc.limited ||
				w.Header().Get("Retry-After") != tc.retryAfter || w.Header().Get(tc.emptyHeader) != "0" {
				t.Errorf("exhausted: %d %s Retry-After %q %s %q", w.Code, w.Body, w.Header().Get("Retry-After"), tc.emptyHeader, w.Header().Get(tc.emptyHeader))
			}
			if tc.dialect == Fireworks && w.Header().Get("X-Ratelimit-Over-Limit") != "yes" {
				t.Errorf("exhausted: X-Ratelimit-Over-Limit %q", w.Header().Get("X-Ratelimit-Over-Limit"))
			}
		})
	}
}

// Chat dialects accept what a plain client sends besides the probe's
// fields: stream false (the exporter sends it), a temperature, content as
// a list of parts, a null cap (16 tokens then).
// An OpenAI key limited in tokens per day only shows that day, as real
// responses resetting in 24h6m34s do.
func TestOpenAITokensPerDay(t *testing.T) {
	s := NewDialect(OpenAI, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, Limits{"requests": {"minute": 8}, "tokens": {"day": 1e6}})
	w := serve(s, dialectProbe(OpenAI, simKey))
	want := openAIStyle([3]string{"8", "7", "7.5s"}, [3]string{"1000000", "999990", "864ms"})
	for _, mismatch := range headerMismatches(w.Header(), want, true) {
		t.Error(mismatch)
	}
}

func TestChatAccepts(t *testing.T) {
	for d, capField := range capFields {
		s := NewDialect(d, "m")
		s.AddKey(simKey, Limits{"requests": {"minute": 100}})
		for body, completion := range map[string]string{
			chatBody(`,"` + capField + `":2,"stream":false,"temperature":0`):                                                            `"completion_tokens":2,`,
			`{"model":"m","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"Hi"}]}]}`: `"completion_tokens":16,`,
			chatBody(`,"` + capField + `":null`):                                                                                        `"completion_tokens":16,`,
		} {
			w := serve(s, request(http.MethodPost, "/v1/chat/completions", body, "Authorization", "Bearer "+simKey))
			if w.Code != 200 || !strings.Contains(w.Body.String(), completion) {
				t.Errorf("%s %s: %d %s", d, body, w.Code, w.Body)
			}
		}
	}
}
