package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// Simulator credentials of the Azure tests: an API key, a Microsoft Entra
// ID token and a provisioned deployment's key.
const (
	azureKey   = "az-test-canary-azure-key-6d0c"
	entraToken = "eyJ0eXAiOiJKV1QifQ.test-canary-azure-entra-41f7"
	ptuKey     = "az-test-canary-azure-ptu-8a21"
)

// writeToken writes a bearer token to a file, as a token refresher would.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entra.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The binary probes Azure OpenAI deployments as Azure expects (the
// deployment's path, the api-version, the api-key header, or the v1 API
// with an Entra ID token) and /metrics shows exactly the values sent:
// remaining requests and tokens per minute and no limit at all, a
// provisioned deployment's utilization, and a 429's cause and wait.
func TestAzureOpenAIThroughTheBinary(t *testing.T) {
	sim := simulator.NewDialect(simulator.AzureOpenAI, "gpt-4o-mini", "ptu-gpt-4o")
	clock := time.Unix(1795000000, 0) // no refill between the test's steps
	sim.SetClock(func() time.Time { return clock })
	sim.AddKey(azureKey, simulator.Limits{"requests": {"minute": 600}, "tokens": {"minute": 60000}})
	sim.AddKey(entraToken, simulator.Limits{"requests": {"minute": 300}, "tokens": {"minute": 30000}})
	sim.AddKey(ptuKey, simulator.Limits{"deployment": {"minute": 1000}})
	sim.Consume(ptuKey, "ptu-gpt-4o", 0, 115) // with the probe's 10 tokens, 12.5% in use
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe:
  mode: scrape
  min_interval: 0s
  max_quota_share: 1
keys:
  - name: standard
    provider: azure_openai
    api_key: %[1]s
    base_url: %[4]s
    models: [gpt-4o-mini]
  - name: entra
    provider: azure_openai
    bearer_token_file: %[2]s
    api_version: v1
    base_url: %[4]s
    models: [gpt-4o-mini]
  - name: ptu
    provider: azure_openai
    api_key: %[3]s
    base_url: %[4]s
    models: [ptu-gpt-4o]
`, azureKey, writeToken(t, entraToken), ptuKey, srv.URL))
	e := start(t, nil, "--config.file="+cfg)

	_, text := e.get(t, "/metrics")
	got := metricsOf(t, text)
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		s := series(name, labels...)
		if v, ok := got[s]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", s, v, ok, want)
		}
	}
	probeBody := `{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}]}`
	for _, tc := range []struct {
		key, secret, model        string
		path, query, header, body string
		remaining, utilization    []string // the headers shown, resource by resource
	}{
		{"standard", azureKey, "gpt-4o-mini", "/openai/deployments/gpt-4o-mini/chat/completions", "api-version=2024-10-21", "Api-Key", probeBody,
			[]string{"requests", "tokens"}, nil},
		{"entra", entraToken, "gpt-4o-mini", "/openai/v1/chat/completions", "", "Authorization",
			`{"max_completion_tokens":1,"messages":[{"role":"user","content":"Hi"}],"model":"gpt-4o-mini"}`, []string{"requests", "tokens"}, nil},
		{"ptu", ptuKey, "ptu-gpt-4o", "/openai/deployments/ptu-gpt-4o/chat/completions", "api-version=2024-10-21", "Api-Key", probeBody,
			nil, []string{"deployment"}},
	} {
		ex, ok := sim.LastExchange(tc.secret)
		if !ok || ex.Status != http.StatusOK {
			t.Fatalf("%s: the simulator saw no probe, or answered %d %s", tc.key, ex.Status, ex.ResponseBody)
		}
		if ex.Method != http.MethodPost || ex.Path != tc.path || ex.Query != tc.query || ex.KeyHeader != tc.header ||
			string(ex.Body) != tc.body || ex.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: the probe was %s %s?%s, the key in %s, %s %s\nwant POST %s?%s, the key in %s, %s",
				tc.key, ex.Method, ex.Path, ex.Query, ex.KeyHeader, ex.Header, ex.Body, tc.path, tc.query, tc.header, tc.body)
		}
		id := []string{"key", tc.key, "model", tc.model, "provider", "azure_openai"}
		at := func(labels ...string) []string { return append(slices.Clone(id), labels...) }
		check("ratelimit_probe_success", 1, id...)
		for _, resource := range tc.remaining {
			v, err := strconv.ParseFloat(ex.ResponseHeader.Get("X-Ratelimit-Remaining-"+resource), 64)
			if err != nil {
				t.Fatalf("%s: %v", tc.key, err)
			}
			check("ratelimit_remaining", v, at("resource", resource, "window", "minute")...)
		}
		for _, resource := range tc.utilization {
			percent := ex.ResponseHeader.Get("Azure-Openai-Deployment-Utilization")
			v, err := strconv.ParseFloat(strings.TrimSuffix(percent, "%"), 64)
			if err != nil || percent != "12.5%" {
				t.Fatalf("%s: utilization %q: %v", tc.key, percent, err)
			}
			check("ratelimit_utilization", v/100, at("resource", resource)...)
		}
		var answer struct {
			Usage struct {
				TotalTokens float64 `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(ex.ResponseBody, &answer); err != nil || answer.Usage.TotalTokens == 0 {
			t.Fatalf("%s: no usage in %s", tc.key, ex.ResponseBody)
		}
		check("ratelimit_probe_tokens_total", answer.Usage.TotalTokens, id...)
		check("ratelimit_header_errors_total", 0, id...)
	}
	// Azure sends no limit: none is made up, from 0, -1 or anything else.
	for s := range got {
		if strings.HasPrefix(s, "ratelimit_limit{") || strings.HasPrefix(s, "ratelimit_reset_seconds{") {
			t.Errorf("%s = %v: Azure's answers give no limit and no reset", s, got[s])
		}
	}

	// A 429: its remaining and resets, its cause, and the wait from retry-after-ms.
	sim.Exhaust(azureKey, "gpt-4o-mini")
	_, text = e.get(t, "/metrics")
	got = metricsOf(t, text)
	ex, _ := sim.LastExchange(azureKey)
	id := []string{"key", "standard", "model", "gpt-4o-mini", "provider", "azure_openai"}
	ms, err := strconv.ParseFloat(ex.ResponseHeader.Get("Retry-After-Ms"), 64)
	if ex.Status != http.StatusTooManyRequests || err != nil {
		t.Fatalf("the exhausted deployment answered %d, retry-after-ms %q", ex.Status, ex.ResponseHeader.Get("Retry-After-Ms"))
	}
	check("ratelimit_probes_total", 1, append([]string{"cause", "rate_limit"}, append(id, "result", "rate_limited")...)...)
	check("ratelimit_probe_status_code", 429, id...)
	check("ratelimit_retry_after_seconds", ms/1000, id...)
	check("ratelimit_remaining", 0, append(id, "resource", "requests", "window", "minute")...)
	reset, _ := strconv.ParseFloat(ex.ResponseHeader.Get("X-Ratelimit-Reset-Requests"), 64)
	check("ratelimit_reset_seconds", reset, append(id, "resource", "requests", "window", "minute")...)
}

