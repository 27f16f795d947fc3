package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// A reload that fails at any step changes nothing: here the new config
// sends probes through a forward proxy and adds a proxy block on a busy
// port. The reload is refused, and the next probe goes out as before, not
// through the refused config's proxy_url with the key.
func TestRefusedReloadChangesNothing(t *testing.T) {
	sim, url := startSimulator(t)
	var throughForwardProxy atomic.Int64
	forward := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		throughForwardProxy.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(forward.Close)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })

	running := fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s, max_quota_share: 1}
keys:
  - {name: good, api_key: %s, base_url: %s, models: [llama3.1-8b]}
`, goodKey, url)
	cfg := testkit.WriteConfig(t, running)
	e := start(t, nil, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras"} 1`)

	refused := strings.Replace(running, "models: [llama3.1-8b]}", "models: [llama3.1-8b], http_client: {proxy_url: '"+forward.URL+"'}}", 1) +
		fmt.Sprintf("proxy:\n  listen_address: %s\n  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]\n", busy.Addr(), url)
	if err := os.WriteFile(cfg, []byte(refused), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do(t, http.MethodPost, "/-/reload"); status != http.StatusInternalServerError {
		t.Fatalf("reload onto a busy proxy port: %d %s", status, body)
	}
	before := sim.Requests()
	e.waitFor(t, `ratelimit_exporter_config_last_reload_successful 0`)
	if sim.Requests() == before {
		t.Error("the scrape after the refused reload sent no probe")
	}
	if n := throughForwardProxy.Load(); n != 0 {
		t.Errorf("%d probes went through the refused config's proxy_url", n)
	}
}

// A key that a reload removes while one of its requests is in flight
// through the proxy does not come back when the answer arrives.
func TestRemovedKeyStaysRemoved(t *testing.T) {
	const otherKey = "sk-test-canary-reload-other-3b9e"
	sim := simulator.New("llama3.1-8b")
	sim.AddKey(goodKey, simulator.FreeTrial())
	sim.AddKey(otherKey, simulator.FreeTrial())
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+otherKey && r.Method == http.MethodPost && r.Header.Get("X-Hold") != "" {
			arrived <- struct{}{}
			<-release
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(upstream.Close)

	proxyAddr := testkit.FreeAddr(t)
	config := func(keys string) string {
		return fmt.Sprintf(`probe: {interval: 1h}
keys:
%s
proxy:
  listen_address: %s
  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]
`, keys, proxyAddr, upstream.URL)
	}
	good := fmt.Sprintf("  - {name: good, api_key: %s, base_url: %s/v1}", goodKey, upstream.URL)
	other := fmt.Sprintf("  - {name: other, api_key: %s, base_url: %s/v1}", otherKey, upstream.URL)
	cfg := testkit.WriteConfig(t, config(good+"\n"+other))
	e := start(t, nil, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_probe_success{key="other",model="llama3.1-8b",provider="cerebras"} 1`)

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions",
			strings.NewReader(`{"model":"llama3.1-8b","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1}`))
		req.Header.Set("Authorization", "Bearer "+otherKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hold", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-arrived
	if err := os.WriteFile(cfg, []byte(config(good)), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do(t, http.MethodPost, "/-/reload"); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	close(release)
	if status := <-answered; status != http.StatusOK {
		t.Fatalf("the proxied request in flight during the reload: status %d", status)
	}
	// The reading was taken before the answer was forwarded.
	if _, body := e.get(t, "/metrics"); strings.Contains(body, `key="other"`) {
		t.Errorf("the removed key came back:\n%s", grepLines(body, `key="other"`))
	}
	e.waitFor(t, `ratelimit_readings_dropped_total{reason="key_not_configured"} 1`)
}

// A proxied 429's Retry-After holds probes of its key and model off: in
// scrape mode, the scrape that follows it sends no probe.
func TestProxiedRetryAfterHoldsProbes(t *testing.T) {
	sim := simulator.New("llama3.1-8b")
	sim.AddKey(goodKey, simulator.FreeTrial())
	var throttle atomic.Bool
	var arrivals atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals.Add(1)
		if throttle.Load() {
			w.Header().Set("Retry-After", "600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(upstream.Close)
	proxyAddr := testkit.FreeAddr(t)
	cfg := testkit.WriteConfig(t, fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s, max_quota_share: 1}
keys:
  - {name: good, api_key: %s, base_url: %s/v1}
proxy:
  listen_address: %s
  routes: [{path_prefix: /c/, upstream: %s, provider: cerebras}]
`, goodKey, upstream.URL, proxyAddr, upstream.URL))
	e := start(t, nil, "--config.file="+cfg)
	e.waitFor(t, `ratelimit_probe_success{key="good",model="llama3.1-8b",provider="cerebras"} 1`)

	throttle.Store(true)
	req, _ := http.NewRequest(http.MethodPost, "http://"+proxyAddr+"/c/v1/chat/completions",
		strings.NewReader(`{"model":"llama3.1-8b","messages":[{"role":"user","content":"Hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+goodKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("proxied request: status %d, want the upstream's 429", resp.StatusCode)
	}
	before := arrivals.Load()
	_, body := e.get(t, "/metrics") // a scrape-mode scrape probes what is due
	if arrivals.Load() != before || !strings.Contains(body, `ratelimit_probes_total{cause="",key="good",model="llama3.1-8b",provider="cerebras",reason="",result="rate_limited"} 0`) {
		t.Errorf("a probe went out within the proxied 429's Retry-After of 600s")
	}
	if !strings.Contains(body, `ratelimit_proxy_rate_limited_total{cause="rate_limit",key="good",model="llama3.1-8b",provider="cerebras"} 1`) {
		t.Errorf("the proxied 429 is not counted:\n%s", grepLines(body, "rate_limited"))
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, sub) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}
