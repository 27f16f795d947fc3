package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
)

// azureRefusals are the malformed probes Azure refuses, each as Azure does.
func azureRefusals() []refusal {
	const path = "/openai/deployments/m/chat/completions?api-version=2024-10-21"
	apiKey := []string{"Api-Key", simKey}
	return []refusal{
		{"no key", request(http.MethodPost, path, azureBody), 401, "401"},
		{"wrong key", request(http.MethodPost, path, azureBody, "Api-Key", "az-wrong"), 401, "401"},
		{"x-api-key", request(http.MethodPost, path, azureBody, "X-Api-Key", simKey), 401, "401"},
		{"no api-version", request(http.MethodPost, "/openai/deployments/m/chat/completions", azureBody, apiKey...), 404, "404"},
		{"an api-version that is none", request(http.MethodPost, "/openai/deployments/m/chat/completions?api-version=latest", azureBody, apiKey...), 400, "BadRequest"},
		{"OpenAI's path", request(http.MethodPost, "/v1/chat/completions?api-version=2024-10-21", chatBody(`,"max_completion_tokens":1`), apiKey...), 404, "404"},
		{"no deployment", request(http.MethodPost, "/openai/deployments//chat/completions?api-version=2024-10-21", azureBody, apiKey...), 404, "404"},
		{"unknown deployment", request(http.MethodPost, "/openai/deployments/other/chat/completions?api-version=2024-10-21", azureBody, apiKey...), 404, "DeploymentNotFound"},
		{"GET", request(http.MethodGet, path, "", apiKey...), 405, "405"},
		{"max_tokens", request(http.MethodPost, path, `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1}`, apiKey...), 400, "BadRequest"},
		{"no messages", request(http.MethodPost, path, `{"max_completion_tokens":1}`, apiKey...), 400, "BadRequest"},
		{"a model that is no name", request(http.MethodPost, path, `{"model":1,"messages":[{"role":"user","content":"Hi"}]}`, apiKey...), 400, "BadRequest"},
		{"v1 without a model", request(http.MethodPost, "/openai/v1/chat/completions", azureBody, apiKey...), 400, "BadRequest"},
		{"v1 with an unknown deployment", request(http.MethodPost, "/openai/v1/chat/completions", `{"model":"other","messages":[{"role":"user","content":"Hi"}]}`, apiKey...), 404, "DeploymentNotFound"},
	}
}

