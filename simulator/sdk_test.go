package simulator

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// sdkServer serves a simulator of d on loopback, under a prefix, with one
// key.
func sdkServer(t *testing.T, d Dialect, model string, limits Limits) (*Simulator, string) {
	t.Helper()
	s := NewDialect(d, model)
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, limits)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + "/" + string(d)
}

// openAIChat serves d with model and one key, and returns a function that
// sends it, through openai-go, a chat completion capped as capped sets.
func openAIChat(t *testing.T, d Dialect, model string, limits Limits) (*Simulator, func(key string, capped func(*openai.ChatCompletionNewParams)) (*openai.ChatCompletion, *http.Response, error)) {
	s, url := sdkServer(t, d, model, limits)
	return s, func(key string, capped func(*openai.ChatCompletionNewParams)) (*openai.ChatCompletion, *http.Response, error) {
		client := openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
		params := openai.ChatCompletionNewParams{
			Model:    model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		}
		capped(&params)
		var resp *http.Response
		completion, err := client.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
		return completion, resp, err
	}
}

func maxCompletionTokens(p *openai.ChatCompletionNewParams) { p.MaxCompletionTokens = openai.Int(1) }
func maxTokens(p *openai.ChatCompletionNewParams)           { p.MaxTokens = openai.Int(1) }

func TestOpenAISDK(t *testing.T) {
	s, send := openAIChat(t, OpenAI, "gpt-4o-mini", Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	completion, resp, err := send(simKey, maxCompletionTokens)
	if err != nil {
		t.Fatal(err)
	}
	if u := completion.Usage; u.PromptTokens != 9 || u.CompletionTokens != 1 || u.TotalTokens != 10 {
		t.Errorf("usage %+v", u)
	}
	for _, mismatch := range headerMismatches(resp.Header, openAIStyle([3]string{"8", "7", "7.5s"}, [3]string{"640", "630", "938ms"}), false) {
		t.Error(mismatch)
	}
	if e, _ := s.LastExchange(simKey); !strings.Contains(string(e.Body), `"max_completion_tokens":1`) {
		t.Errorf("the SDK sent %s", e.Body)
	}

	s.Exhaust(simKey, "gpt-4o-mini")
	_, resp, err = send(simKey, maxCompletionTokens)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" {
		t.Errorf("exhausted: %v", err)
	}
	if resp == nil || resp.Header.Get("x-ratelimit-remaining-requests") != "0" || resp.Header.Get("x-ratelimit-limit-tokens") != "640" ||
		resp.Header.Get("retry-after") != "8" {
		t.Errorf("exhausted: the SDK saw %v", resp)
	}

	s.RevokeKey(simKey)
	_, _, err = send(simKey, maxCompletionTokens)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Errorf("revoked: %v", err)
	}
}

// Groq documents max_tokens: the SDK's MaxTokens gets an answer, its
// MaxCompletionTokens a 400.
func TestOpenAISDKWithGroq(t *testing.T) {
	s, send := openAIChat(t, Groq, "llama-3.1-8b-instant", Limits{"requests": {"day": 1024}, "tokens": {"minute": 640}})
	completion, resp, err := send(simKey, maxTokens)
	if err != nil {
		t.Fatal(err)
	}
	if u := completion.Usage; u.PromptTokens != 9 || u.CompletionTokens != 1 {
		t.Errorf("usage %+v", u)
	}
	if got := resp.Header.Get("x-ratelimit-reset-requests"); got != "1m24.375s" {
		t.Errorf("x-ratelimit-reset-requests = %q", got)
	}

	_, _, err = send(simKey, maxCompletionTokens)
	var apiErr *openai.Error
	if e, _ := s.LastExchange(simKey); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 ||
		!strings.Contains(string(e.Body), `"max_completion_tokens":1`) || strings.Contains(string(e.Body), `"max_tokens"`) {
		t.Errorf("max_completion_tokens to Groq: %v, sent %s", err, e.Body)
	}
}

