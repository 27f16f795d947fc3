package provider

import (
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// The probe of a deployment asks for the key's api-version on the
// deployment's path, or for the deployment by name on the v1 API.
func TestAzureProbeRequest(t *testing.T) {
	azure := lookup(t, "azure_openai")
	const base = "https://contoso.openai.azure.com"
	for _, tc := range []struct {
		name    string
		options Options
		url     string
		body    string
	}{
		{"the GA api-version", Options{},
			base + "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
			`{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`},
		{"a preview", Options{APIVersion: "2025-04-01-preview"},
			base + "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-04-01-preview",
			`{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`},
		{"the v1 API", Options{APIVersion: "v1"},
			base + "/openai/v1/chat/completions",
			`{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}],"model":"gpt-4o-mini"}`},
	} {
		r := azure.Probe.Request(base, "gpt-4o-mini", tc.options)
		if r.Method != http.MethodPost || r.URL != tc.url || string(r.Body) != tc.body ||
			!reflect.DeepEqual(r.Header, http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}) {
			t.Errorf("%s: %s %s %s %v\nwant POST %s %s", tc.name, r.Method, r.URL, r.Body, r.Header, tc.url, tc.body)
		}
	}
	if azure.Probe.Free() || azure.BaseURL != "" || azure.Model != "" || azure.APIVersion != AzureAPIVersion {
		t.Errorf("azure_openai is declared %+v", azure)
	}
}

// An API key goes in api-key, a Microsoft Entra ID token in Authorization,
// whatever the provider.
func TestAuthorize(t *testing.T) {
	for _, tc := range []struct {
		provider string
		options  Options
		want     http.Header
	}{
		{"azure_openai", Options{}, http.Header{"Api-Key": {"k"}}},
		{"azure_openai", Options{BearerToken: true}, http.Header{"Authorization": {"Bearer k"}}},
		{"anthropic", Options{}, http.Header{"X-Api-Key": {"k"}}},
		{"cerebras", Options{}, http.Header{"Authorization": {"Bearer k"}}},
	} {
		got := http.Header{}
		lookup(t, tc.provider).Authorize(got, "k", tc.options)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %+v: %v, want %v", tc.provider, tc.options, got, tc.want)
		}
	}
}

// The proxy reads a deployment from Azure's paths, under any route prefix;
// from the v1 API's, none (the body's model names it). A deployment no
// label should show is named but not read: the body's model is not the
// one Azure serves on these paths.
func TestAzureDeploymentInPath(t *testing.T) {
	modelInPath := lookup(t, "azure_openai").ModelInPath
	type reading struct {
		model string
		named bool
	}
	for path, want := range map[string]reading{
		"/openai/deployments/gpt-4o-mini/chat/completions":                                             {"gpt-4o-mini", true},
		"/azure/eu/openai/deployments/my_deploy.v2/embeddings":                                         {"my_deploy.v2", true},
		"/openai/deployments/gpt-4o/audio/transcriptions":                                              {"gpt-4o", true},
		"/openai/v1/chat/completions":                                                                  {},
		"/openai/deployments/":                                                                         {},
		"/openai/deployments/gpt-4o":                                                                   {},
		"/openai/deployments//chat/completions":                                                        {"", true},
		"/openai/deployments/has space/chat/completions":                                               {"", true},
		"/openai/deployments/nul\x00/chat/completions":                                                 {"", true},
		"/openai/deployments/ünïcode/chat/completions":                                                 {"", true},
		"/openai/deployments/" + string(make([]byte, 65)) + "/x":                                       {"", true},
		"/openai/deployments/" + "d123456789d123456789d123456789d123456789d123456789d123456789d1234/x": {"", true},
	} {
		if model, named := modelInPath(path); model != want.model || named != want.named {
			t.Errorf("%q: %q, %v; want %+v", path, model, named, want)
		}
	}
	if got, ok := modelInPath("/openai/deployments/" + "d123456789d123456789d123456789d123456789d123456789d123456789d123/x"); !ok || len(got) != 64 {
		t.Errorf("a 64-byte deployment: %q, %v", got, ok)
	}
}

// Azure's samples: remaining requests and tokens per minute and no limit;
// a 429 adds the resets, in seconds, and asks for 5.34s in retry-after-ms.
func TestAzureSamples(t *testing.T) {
	parser := lookup(t, "azure_openai").Parser()
	got, dropped := parser.Parse(testkit.Headers(t, "azure-openai.headers"), time.Time{})
	if want := []ratelimit.Observation{
		obs(ratelimit.Remaining, "requests", "minute", 249), obs(ratelimit.Remaining, "tokens", "minute", 249980),
	}; dropped != 0 || !slices.Equal(got, want) {
		t.Errorf("success: %v (%d dropped), want %v", got, dropped, want)
	}
	r := parser.Read(http.StatusTooManyRequests, testkit.Headers(t, "azure-openai-429.headers"), time.Time{})
	if want := []ratelimit.Observation{
		obs(ratelimit.Remaining, "requests", "minute", 0), obs(ratelimit.Reset, "requests", "minute", 6),
		obs(ratelimit.Remaining, "tokens", "minute", 0), obs(ratelimit.Reset, "tokens", "minute", 6),
	}; r.Dropped != 0 || !slices.Equal(r.Observations, want) || r.RetryAfter != 5340*time.Millisecond || r.Cause != ratelimit.CauseRateLimit {
		t.Errorf("429: %+v, want %v, retry after 5.34s, cause rate_limit", r, want)
	}
}

// Azure's bodies: usage as OpenAI's; its own error codes are no plain codes.
func TestReadAzureAnswers(t *testing.T) {
	probe := lookup(t, "azure_openai").Probe
	for body, want := range map[string]Answer{
		`{"id":"chatcmpl-1","usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}}`:                                                                                                        {Tokens: 9},
		`{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit. Please retry after 6 seconds."}}`: {},
		`{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`:                                                                                      {},
		`{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`:                                                                               {ErrorCode: "insufficient_quota"},
	} {
		if got := probe.Read([]byte(body)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v", body, got, want)
		}
	}
}
