package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// A key never appears in any output, whatever happens to its probes:
// success, 401 with the key echoed in the body, 429, 5xx, timeout, TLS
// failure, a redirect elsewhere, and a DNS failure, logged at debug level.
func TestCanaryKeyNeverLeaks(t *testing.T) {
	const (
		exhaustedKey = "sk-test-canary-main-exhausted-a91f"
		brokenKey    = "sk-test-canary-main-broken-0b3e"
		slowKey      = "sk-test-canary-main-slow-77aa"
		tlsKey       = "sk-test-canary-main-tls-4c12"
		redirectKey  = "sk-test-canary-main-redirect-9e0d"
		dnsKey       = "sk-test-canary-main-dns-5b6f"
		// Azure OpenAI: an API key, a Microsoft Entra ID token, a token it
		// does not know, and an exhausted deployment.
		azureKey          = "az-test-canary-main-azure-3f9d"
		entraToken        = "eyJ0eXAiOiJKV1QifQ.test-canary-main-entra-7c1e"
		staleToken        = "eyJ0eXAiOiJKV1QifQ.test-canary-main-stale-0d4b"
		azureExhaustedKey = "az-test-canary-main-azure-exhausted-12ab"
	)
	sim, url := startSimulator(t)
	sim.AddKey(exhaustedKey, simulator.FreeTrial())
	sim.Exhaust(exhaustedKey, "llama3.1-8b")
	sim.AddKey(brokenKey, simulator.FreeTrial())
	sim.SetFault(brokenKey, simulator.ServerError)
	azureSim := simulator.NewDialect(simulator.AzureOpenAI, "gpt-4o-mini")
	azureSim.AddKey(azureKey, simulator.Limits{"requests": {"minute": 600}, "tokens": {"minute": 60000}})
	azureSim.AddKey(entraToken, simulator.Limits{"requests": {"minute": 600}, "tokens": {"minute": 60000}})
	azureSim.AddKey(azureExhaustedKey, simulator.Limits{"requests": {"minute": 1}, "tokens": {"minute": 60000}}) // refills in a minute
	azureSim.Exhaust(azureExhaustedKey, "gpt-4o-mini")
	azure := httptest.NewServer(azureSim)
	defer azure.Close()
	entraFile, staleFile := writeToken(t, entraToken), writeToken(t, staleToken)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice the client leaving.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer untrusted.Close()
	var leakedByRedirect atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leakedByRedirect.Store(r.Header.Get("Authorization") != "")
	}))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/v1/chat/completions", http.StatusTemporaryRedirect))
	defer redirecting.Close()
	// A label over 63 characters fails in the resolver itself: no query leaves the machine.
	noSuchHost := "http://" + strings.Repeat("x", 64) + ".invalid/v1"
	keyFile := revokedKeyFile(t)
	canaries := []string{goodKey, revokedKey, exhaustedKey, brokenKey, slowKey, tlsKey, redirectKey, dnsKey,
		azureKey, entraToken, staleToken, azureExhaustedKey}

	cfgText := fmt.Sprintf(`probe: {interval: 100ms, timeout: 300ms}
keys:
  - {name: good, api_key: %[2]s, base_url: %[1]s}
  - {name: revoked, api_key_file: %[3]s, base_url: %[1]s}
  - {name: exhausted, api_key: %[4]s, base_url: %[1]s}
  - {name: broken, api_key: %[5]s, base_url: %[1]s}
  - {name: slow, api_key: %[6]s, base_url: %[7]s/v1}
  - {name: tls, api_key: %[8]s, base_url: %[9]s/v1}
  - {name: redirect, api_key: %[10]s, base_url: %[11]s/v1, http_client: {follow_redirects: true}}
  - {name: dns, api_key: %[12]s, base_url: %[13]s}
  - {name: azure, provider: azure_openai, api_key: %[14]s, base_url: %[15]s, models: [gpt-4o-mini]}
  - {name: entra, provider: azure_openai, bearer_token_file: %[16]s, api_version: v1, base_url: %[15]s, models: [gpt-4o-mini]}
  - {name: entra-stale, provider: azure_openai, bearer_token_file: %[17]s, base_url: %[15]s, models: [gpt-4o-mini]}
  - {name: azure-exhausted, provider: azure_openai, api_key: %[18]s, base_url: %[15]s, models: [gpt-4o-mini]}
`, url, goodKey, keyFile, exhaustedKey, brokenKey, slowKey, slow.URL, tlsKey, untrusted.URL, redirectKey, redirecting.URL, dnsKey, noSuchHost,
		azureKey, azure.URL, entraFile, staleFile, azureExhaustedKey)
	cfg := testkit.WriteConfig(t, cfgText)
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	metrics := e.waitFor(t,
		`ratelimit_probes_total{cause="",key="good",model="llama3.1-8b",provider="cerebras",reason="",result="success"}`,
		`ratelimit_probe_status_code{key="revoked",model="llama3.1-8b",provider="cerebras"} 401`,
		`ratelimit_probe_status_code{key="exhausted",model="llama3.1-8b",provider="cerebras"} 429`,
		`ratelimit_probe_status_code{key="broken",model="llama3.1-8b",provider="cerebras"} 503`,
		`ratelimit_probes_total{cause="",key="slow",model="llama3.1-8b",provider="cerebras",reason="",result="timeout"} 1`,
		`ratelimit_probes_total{cause="",key="tls",model="llama3.1-8b",provider="cerebras",reason="",result="network_error"} 1`,
		`ratelimit_probe_status_code{key="redirect",model="llama3.1-8b",provider="cerebras"} 307`,
		`ratelimit_probes_total{cause="",key="dns",model="llama3.1-8b",provider="cerebras",reason="",result="network_error"} 1`,
		`ratelimit_probe_success{key="azure",model="gpt-4o-mini",provider="azure_openai"} 1`,
		`ratelimit_probe_success{key="entra",model="gpt-4o-mini",provider="azure_openai"} 1`,
		`ratelimit_probe_status_code{key="entra-stale",model="gpt-4o-mini",provider="azure_openai"} 401`,
		`ratelimit_probe_status_code{key="azure-exhausted",model="gpt-4o-mini",provider="azure_openai"} 429`,
	)
	if leakedByRedirect.Load() {
		t.Error("the redirect carried the key to another origin")
	}
	outputs := map[string]string{"/metrics": metrics}
	for _, path := range []string{"/", "/-/healthy", "/-/ready", "/grafana/dashboard.json", "/nope", "/sd",
		"/probe?key=good&model=llama3.1-8b", "/probe?key=revoked&model=llama3.1-8b", "/probe?key=" + goodKey, "/probe?key=good&model=" + goodKey,
		"/probe?key=azure&model=gpt-4o-mini", "/probe?key=entra&model=gpt-4o-mini", "/probe?key=entra-stale&model=gpt-4o-mini"} {
		_, outputs[path] = e.get(t, path)
	}

	// A reload that fails on a key's value, and one whose YAML puts a key where a list belongs.
	for i, broken := range []string{
		strings.Replace(cfgText, goodKey, goodKey+" "+exhaustedKey, 1),
		strings.Replace(cfgText, "api_key: "+brokenKey, "api_key: ["+brokenKey+"]", 1),
		strings.Replace(cfgText, "api_key: "+slowKey, "api_key: {"+slowKey+": 1}", 1),
		// A key pasted into api_version, and a key beside a token.
		strings.Replace(cfgText, "api_key: "+azureKey, "api_version: "+azureKey+", api_key: "+azureKey, 1),
		strings.Replace(cfgText, "bearer_token_file: "+entraFile, "bearer_token_file: "+entraFile+", api_key: "+azureKey, 1),
		// A token pasted into base_url, and a key as a base_url's password.
		strings.Replace(cfgText, "api_key: "+azureKey+", base_url: "+azure.URL, "api_key: "+azureKey+", base_url: "+entraToken, 1),
		strings.Replace(cfgText, "api_key: "+azureKey+", base_url: "+azure.URL, "api_key: "+azureKey+", base_url: "+
			strings.Replace(azure.URL, "://", "://u:"+goodKey+"@", 1)+"/openai", 1),
	} {
		if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		_, outputs[fmt.Sprintf("failed reload %d", i)] = e.do(t, "POST", "/-/reload")
		_, outputs[fmt.Sprintf("--config.check %d", i)] = runOnce(t, nil, "--config.file="+cfg, "--config.check")
	}
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	_, outputs["--config.check"] = runOnce(t, nil, "--config.file="+cfg, "--config.check")
	outputs["logs"] = e.Logs()

	for _, want := range []string{`level=debug`, `err="HTTP 401 (wrong_api_key)"`, `result=timeout`, `x509`, `no such host`, `status=307`} {
		if !strings.Contains(outputs["logs"], want) {
			t.Errorf("debug logs lack %s", want)
		}
	}
	for name, out := range outputs {
		for _, key := range canaries {
			if strings.Contains(out, key) {
				t.Errorf("%s contains the key %s:\n%s", name, key, out)
			}
		}
	}
}