// Azure serves a deployment on its v1 API too, to an api-key or an Entra
// ID token; a deployment's path ignores the body's model, as Azure does.
func TestAzureEndpointsAndCredentials(t *testing.T) {
	s := NewDialect(AzureOpenAI, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	for _, tc := range []struct {
		name      string
		r         *http.Request
		remaining string
	}{
		{"v1 with an api-key", request(http.MethodPost, "/openai/v1/chat/completions", chatBody(`,"max_completion_tokens":1`), "Api-Key", simKey), "7"},
		{"an Entra ID token", dialectProbe(AzureOpenAI, ""), "6"},
		{"v1 with an Entra ID token", request(http.MethodPost, "/openai/v1/chat/completions", chatBody(""), "Authorization", "Bearer "+simKey), "5"},
		{"a preview api-version, the SDK's body", request(http.MethodPost, "/res/openai/deployments/m/chat/completions?api-version=2025-04-01-preview",
			`{"model":"whatever","messages":[{"role":"user","content":"Hi"}]}`, "Api-Key", simKey), "4"},
	} {
		if tc.name == "an Entra ID token" {
			tc.r.Header.Del("Api-Key")
			tc.r.Header.Set("Authorization", "Bearer "+simKey)
		}
		w := serve(s, tc.r)
		if w.Code != 200 || w.Header().Get("X-Ratelimit-Remaining-Requests") != tc.remaining || !strings.Contains(w.Body.String(), `"model":"m"`) {
			t.Errorf("%s: %d %v %s", tc.name, w.Code, w.Header(), w.Body)
		}
		wantHeader := map[bool]string{true: "Api-Key", false: "Authorization"}[tc.r.Header.Get("Api-Key") != ""]
		if e, ok := s.LastExchange(simKey); !ok || e.KeyHeader != wantHeader || e.Header.Get("Authorization") != "" || e.Header.Get("Api-Key") != "" {
			t.Errorf("%s: LastExchange %+v, %v; want the key in %s", tc.name, e, ok, wantHeader)
		}
	}
}

// A 429 says what the real ones say: the remaining of both windows, their
// resets in whole seconds, retry-after and retry-after-ms, and Azure's
// error body (azure-openai-429.headers).
func TestAzure429(t *testing.T) {
	s := NewDialect(AzureOpenAI, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, Limits{"requests": {"minute": 600}, "tokens": {"minute": 100}})
	s.Consume(simKey, "m", 0, 98.9)
	w := serve(s, dialectProbe(AzureOpenAI, simKey)) // 10 tokens, 8.9 more than are left: 5.34s of refill
	sample := testkit.Headers(t, "azure-openai-429.headers")
	for _, name := range []string{"retry-after", "retry-after-ms", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
		"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} {
		if sample.Get(name) == "" || w.Header().Get(name) == "" {
			t.Errorf("%s: the sample has %q, the simulator sent %q", name, sample.Get(name), w.Header().Get(name))
		}
	}
	want := map[string]string{
		"Content-Type":                   "application/json",
		"Retry-After":                    "6",
		"Retry-After-Ms":                 "5340",
		"X-Ratelimit-Remaining-Requests": "600",
		"X-Ratelimit-Reset-Requests":     "0",
		"X-Ratelimit-Remaining-Tokens":   "1",
		"X-Ratelimit-Reset-Tokens":       "60",
	}
	for _, mismatch := range headerMismatches(w.Header(), want, true) {
		t.Error(mismatch)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); w.Code != 429 || err != nil || body.Error.Code != "429" ||
		!strings.HasPrefix(body.Error.Message, "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded token rate limit") ||
		!strings.Contains(body.Error.Message, "Please retry after 6 seconds.") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// A provisioned (PTU) deployment shows the share of it in use, in percent,
// and nothing else.
func TestAzureProvisionedUtilization(t *testing.T) {
	s := NewDialect(AzureOpenAI, "m")
	s.SetClock(func() time.Time { return start })
	s.AddKey(simKey, Limits{"deployment": {"minute": 1000}})
	s.Consume(simKey, "m", 0, 115)
	w := serve(s, dialectProbe(AzureOpenAI, simKey)) // 10 more tokens
	for _, mismatch := range headerMismatches(w.Header(), map[string]string{
		"Content-Type":                        "application/json",
		"Azure-Openai-Deployment-Utilization": "12.5%",
	}, true) {
		t.Error(mismatch)
	}
	s.Exhaust(simKey, "m") // requests only: a PTU deployment has no request bucket
	s.Consume(simKey, "m", 0, 1000)
	w = serve(s, dialectProbe(AzureOpenAI, simKey))
	if w.Code != 429 || w.Header().Get("Azure-Openai-Deployment-Utilization") != "100%" || w.Header().Get("Retry-After-Ms") != "600" {
		t.Errorf("a full deployment: %d %v", w.Code, w.Header())
	}
}

// The official SDK's Azure client reaches a deployment with an api-key;
// its plain client reaches the v1 API with the deployment as the model.
func TestAzureSDK(t *testing.T) {
	s, url := sdkServer(t, AzureOpenAI, "gpt-4o-mini", Limits{"requests": {"minute": 8}, "tokens": {"minute": 640}})
	params := openai.ChatCompletionNewParams{
		Model:               "gpt-4o-mini",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxCompletionTokens: openai.Int(1),
	}
	azureClient := openai.NewClient(azure.WithEndpoint(url, "2024-10-21"), azure.WithAPIKey(simKey), azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	var resp *http.Response
	completion, err := azureClient.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.LastExchange(simKey)
	if completion.Usage.TotalTokens != 10 || resp.Header.Get("x-ratelimit-remaining-tokens") != "630" ||
		e.Path != "/azure_openai/openai/deployments/gpt-4o-mini/chat/completions" || e.Query != "api-version=2024-10-21" {
		t.Errorf("the Azure client: %+v %v; sent %s?%s", completion.Usage, resp.Header, e.Path, e.Query)
	}

	v1 := openai.NewClient(option.WithBaseURL(url+"/openai/v1"), option.WithAPIKey(simKey), option.WithMaxRetries(0))
	if _, err := v1.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp)); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.LastExchange(simKey); e.Path != "/azure_openai/openai/v1/chat/completions" || resp.Header.Get("x-ratelimit-remaining-requests") != "6" {
		t.Errorf("the v1 API: sent %s, answered %v", e.Path, resp.Header)
	}

	s.Exhaust(simKey, "gpt-4o-mini")
	_, err = azureClient.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "429" ||
		resp.Header.Get("retry-after-ms") == "" || resp.Header.Get("x-ratelimit-reset-requests") == "" {
		t.Errorf("exhausted: %v, %v", err, resp.Header)
	}
}