// exchangeReply is what an SDK got back, as it got it.
type exchangeReply struct {
	status int
	header http.Header
	body   []byte
}

// keepReply keeps the raw response an SDK gets.
func keepReply(dst *exchangeReply) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err != nil {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		*dst = exchangeReply{resp.StatusCode, resp.Header.Clone(), body}
		return resp, err
	}
}

// sameExchanges reports how two simulators' last exchanges with key, and
// the replies an SDK kept, differ: the proxy must change nothing either
// way. Date (each server's clock) and hop-by-hop headers are left out.
func sameExchanges(t *testing.T, direct, proxied *simulator.Simulator, key string, directReply, proxiedReply exchangeReply) {
	t.Helper()
	d, _ := direct.LastExchange(key)
	p, _ := proxied.LastExchange(key)
	if d.Method != p.Method || d.Path != p.Path || d.Query != p.Query || d.KeyHeader != p.KeyHeader || !bytes.Equal(d.Body, p.Body) {
		t.Errorf("the simulator got %s %s?%s (key in %s) %s through the proxy, %s %s?%s (key in %s) %s directly",
			p.Method, p.Path, p.Query, p.KeyHeader, p.Body, d.Method, d.Path, d.Query, d.KeyHeader, d.Body)
	}
	strip := func(h http.Header) http.Header {
		h = h.Clone()
		for _, name := range []string{"Date", "Connection", "Keep-Alive", "Transfer-Encoding"} {
			h.Del(name)
		}
		return h
	}
	for what, pair := range map[string][2]http.Header{
		"the simulator got":  {d.Header, p.Header},
		"the SDK got header": {strip(directReply.header), strip(proxiedReply.header)},
	} {
		for name := range mergeKeys(pair[0], pair[1]) {
			if !slices.Equal(pair[0][name], pair[1][name]) {
				t.Errorf("%s %s: %q through the proxy, %q directly", what, name, pair[1][name], pair[0][name])
			}
		}
	}
	if directReply.status != proxiedReply.status || !bytes.Equal(directReply.body, proxiedReply.body) || len(proxiedReply.body) == 0 {
		t.Errorf("the SDK got %d %s through the proxy, %d %s directly", proxiedReply.status, proxiedReply.body, directReply.status, directReply.body)
	}
}