// promtool check metrics reports nothing on the exporter's output.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := testkit.RequireTool(t, "promtool")
	_, e, _ := startTwoKeys(t, "interval", nil)
	body := e.waitFor(t, `ratelimit_reset_timestamp_seconds{key="good"`, `ratelimit_probe_success{key="revoked"`)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The new providers' keys never appear either, though their refusals show
// a few of a key's characters: xAI's 400 for a wrong key, DeepSeek's 401,
// and DeepSeek's 402 for a balance run out; nor does `check` show them.
func TestCanaryKeysOfXAIAndDeepSeek(t *testing.T) {
	const (
		xaiGood      = "xai-test-canary-xds-good-6b1f0c2d"
		xaiWrong     = "xai-test-canary-xds-wrong-93ae7d10"
		deepseekGood = "sk-test-canary-xds-deepseek-good-2c8e"
		deepseekGone = "sk-test-canary-xds-deepseek-gone-77f1"
		deepseekPoor = "sk-test-canary-xds-deepseek-poor-0d4a"
	)
	xai := simulator.NewDialect(simulator.XAI)
	xai.AddKey(xaiGood, simulator.Limits{"requests": {"minute": 100}, "tokens": {"minute": 1e5}})
	deepseek := simulator.NewDialect(simulator.DeepSeek)
	deepseek.AddKey(deepseekGood, nil)
	deepseek.AddKey(deepseekPoor, nil)
	deepseek.SetFault(deepseekPoor, simulator.InsufficientQuota)
	mux := http.NewServeMux()
	mux.Handle("/xai/", xai)
	mux.Handle("/deepseek/", deepseek)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {interval: 100ms, min_interval: 0s}
keys:
  - {name: xgood, provider: xai, api_key: %[2]s, base_url: %[1]s/xai/v1}
  - {name: xwrong, provider: xai, api_key: %[3]s, base_url: %[1]s/xai/v1}
  - {name: dgood, provider: deepseek, api_key: %[4]s, base_url: %[1]s/deepseek}
  - {name: dgone, provider: deepseek, api_key: %[5]s, base_url: %[1]s/deepseek}
  - {name: dpoor, provider: deepseek, api_key: %[6]s, base_url: %[1]s/deepseek}
`, srv.URL, xaiGood, xaiWrong, deepseekGood, deepseekGone, deepseekPoor))
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	outputs := map[string]string{"/metrics": e.waitFor(t,
		`ratelimit_probe_status_code{key="xgood",model="grok-4.20-0309-non-reasoning",provider="xai"} 200`,
		`ratelimit_probe_status_code{key="xwrong",model="grok-4.20-0309-non-reasoning",provider="xai"} 400`,
		`ratelimit_probe_status_code{key="dgood",model="",provider="deepseek"} 200`,
		`ratelimit_probe_status_code{key="dgone",model="",provider="deepseek"} 401`,
		`ratelimit_probe_status_code{key="dpoor",model="",provider="deepseek"} 402`,
	)}
	for _, path := range []string{"/probe?key=xwrong&model=grok-4.20-0309-non-reasoning", "/probe?key=dgone", "/probe?key=dpoor"} {
		_, outputs[path] = e.get(t, path)
	}
	_, outputs["check"], outputs["check stderr"] = runCheckCommand(t, "check", "--config.file="+cfg, "--log.level=debug")
	outputs["logs"] = e.Logs()
	if !strings.Contains(outputs["logs"], `err="HTTP 401 (authentication_error)"`) {
		t.Errorf("the debug logs lack DeepSeek's refusal:\n%s", outputs["logs"])
	}
	for name, out := range outputs {
		for _, key := range []string{xaiGood, xaiWrong, deepseekGood, deepseekGone, deepseekPoor} {
			if strings.Contains(out, key) {
				t.Errorf("%s contains the key %s:\n%s", name, key, out)
			}
		}
	}
}

// Gemini's paths: keys in x-goog-api-key and in ?key= (and beside them
// where gateways read keys), probed and sent
// through the proxy, working, exhausted (a 429 whose body the proxy and
// the probe read), refused, and a stranger's, at debug level: no key is
// in any output.
func TestGeminiCanaryKeysNeverLeak(t *testing.T) {
	const (
		good      = "AIza-test-canary-leak-good-31b0"
		exhausted = "AIza-test-canary-leak-exhausted-c4d2"
		revoked   = "AIza-test-canary-leak-revoked-8e15"
		stranger  = "AIza-test-canary-leak-stranger-f7a9"
	)
	sim := simulator.NewDialect(simulator.Gemini)
	sim.AddKey(good, simulator.Limits{"requests": {"minute": 1e4, "day": 1e6}})
	for _, key := range []string{exhausted, stranger} { // the proxy records their 429s
		sim.AddKey(key, geminiLimits)
		sim.Exhaust(key, geminiModel)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	proxyAddr := testkit.FreeAddr(t)
	cfgText := fmt.Sprintf(`probe: {interval: 100ms, timeout: 300ms}
keys:
  - {name: good, provider: gemini, api_key: %[2]s, base_url: %[1]s/v1beta, probe_interval: 100ms}
  - {name: exhausted, provider: gemini, api_key: %[3]s, base_url: %[1]s/v1beta, probe_interval: 100ms}
  - {name: revoked, provider: gemini, api_key: %[4]s, base_url: %[1]s/v1beta, probe_interval: 100ms}
proxy:
  listen_address: %[5]s
  unknown_keys: fingerprint
  routes: [{path_prefix: /gemini/, upstream: %[1]s, provider: gemini}]
`, srv.URL, good, exhausted, revoked, proxyAddr)
	cfg := testkit.WriteConfig(t, cfgText)
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	canaries := []string{good, exhausted, revoked, stranger}
	path := "http://" + proxyAddr + "/gemini/v1beta/models/" + geminiModel + ":generateContent"
	for _, key := range canaries {
		for _, tc := range []struct{ query, header, other string }{
			{"", key, ""}, {"?key=" + key, "", ""}, {"?alt=sse;key=" + key, good, ""}, {"?k%zzey=" + key, "", ""}, {"?key=" + key, stranger, ""},
			// Where gateways read keys: Azure's ?api-key=, LiteLLM's and
			// Azure API Management's headers.
			{"?api-key=" + key, good, ""}, {"", good, key},
		} {
			req, err := http.NewRequest(http.MethodPost, path+tc.query, strings.NewReader(`{"contents":[{"parts":[{"text":"`+key+`"}]}]}`))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("X-Goog-Api-Key", tc.header)
			}
			if tc.other != "" {
				req.Header.Set("X-Litellm-Api-Key", tc.other)
				req.Header.Set("Ocp-Apim-Subscription-Key", tc.other)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	model := `model="` + geminiModel + `",provider="gemini"`
	metrics := e.waitFor(t,
		`ratelimit_probe_status_code{key="good",`+model+`} 200`,
		`ratelimit_probe_status_code{key="exhausted",`+model+`} 429`,
		`ratelimit_probe_status_code{key="revoked",`+model+`} 400`,
		`ratelimit_proxy_rate_limited_total{cause="quota_exhausted",key="exhausted",`+model+`} 2`,
		`ratelimit_observations_total{key="sha256:`,
	)
	outputs := map[string]string{"/metrics": metrics}
	for _, path := range []string{"/", "/-/healthy", "/-/ready", "/sd", "/probe?key=good&model=" + geminiModel, "/probe?key=" + good} {
		_, outputs[path] = e.get(t, path)
	}
	_, outputs["--config.check"] = runOnce(t, nil, "--config.file="+cfg, "--config.check")
	outputs["logs"] = e.Logs()
	for _, want := range []string{`level=debug`, `err="HTTP 429 (resource_exhausted)"`, `err="HTTP 400 (invalid_argument)"`} {
		if !strings.Contains(outputs["logs"], want) {
			t.Errorf("debug logs lack %s", want)
		}
	}
	for name, out := range outputs {
		for _, key := range canaries {
			if strings.Contains(out, key) {
				t.Errorf("%s contains the key %s:\n%s", name, key, out)
			}
		}
	}
}

