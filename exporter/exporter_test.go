package exporter

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newExporter(t *testing.T) *Exporter {
	t.Helper()
	e := New(Options{UserAgent: "test", Registry: prometheus.NewRegistry(), Grace: time.Second})
	t.Cleanup(e.Stop)
	return e
}

// proxyConfig is a config whose proxy listens on address.
func proxyConfig(address, upstream string) string {
	return fmt.Sprintf(`probe: {mode: scrape, min_interval: 0s, max_quota_share: 1}
keys:
  - {name: k, provider: openai, api_key: sk-test-exporter-0001, base_url: %[2]s}
proxy:
  listen_address: %[1]s
  routes: [{path_prefix: /openai/, upstream: %[2]q, provider: openai}]
`, address, upstream)
}

func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get sends a request to the proxy and returns its status, or 0 when
// nothing answers.
func get(address string) int {
	resp, err := http.Get("http://" + address + "/openai/v1/models")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A config that fails to apply at any step changes nothing: the probes
// keep their clients, and the proxy its listener and routes.
func TestRefusedApplyChangesNothing(t *testing.T) {
	var upstream, forward atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { upstream.Add(1) }))
	t.Cleanup(up.Close)
	fwd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { forward.Add(1) }))
	t.Cleanup(fwd.Close)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })

	e := newExporter(t)
	running := freeAddress(t)
	if err := e.Apply(parse(t, proxyConfig(running, up.URL))); err != nil {
		t.Fatal(err)
	}
	refused := strings.Replace(proxyConfig(busy.Addr().String(), up.URL), "base_url: "+up.URL+"}",
		"base_url: "+up.URL+", http_client: {proxy_url: '"+fwd.URL+"'}}", 1)
	refused = strings.Replace(refused, "{name: k,", "{name: k, models: [m1, m2],", 1)
	refused = strings.Replace(refused, "path_prefix: /openai/", "path_prefix: /other/", 1)
	if err := e.Apply(parse(t, refused)); err == nil {
		t.Fatal("a config whose proxy port is busy was applied")
	}

	e.Refresh(context.Background())
	if forward.Load() != 0 || upstream.Load() != 1 {
		t.Errorf("after the refused config: %d probes through its proxy_url, %d to the upstream; want 0 and 1", forward.Load(), upstream.Load())
	}
	if got := e.Targets(); len(got) != 1 || got[0].Model != "gpt-4o-mini" {
		t.Errorf("targets after the refused config: %v", got)
	}
	if status := get(running); status != http.StatusOK {
		t.Errorf("the running proxy's route answered %d after the refused config, want 200", status)
	}
	var metrics strings.Builder
	if err := e.Readings().WriteText(&metrics, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(metrics.String(), `model="m1"`) {
		t.Error("the refused config's targets are in the metrics")
	}
}

// A reload can move the proxy to another port, and remove it: the old
// listener closes once the new config is in force.
func TestProxyMovesAndGoes(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(up.Close)
	e := newExporter(t)
	first, second := freeAddress(t), freeAddress(t)
	if err := e.Apply(parse(t, proxyConfig(first, up.URL))); err != nil {
		t.Fatal(err)
	}
	if status := get(first); status != http.StatusOK {
		t.Fatalf("proxy at %s: %d", first, status)
	}
	if err := e.Apply(parse(t, proxyConfig(second, up.URL))); err != nil {
		t.Fatal(err)
	}
	if status := get(second); status != http.StatusOK {
		t.Errorf("proxy moved to %s: %d", second, status)
	}
	e.mu.Lock()
	e.draining.Wait() // the first listener drains
	e.mu.Unlock()
	if status := get(first); status != 0 {
		t.Errorf("the old listener %s still answers: %d", first, status)
	}
	noProxy := parse(t, strings.Split(proxyConfig(second, up.URL), "proxy:")[0])
	if err := e.Apply(noProxy); err != nil {
		t.Fatal(err)
	}
	e.draining.Wait()
	if status := get(second); status != 0 {
		t.Errorf("the proxy still answers after its block was removed: %d", status)
	}
}

// A reload that keeps the proxy's address applies its routes to the
// running listener, and refuses what the listener cannot take without a
// restart.
func TestProxyReloadOnItsAddress(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(up.Close)
	e := newExporter(t)
	address := freeAddress(t)
	if err := e.Apply(parse(t, proxyConfig(address, up.URL))); err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(proxyConfig(address, up.URL), "path_prefix: /openai/", "path_prefix: /moved/", 1)
	if err := e.Apply(parse(t, moved)); err != nil {
		t.Fatal(err)
	}
	if status := get(address); status != http.StatusNotFound {
		t.Errorf("the old route answers %d after the reload, want 404", status)
	}
	if resp, err := http.Get("http://" + address + "/moved/v1/models"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the new route: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	fewer := strings.Replace(moved, "  routes:", "  max_connections: 5\n  routes:", 1)
	fewer = strings.Replace(fewer, "path_prefix: /moved/", "path_prefix: /third/", 1)
	if err := e.Apply(parse(t, fewer)); err == nil || !strings.Contains(err.Error(), "max_connections") {
		t.Errorf("a new max_connections on the running address: %v, want it refused", err)
	}
	if resp, err := http.Get("http://" + address + "/moved/v1/models"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the running route after the refused reload: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// The proxy runs at Go's GC percent, 100, not the exporter's lowered 50:
// proxied requests allocate far more than the metrics the 50 is for.
func TestProxyRunsAtGoDefaultGCPercent(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: the exporter leaves the GC percent alone")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(defaultGCPercent))
	e := newExporter(t)
	if got := debug.SetGCPercent(defaultGCPercent); got != defaultGCPercent {
		t.Errorf("GC percent without a proxy: %d, want %d", got, defaultGCPercent)
	}
	if err := e.Apply(parse(t, proxyConfig("127.0.0.1:0", "http://127.0.0.1:9"))); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent with the proxy running: %d, want 100", got)
	}
}