func mergeKeys(a, b http.Header) map[string]bool {
	names := map[string]bool{}
	for _, h := range []http.Header{a, b} {
		for name := range h {
			names[name] = true
		}
	}
	return names
}

// The official SDK's Azure client through the binary's proxy: the
// simulator gets the request the SDK sends directly, the SDK gets the
// answer the simulator gives directly (two simulators in one state, one
// behind the proxy), and /metrics shows the reading under the configured
// key and the deployment; a 429's cause and retry-after-ms too. A client of
// the v1 API with an Entra ID token is recorded under the key whose
// bearer_token_file holds it, with the body's model.
func TestAzureSDKThroughTheProxy(t *testing.T) {
	const deployment = "gpt-4o-mini"
	var direct, proxied *simulator.Simulator
	var directURL, proxiedURL string
	clock := time.Unix(1795000000, 0)
	for _, twin := range []struct {
		sim *(*simulator.Simulator)
		url *string
	}{{&direct, &directURL}, {&proxied, &proxiedURL}} {
		s := simulator.NewDialect(simulator.AzureOpenAI, deployment)
		s.SetClock(func() time.Time { return clock })
		s.AddKey(azureKey, simulator.Limits{"requests": {"minute": 600}, "tokens": {"minute": 100}})
		s.AddKey(entraToken, simulator.Limits{"requests": {"minute": 60}, "tokens": {"minute": 1000}})
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		*twin.sim, *twin.url = s, srv.URL
	}
	// The keys' probes go elsewhere, with other limits: what /metrics shows
	// after the applications' requests is the proxy's reading.
	probed := simulator.NewDialect(simulator.AzureOpenAI, deployment)
	probed.AddKey(azureKey, simulator.Limits{"requests": {"minute": 1000}, "tokens": {"minute": 100000}})
	probed.AddKey(entraToken, simulator.Limits{"requests": {"minute": 1000}, "tokens": {"minute": 100000}})
	probedSrv := httptest.NewServer(probed)
	t.Cleanup(probedSrv.Close)

	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe:
  interval: 1h
keys:
  - {name: app, provider: azure_openai, api_key: %[1]s, base_url: %[2]s, models: [%[3]s]}
  - {name: entra-app, provider: azure_openai, bearer_token_file: %[4]s, api_version: v1, base_url: %[2]s, models: [%[3]s]}
proxy:
  listen_address: %[5]s
  routes:
    - {path_prefix: /azure/, upstream: %[6]s, provider: azure_openai}
`, azureKey, probedSrv.URL, deployment, writeToken(t, entraToken), proxyAddr, proxiedURL))
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	e.waitFor(t,
		`ratelimit_observations_total{key="app",model="gpt-4o-mini",provider="azure_openai",source="probe"} 1`,
		`ratelimit_observations_total{key="entra-app",model="gpt-4o-mini",provider="azure_openai",source="probe"} 1`)

	params := openai.ChatCompletionNewParams{
		Model:               deployment,
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}, // 10 tokens
		MaxCompletionTokens: openai.Int(1),
	}
	send := func(endpoint string, seen *exchangeReply) (*openai.ChatCompletion, error) {
		client := openai.NewClient(azure.WithEndpoint(endpoint, "2024-10-21"), azure.WithAPIKey(azureKey), azure.WithUnsafeAllowHTTP(),
			option.WithMaxRetries(0), option.WithMiddleware(keepReply(seen)))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return client.Chat.Completions.New(ctx, params)
	}
	var directReply, proxiedReply exchangeReply
	want, err := send(directURL, &directReply)
	if err != nil {
		t.Fatal(err)
	}
	completion, err := send("http://"+proxyAddr+"/azure", &proxiedReply)
	if err != nil {
		t.Fatal(err)
	}
	if completion.RawJSON() != want.RawJSON() {
		t.Errorf("the SDK read %s through the proxy, %s directly", completion.RawJSON(), want.RawJSON())
	}
	sameExchanges(t, direct, proxied, azureKey, directReply, proxiedReply)
	if ex, _ := proxied.LastExchange(azureKey); ex.Path != "/openai/deployments/gpt-4o-mini/chat/completions" || ex.KeyHeader != "Api-Key" {
		t.Errorf("the SDK sent %s with the key in %s", ex.Path, ex.KeyHeader)
	}
	e.waitFor(t,
		`ratelimit_remaining{key="app",model="gpt-4o-mini",provider="azure_openai",resource="tokens",window="minute"} `+
			proxiedReply.header.Get("X-Ratelimit-Remaining-Tokens"),
		`ratelimit_remaining{key="app",model="gpt-4o-mini",provider="azure_openai",resource="requests",window="minute"} `+
			proxiedReply.header.Get("X-Ratelimit-Remaining-Requests"),
		`ratelimit_observations_total{key="app",model="gpt-4o-mini",provider="azure_openai",source="proxy"} 1`)

	// 8.9 tokens short of the next request's 10: 5.34s of refill, asked in retry-after-ms.
	for _, s := range []*simulator.Simulator{direct, proxied} {
		s.Consume(azureKey, deployment, 0, 88.9)
	}
	_, errDirect := send(directURL, &directReply)
	_, errProxied := send("http://"+proxyAddr+"/azure", &proxiedReply)
	var apiErr *openai.Error
	if !errors.As(errProxied, &apiErr) || apiErr.StatusCode != 429 || errDirect == nil || proxiedReply.header.Get("Retry-After-Ms") != "5340" {
		t.Fatalf("exhausted: %v through the proxy (retry-after-ms %q), %v directly", errProxied, proxiedReply.header.Get("Retry-After-Ms"), errDirect)
	}
	sameExchanges(t, direct, proxied, azureKey, directReply, proxiedReply)
	e.waitFor(t,
		`ratelimit_proxy_rate_limited_total{cause="rate_limit",key="app",model="gpt-4o-mini",provider="azure_openai"} 1`,
		`ratelimit_retry_after_seconds{key="app",model="gpt-4o-mini",provider="azure_openai"} 5.34`)

	// The v1 API, with an Entra ID token as the bearer.
	v1 := openai.NewClient(option.WithBaseURL("http://"+proxyAddr+"/azure/openai/v1"), option.WithAPIKey(entraToken), option.WithMaxRetries(0))
	var resp *http.Response
	if _, err := v1.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp)); err != nil {
		t.Fatal(err)
	}
	if ex, _ := proxied.LastExchange(entraToken); ex.Path != "/openai/v1/chat/completions" || ex.KeyHeader != "Authorization" {
		t.Errorf("the v1 client sent %s with the token in %s", ex.Path, ex.KeyHeader)
	}
	body := e.waitFor(t,
		`ratelimit_remaining{key="entra-app",model="gpt-4o-mini",provider="azure_openai",resource="requests",window="minute"} `+
			resp.Header.Get("X-Ratelimit-Remaining-Requests"),
		`ratelimit_observations_total{key="entra-app",model="gpt-4o-mini",provider="azure_openai",source="proxy"} 1`)
	for _, secret := range []string{azureKey, entraToken} {
		if strings.Contains(body, secret) || strings.Contains(e.Logs(), secret) {
			t.Errorf("a secret shows in /metrics or the debug log")
		}
	}
}