// An admin key never appears in any output either: admin APIs that work,
// answer 500, refuse the key with a 401 whose body echoes it, or redirect
// elsewhere (never followed), an admin key read from a file, the costs'
// errors, at debug level; /metrics and every page; reloads refused for an
// admin key in the wrong place; --config.check; and `check`.
func TestCanaryAdminKeysNeverLeak(t *testing.T) {
	const (
		goodAdmin     = "sk-admin-test-canary-leak-good-1e0a"
		brokenAdmin   = "sk-admin-test-canary-leak-broken-22b1"
		wrongAdmin    = "sk-admin-test-canary-leak-wrong-3c62"
		redirectAdmin = "sk-admin-test-canary-leak-redirect-4d73"
		claudeAdmin   = "sk-ant-admin01-test-canary-leak-claude-5e84"
		apiKey        = "sk-test-canary-leak-api-6f95"
		claudeKey     = "sk-ant-api03-test-canary-leak-claude-7a06"
	)
	openai := simulator.NewDialect(simulator.OpenAI, "gpt-4o-mini")
	openai.AddKey(apiKey, simulator.Limits{"requests": {"minute": 1e4}, "tokens": {"minute": 1e6}})
	limits := simulator.AdminLimit{Models: []string{"o3"}, Values: map[string]float64{"max_requests_per_1_minute": 50}}
	openai.SetAdminLimits(goodAdmin, "proj_abc", limits)
	openai.SetAdminLimits(brokenAdmin, "proj_abc", limits)
	openai.SetAdminFault(brokenAdmin, http.StatusInternalServerError, 0)
	anthropic := simulator.NewDialect(simulator.Anthropic, "claude-haiku-4-5")
	anthropic.AddKey(claudeKey, simulator.Limits{"requests": {"minute": 1e4}})
	anthropic.SetAdminLimits(claudeAdmin, "", simulator.AdminLimit{Models: []string{"claude-sonnet-4-5"}, Values: map[string]float64{"requests_per_minute": 4000}})
	anthropic.SetAdminLimits(claudeAdmin, "wrkspc_01")
	mux := http.NewServeMux()
	mux.Handle("/openai/", openai)
	mux.Handle("/anthropic/", anthropic)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var leakedByRedirect atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leakedByRedirect.Store(true)
	}))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/v1/organization/projects/proj_abc/rate_limits", http.StatusTemporaryRedirect))
	defer redirecting.Close()
	claudeFile := writeAdminKey(t, claudeAdmin)
	canaries := []string{goodAdmin, brokenAdmin, wrongAdmin, redirectAdmin, claudeAdmin, apiKey, claudeKey}

	cfgText := fmt.Sprintf(`probe: {interval: 100ms, max_quota_share: 1}
admin:
  - {name: good, provider: openai, admin_key: %[2]s, base_url: '%[1]s/openai/v1'}
  - {name: broken, provider: openai, admin_key: %[3]s, base_url: '%[1]s/openai/v1', budgets: [{monthly: 10}]}
  - {name: wrong, provider: openai, admin_key: %[4]s, base_url: '%[1]s/openai/v1'}
  - {name: redirect, provider: openai, admin_key: %[5]s, base_url: '%[6]s/v1'}
  - {name: claude, provider: anthropic, admin_key_file: %[7]s, base_url: '%[1]s/anthropic'}
keys:
  - {name: k1, provider: openai, api_key: %[8]s, base_url: '%[1]s/openai/v1', admin: good, project: proj_abc}
  - {name: k2, provider: openai, api_key: %[8]s-2, base_url: '%[1]s/openai/v1', admin: broken, project: proj_abc}
  - {name: k3, provider: openai, api_key: %[8]s-3, base_url: '%[1]s/openai/v1', admin: wrong, project: proj_abc}
  - {name: k4, provider: openai, api_key: %[8]s-4, base_url: '%[1]s/openai/v1', admin: redirect, project: proj_abc}
  - {name: k5, provider: anthropic, api_key: %[9]s, base_url: '%[1]s/anthropic', admin: claude, workspace: wrkspc_01}
`, srv.URL, goodAdmin, brokenAdmin, wrongAdmin, redirectAdmin, redirecting.URL, claudeFile, apiKey, claudeKey)
	cfg := testkit.WriteConfig(t, cfgText)
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	success := func(admin, provider, api string, v int) string {
		return fmt.Sprintf(`ratelimit_admin_success{admin=%q,api=%q,provider=%q} %d`, admin, api, provider, v)
	}
	metrics := e.waitFor(t,
		success("good", "openai", "rate_limits", 1),
		success("broken", "openai", "rate_limits", 0),
		success("broken", "openai", "costs", 0),
		success("wrong", "openai", "rate_limits", 0),
		success("redirect", "openai", "rate_limits", 0),
		success("claude", "anthropic", "rate_limits", 1),
		`ratelimit_admin_requests_total{admin="wrong",api="rate_limits",provider="openai",result="unauthorized"} 1`,
		`ratelimit_admin_requests_total{admin="redirect",api="rate_limits",provider="openai",result="http_error"} 1`,
		`ratelimit_limit{key="k1",model="o3",provider="openai",resource="requests",window="minute"} 50`,
		`ratelimit_limit{key="k5",model="claude-sonnet-4-5",provider="anthropic",resource="requests",window="minute"} 4000`,
	)
	if leakedByRedirect.Load() {
		t.Error("an admin request followed a redirect to another origin")
	}
	outputs := map[string]string{"/metrics": metrics}
	for _, path := range []string{"/", "/-/healthy", "/-/ready", "/sd", "/probe?key=k1&model=o3", "/probe?key=k1&model=gpt-4o-mini", "/probe?key=" + goodAdmin} {
		_, outputs[path] = e.get(t, path)
	}
	for i, broken := range []string{
		strings.Replace(cfgText, "admin_key: "+goodAdmin, "admin_key: '"+goodAdmin+" "+wrongAdmin+"'", 1),
		strings.Replace(cfgText, "admin_key: "+goodAdmin, "admin_key: {"+goodAdmin+": 1}", 1),
		strings.Replace(cfgText, "admin_key: "+goodAdmin, "admin_key: ["+goodAdmin+"]", 1),
		strings.Replace(cfgText, "admin_key: "+goodAdmin+", base_url: '"+srv.URL+"/openai/v1'", "admin_key: "+goodAdmin+", base_url: "+brokenAdmin, 1),
		strings.Replace(cfgText, "admin_key: "+goodAdmin+", base_url: '"+srv.URL, "admin_key: "+goodAdmin+", base_url: '"+strings.Replace(srv.URL, "://", "://u:"+wrongAdmin+"@", 1), 1),
		strings.Replace(cfgText, "admin_key: "+goodAdmin, "admin_key: "+apiKey, 1), // an API key as admin key
		strings.Replace(cfgText, "project: proj_abc}", "project: "+redirectAdmin+"x/y}", 1),
	} {
		if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		_, outputs[fmt.Sprintf("failed reload %d", i)] = e.do(t, "POST", "/-/reload")
		_, outputs[fmt.Sprintf("--config.check %d", i)] = runOnce(t, nil, "--config.file="+cfg, "--config.check")
		if !strings.Contains(outputs[fmt.Sprintf("failed reload %d", i)], "the running config is kept") {
			t.Errorf("reload %d was not refused: %s", i, outputs[fmt.Sprintf("failed reload %d", i)])
		}
	}
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	_, outputs["--config.check"] = runOnce(t, nil, "--config.file="+cfg, "--config.check")
	_, outputs["check"], outputs["check stderr"] = runCheckCommand(t, "check", "--config.file="+cfg, "--log.level=debug")
	_, outputs["check json"], _ = runCheckCommand(t, "check", "--output=json", "--config.file="+cfg)
	outputs["logs"] = e.Logs()

	for _, want := range []string{
		`msg="Read an admin API" admin=good api=rate_limits scope=proj_abc models=1 pages=1 dropped=0`,
		`result=http_error err="openai project rate limits: page 1: HTTP 500: unexpected status"`,
		`result=unauthorized err="openai project rate limits: page 1: HTTP 401: the admin key was refused"`,
		`result=http_error err="openai project rate limits: page 1: HTTP 307: redirect refused"`,
	} {
		if !strings.Contains(outputs["logs"], want) {
			t.Errorf("debug logs lack %s", want)
		}
	}
	if !strings.Contains(outputs["check"], "wrong (openai): read no rate limits of proj_abc: openai project rate limits: page 1: HTTP 401: the admin key was refused") {
		t.Errorf("check does not say the admin key was refused:\n%s", outputs["check"])
	}
	if strings.Contains(outputs["logs"], "panic") {
		t.Errorf("a panic in the logs:\n%s", outputs["logs"])
	}
	for name, out := range outputs {
		for _, key := range canaries {
			if strings.Contains(out, key) {
				t.Errorf("%s contains the key %s:\n%s", name, key, out)
			}
		}
	}
}
