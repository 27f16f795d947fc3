package main

import (
	"os"
	"runtime/debug"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// The proxy runs at Go's GC percent, 100, not the exporter's lowered 50:
// proxied requests allocate far more than the metrics the 50 is for.
func TestProxyRunsAtGoDefaultGCPercent(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: the exporter leaves the GC percent alone")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(defaultGCPercent))
	cfg, err := config.Parse([]byte(`keys:
  - {name: k, provider: openai, api_key: sk-test-gc-percent-0001}
proxy:
  listen_address: 127.0.0.1:0
  routes:
    - {path_prefix: /openai/, upstream: "http://127.0.0.1:9", provider: openai}
`), "gc.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := &passive{registry: prometheus.NewRegistry(), grace: time.Second, logger: log.NewNopLogger()}
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if got := debug.SetGCPercent(defaultGCPercent); got != 100 {
		t.Errorf("GC percent with the proxy running: %d, want 100", got)
	}
}
