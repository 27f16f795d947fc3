package exporter

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/proxy"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// keysConfig is a config of keys k<from>..k<to-1>, each with one model,
// and a proxy route.
func keysConfig(t *testing.T, from, to int) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("probe: {mode: scrape}\nkeys:\n")
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "  - {name: k%d, provider: openai, api_key: sk-test-exporter-reload-canary-%d, models: [m], base_url: \"http://127.0.0.1:1\"}\n", i, i)
	}
	b.WriteString("proxy:\n  listen_address: 127.0.0.1:0\n  routes: [{path_prefix: /openai/, upstream: \"http://127.0.0.1:1\", provider: openai}]\n")
	cfg, err := config.Parse([]byte(b.String()), "reload.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Reloads that remove and add back 500 of 1,000 keys while the proxy's
// readings of every key are recorded and the recent ones read: no race,
// and once the last reload is done, no reading of a removed key is kept.
func TestHistoryUnderReloadsAndProxyLoad(t *testing.T) {
	e := New(Options{UserAgent: "test", Clock: clockwork.NewRealClock(), HistoryLimit: 100})
	t.Cleanup(e.Stop)
	all, half := keysConfig(t, 0, 1000), keysConfig(t, 0, 500)
	if err := e.Apply(all); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for client := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := client; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				e.Observe(proxy.Observation{Key: fmt.Sprintf("k%d", i%1000), Provider: "openai", Model: "m",
					Reading: ratelimit.Reading{Time: time.Now(), StatusCode: 200, Observations: []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Value: float64(i)}}}})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var log bytes.Buffer
			for _, entry := range e.History().Recent() {
				entry.WriteLog(&log)
			}
		}
	}()
	for round := range 20 {
		next := half
		if round%2 == 1 {
			next = all
		}
		if err := e.Apply(next); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Apply(half); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	for _, entry := range e.History().Recent() {
		var n int
		if _, err := fmt.Sscanf(entry.Target.Key, "k%d", &n); err != nil || n >= 500 {
			t.Errorf("a reading of %q is kept after a reload removed it", entry.Target.Key)
		}
	}
}
