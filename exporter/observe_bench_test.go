package exporter

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/proxy"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// What the proxy pays to record one reading of an application's response,
// from clients in parallel (run with -cpu=1,2): the collector, the
// scheduler and the history, with --history.limit 100 and 0.
func BenchmarkObserve(b *testing.B) {
	var keys strings.Builder
	for i := range 10 {
		fmt.Fprintf(&keys, "  - {name: k%d, provider: openai, api_key: sk-test-exporter-observe-%d, models: [gpt-4o-mini], base_url: \"http://127.0.0.1:1\"}\n", i, i)
	}
	cfg, err := config.Parse([]byte("probe: {mode: scrape}\nkeys:\n"+keys.String()+`proxy:
  listen_address: 127.0.0.1:0
  routes: [{path_prefix: /openai/, upstream: "http://127.0.0.1:1", provider: openai}]
`), "bench.yml")
	if err != nil {
		b.Fatal(err)
	}
	var obs []ratelimit.Observation
	for _, resource := range []string{"requests", "tokens"} {
		obs = append(obs,
			ratelimit.Observation{Kind: ratelimit.Limit, Resource: resource, Value: 1000},
			ratelimit.Observation{Kind: ratelimit.Remaining, Resource: resource, Value: 900},
			ratelimit.Observation{Kind: ratelimit.Reset, Resource: resource, Value: 30})
	}
	for _, limit := range []int{100, 0} {
		b.Run(fmt.Sprintf("history=%d", limit), func(b *testing.B) {
			e := New(Options{UserAgent: "test", Clock: clockwork.NewRealClock(), HistoryLimit: limit})
			b.Cleanup(e.Stop)
			if err := e.Apply(cfg); err != nil {
				b.Fatal(err)
			}
			var client atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				key := fmt.Sprintf("k%d", client.Add(1)%10)
				for pb.Next() {
					e.Observe(proxy.Observation{Key: key, Provider: "openai", Model: "gpt-4o-mini",
						Reading: ratelimit.Reading{Time: time.Now(), StatusCode: 200, Observations: obs}})
				}
			})
		})
	}
}
