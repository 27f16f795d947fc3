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
	)
	sim, url := startSimulator(t)
	sim.AddKey(exhaustedKey, simulator.FreeTrial())
	sim.Exhaust(exhaustedKey, "llama3.1-8b")
	sim.AddKey(brokenKey, simulator.FreeTrial())
	sim.SetFault(brokenKey, simulator.ServerError)
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
	canaries := []string{goodKey, revokedKey, exhaustedKey, brokenKey, slowKey, tlsKey, redirectKey, dnsKey}

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
`, url, goodKey, keyFile, exhaustedKey, brokenKey, slowKey, slow.URL, tlsKey, untrusted.URL, redirectKey, redirecting.URL, dnsKey, noSuchHost)
	cfg := testkit.WriteConfig(t, cfgText)
	e := start(t, nil, "--config.file="+cfg, "--log.level=debug")
	metrics := e.waitFor(t,
		`ratelimit_probes_total{key="good",model="llama3.1-8b",provider="cerebras",reason="",result="success"}`,
		`ratelimit_probe_status_code{key="revoked",model="llama3.1-8b",provider="cerebras"} 401`,
		`ratelimit_probe_status_code{key="exhausted",model="llama3.1-8b",provider="cerebras"} 429`,
		`ratelimit_probe_status_code{key="broken",model="llama3.1-8b",provider="cerebras"} 503`,
		`ratelimit_probes_total{key="slow",model="llama3.1-8b",provider="cerebras",reason="",result="timeout"} 1`,
		`ratelimit_probes_total{key="tls",model="llama3.1-8b",provider="cerebras",reason="",result="network_error"} 1`,
		`ratelimit_probe_status_code{key="redirect",model="llama3.1-8b",provider="cerebras"} 307`,
		`ratelimit_probes_total{key="dns",model="llama3.1-8b",provider="cerebras",reason="",result="network_error"} 1`,
	)
	if leakedByRedirect.Load() {
		t.Error("the redirect carried the key to another origin")
	}
	outputs := map[string]string{"/metrics": metrics}
	for _, path := range []string{"/", "/-/healthy", "/-/ready", "/grafana/dashboard.json", "/nope", "/sd",
		"/probe?key=good&model=llama3.1-8b", "/probe?key=revoked&model=llama3.1-8b", "/probe?key=" + goodKey, "/probe?key=good&model=" + goodKey} {
		_, outputs[path] = e.get(t, path)
	}

	// A reload that fails on a key's value, and one whose YAML puts a key where a list belongs.
	for i, broken := range []string{
		strings.Replace(cfgText, goodKey, goodKey+" "+exhaustedKey, 1),
		strings.Replace(cfgText, "api_key: "+brokenKey, "api_key: ["+brokenKey+"]", 1),
		strings.Replace(cfgText, "api_key: "+slowKey, "api_key: {"+slowKey+": 1}", 1),
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

// Gemini's paths: keys in x-goog-api-key and in ?key=, probed and sent
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
		for _, tc := range []struct{ query, header string }{
			{"", key}, {"?key=" + key, ""}, {"?alt=sse;key=" + key, good}, {"?k%zzey=" + key, ""}, {"?key=" + key, stranger},
		} {
			req, err := http.NewRequest(http.MethodPost, path+tc.query, strings.NewReader(`{"contents":[{"parts":[{"text":"`+key+`"}]}]}`))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("X-Goog-Api-Key", tc.header)
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