// xAI through the OpenAI SDK, as its docs advise: the answer and its
// headers; a wrong key is xAI's 400.
func TestOpenAISDKWithXAI(t *testing.T) {
	s, send := openAIChat(t, XAI, "grok-4.20-0309-non-reasoning", Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	completion, resp, err := send(simKey, maxCompletionTokens)
	if err != nil {
		t.Fatal(err)
	}
	if u := completion.Usage; u.PromptTokens != 9 || u.CompletionTokens != 1 {
		t.Errorf("usage %+v", u)
	}
	for _, mismatch := range headerMismatches(resp.Header, openAIStyle([3]string{"8", "7", "7.5s"}, [3]string{"640", "630", "938ms"}), false) {
		t.Error(mismatch)
	}
	// xAI's error is no OpenAI error body: the SDK fails to read it, as
	// users of xAI have seen.
	s.RevokeKey(simKey)
	_, resp, err = send(simKey, maxCompletionTokens)
	if e, _ := s.LastExchange(simKey); err == nil || resp == nil || resp.StatusCode != 400 || !strings.Contains(string(e.ResponseBody), "Incorrect API key provided") {
		t.Errorf("revoked: %v, %v", resp, err)
	}
}

func TestAnthropicSDK(t *testing.T) {
	params := anthropic.MessageNewParams{
		Model:     "claude-haiku-4-5",
		MaxTokens: 1,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))},
	}
	s, url := sdkServer(t, Anthropic, "claude-haiku-4-5", Limits{"requests": {"minute": 8}, "tokens": {"minute": 640},
		"input_tokens": {"minute": 512}, "output_tokens": {"minute": 64}})
	send := func(key string, opts ...anthropicoption.RequestOption) (*anthropic.Message, error) {
		client := anthropic.NewClient(anthropicoption.WithBaseURL(url), anthropicoption.WithAPIKey(key), anthropicoption.WithMaxRetries(0))
		return client.Messages.New(context.Background(), params, opts...)
	}
	var resp *http.Response
	msg, err := send(simKey, anthropicoption.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.InputTokens != 9 || msg.Usage.OutputTokens != 1 || msg.StopReason != "max_tokens" {
		t.Errorf("message %+v", msg)
	}
	for _, mismatch := range headerMismatches(resp.Header, map[string]string{
		"anthropic-ratelimit-requests-remaining":      "7",
		"anthropic-ratelimit-input-tokens-remaining":  "503",
		"anthropic-ratelimit-output-tokens-remaining": "63",
		"anthropic-ratelimit-tokens-remaining":        "630",
	}, false) {
		t.Error(mismatch)
	}
	// Reset seconds are reset − Date, both on the simulator's clock.
	date, err1 := http.ParseTime(resp.Header.Get("Date"))
	reset, err2 := time.Parse(time.RFC3339, resp.Header.Get("anthropic-ratelimit-requests-reset"))
	if err1 != nil || err2 != nil || reset.Sub(date) != 8*time.Second {
		t.Errorf("Date %q, reset %q: %v %v", resp.Header.Get("Date"), resp.Header.Get("anthropic-ratelimit-requests-reset"), err1, err2)
	}

	var apiErr *anthropic.Error
	_, err = send("sk-sim-wrong")
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type() != "authentication_error" {
		t.Errorf("wrong key: %v", err)
	}
	s.Exhaust(simKey, "claude-haiku-4-5")
	_, err = send(simKey, anthropicoption.WithResponseInto(&resp))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" {
		t.Errorf("exhausted: %v", err)
	}
	if resp == nil || resp.Header.Get("retry-after") != "8" || resp.Header.Get("anthropic-ratelimit-requests-remaining") != "0" {
		t.Errorf("exhausted: the SDK saw %v", resp)
	}
}

// A subscription's OAuth token through the official SDK, as Claude Code
// sends it: an auth token (Bearer) and the oauth beta.
func TestAnthropicSDKWithASubscription(t *testing.T) {
	const token = "sk-ant-oat01-sim-0123456789abcdef0123456789"
	s, url := sdkServer(t, Anthropic, "claude-haiku-4-5", nil)
	s.AddKey(token, Limits{"unified": {"5h": 1000, "7d": 10000}})
	s.SetSubscription(token, true)
	client := anthropic.NewClient(anthropicoption.WithoutEnvironmentDefaults(), anthropicoption.WithBaseURL(url),
		anthropicoption.WithAuthToken(token), anthropicoption.WithHeader("anthropic-beta", oauthBeta), anthropicoption.WithMaxRetries(0))
	send := func() (*http.Response, error) {
		var resp *http.Response
		_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
			Model:     "claude-haiku-4-5",
			MaxTokens: 1,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))},
		}, anthropicoption.WithResponseInto(&resp))
		return resp, err
	}
	resp, err := send()
	if err != nil {
		t.Fatal(err)
	}
	for _, mismatch := range headerMismatches(resp.Header, map[string]string{
		"anthropic-ratelimit-unified-5h-utilization":       "0.01",
		"anthropic-ratelimit-unified-5h-status":            "allowed",
		"anthropic-ratelimit-unified-7d-utilization":       "0",
		"anthropic-ratelimit-unified-status":               "allowed",
		"anthropic-ratelimit-unified-representative-claim": "five_hour",
	}, false) {
		t.Error(mismatch)
	}
	if e, _ := s.LastExchange(token); e.Header.Get("Authorization") != "" || e.Header.Get("X-Api-Key") != "" {
		t.Errorf("the SDK sent %v", e.Header)
	}

	s.Consume(token, "claude-haiku-4-5", 0, 1000)
	resp, err = send()
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" {
		t.Errorf("five hours spent: %v", err)
	}
	if resp == nil || resp.Header.Get("anthropic-ratelimit-unified-5h-status") != "rejected" || resp.Header.Get("anthropic-ratelimit-unified-status") != "rejected" {
		t.Errorf("five hours spent: the SDK saw %v", resp)
	}
}
