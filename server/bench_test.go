package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// fullObservations is the 18-value Cerebras header set.
func fullObservations() []ratelimit.Observation {
	var obs []ratelimit.Observation
	for _, resource := range []string{"requests", "tokens"} {
		for _, window := range []string{"day", "hour", "minute"} {
			obs = append(obs,
				ratelimit.Observation{Kind: ratelimit.Limit, Resource: resource, Window: window, Value: 1e6},
				ratelimit.Observation{Kind: ratelimit.Remaining, Resource: resource, Window: window, Value: 987654},
				ratelimit.Observation{Kind: ratelimit.Reset, Resource: resource, Window: window, Value: 41.204916477203369})
		}
	}
	return obs
}

// benchCollector holds n keys with 3 models each, every one probed once.
func benchCollector(n int) *collector.Collector {
	cfg := &config.Config{}
	for i := range n {
		cfg.Keys = append(cfg.Keys, config.Key{Name: fmt.Sprintf("key-%04d", i), Provider: "cerebras",
			Models: []string{"llama3.1-8b", "llama-3.3-70b", "qwen-3-32b"}, Labels: map[string]string{"team": "search"}})
	}
	c := collector.New()
	c.Apply(cfg)
	now := time.Now()
	for _, t := range cfg.Targets() {
		c.Record(t.ID(), &prober.Result{Reading: ratelimit.Reading{Time: now, StatusCode: 200, Observations: fullObservations()}, Duration: 80 * time.Millisecond, Outcome: prober.Success, Tokens: 10})
		c.SetInterval(t.ID(), time.Minute)
	}
	return c
}

func benchRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// BenchmarkMetrics serves /metrics as the exporter does: the registry's
// metrics, then the text rendered when probes ended.
func BenchmarkMetrics(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			h := metricsHandler(benchRegistry(), benchCollector(n), 0, log.NewNopLogger())
			benchHandler(b, h)
		})
	}
}

// BenchmarkMetricsGzip is BenchmarkMetrics asked for gzip, as Prometheus
// asks: the text's segments are copied as they were compressed.
func BenchmarkMetricsGzip(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			h := metricsHandler(benchRegistry(), benchCollector(n), 0, log.NewNopLogger())
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			benchRequest(b, h, req)
		})
	}
}

// BenchmarkMetricsGzipAfterProbes is BenchmarkMetricsGzip after a probe
// of every target: the scrape renders and compresses every block again,
// as when every target is probed between two scrapes.
func BenchmarkMetricsGzipAfterProbes(b *testing.B) {
	const n = 1000
	c := benchCollector(n)
	h := metricsHandler(benchRegistry(), c, 0, log.NewNopLogger())
	cfg := &config.Config{}
	for i := range n {
		cfg.Keys = append(cfg.Keys, config.Key{Name: fmt.Sprintf("key-%04d", i), Provider: "cerebras",
			Models: []string{"llama3.1-8b", "llama-3.3-70b", "qwen-3-32b"}, Labels: map[string]string{"team": "search"}})
	}
	targets := cfg.Targets()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		now := time.Now()
		for _, t := range targets {
			c.Record(t.ID(), &prober.Result{Reading: ratelimit.Reading{Time: now, StatusCode: 200, Observations: fullObservations()}, Duration: time.Duration(i) * time.Millisecond, Outcome: prober.Success})
		}
		b.StartTimer()
		h.ServeHTTP(&discard{header: http.Header{}}, req)
	}
}

// BenchmarkMetricsCollectPath serves the same metrics by collecting them on
// every scrape through promhttp, for comparison with the render cache.
func BenchmarkMetricsCollectPath(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			reg := benchRegistry()
			reg.MustRegister(benchCollector(n))
			benchHandler(b, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		})
	}
}

func benchHandler(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "identity")
	benchRequest(b, h, req)
}

func benchRequest(b *testing.B, h http.Handler, req *http.Request) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b.SetBytes(int64(rec.Body.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := &discard{header: http.Header{}}
		h.ServeHTTP(w, req)
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkProbe serves /probe for one of n keys x 3 models, as Prometheus
// scrapes each target of /sd.
func BenchmarkProbe(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			c := benchCollector(n)
			cfg := &config.Config{}
			for i := range n {
				cfg.Keys = append(cfg.Keys, config.Key{Name: fmt.Sprintf("key-%04d", i), Provider: "cerebras",
					Models: []string{"llama3.1-8b", "llama-3.3-70b", "qwen-3-32b"}})
			}
			targets := cfg.Targets() // listed once a load, as main does
			h := probeHandler(Options{Observations: c, Targets: func() []config.Target { return targets }, Logger: log.NewNopLogger()})
			req := httptest.NewRequest("GET", fmt.Sprintf("/probe?key=key-%04d&model=qwen-3-32b", n/2), nil)
			req.Header.Set("Accept-Encoding", "identity")
			benchRequest(b, h, req)
		})
	}
}

// A /probe is scraped for every target, so its cost is per target, not per
// exporter: it must not allocate anything of the size of all the metrics.
func TestProbeAllocatesLittle(t *testing.T) {
	c := benchCollector(1000)
	cfg := &config.Config{}
	for i := range 1000 {
		cfg.Keys = append(cfg.Keys, config.Key{Name: fmt.Sprintf("key-%04d", i), Provider: "cerebras",
			Models: []string{"llama3.1-8b", "llama-3.3-70b", "qwen-3-32b"}})
	}
	targets := cfg.Targets()
	h := probeHandler(Options{Observations: c, Targets: func() []config.Target { return targets }, Logger: log.NewNopLogger()})
	req := httptest.NewRequest("GET", "/probe?key=key-0500&model=qwen-3-32b", nil)
	req.Header.Set("Accept-Encoding", "identity")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		h.ServeHTTP(&discard{header: http.Header{}}, req)
	}
	runtime.ReadMemStats(&after)
	perRequest := (after.TotalAlloc - before.TotalAlloc) / runs
	if limit := uint64(4 * rec.Body.Len()); perRequest > limit {
		t.Errorf("a /probe of a %d-byte target allocates %d bytes, want at most %d", rec.Body.Len(), perRequest, limit)
	}
}

// BenchmarkLimits serves /api/v1/limits of n keys x 3 models: the whole
// report, and one key's, which costs a whole snapshot too.
func BenchmarkLimits(b *testing.B) {
	for _, n := range []int{10, 1000} {
		c := benchCollector(n)
		limits := func(now time.Time) snapshot.Report {
			r := snapshot.Report{SchemaVersion: snapshot.Version, GeneratedAt: now, Targets: c.Snapshot(now)}
			r.OK = r.Healthy()
			return r
		}
		h := limitsHandler(Options{Limits: limits, Logger: log.NewNopLogger()})
		for _, query := range []string{"", fmt.Sprintf("?key=key-%04d", n/2)} {
			b.Run(fmt.Sprintf("keys=%d/%s", n, query), func(b *testing.B) {
				benchRequest(b, h, httptest.NewRequest("GET", LimitsPath+query, nil))
			})
		}
	}
}
