package otlp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// BenchmarkPush is one push of 1,000 keys' readings (six windows each), as
// the periodic reader makes it: gather, convert, encode, send.
func BenchmarkPush(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer sink.Close()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
	b.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")

	cfg := &config.Config{}
	for i := range 1000 {
		cfg.Keys = append(cfg.Keys, config.Key{Name: fmt.Sprintf("key-%04d", i), Provider: "cerebras", Models: []string{"m"}})
	}
	readings := collector.New()
	readings.Apply(cfg)
	var obs []ratelimit.Observation
	for _, resource := range []string{"requests", "tokens"} {
		for _, window := range []string{"minute", "hour", "day"} {
			obs = append(obs,
				ratelimit.Observation{Kind: ratelimit.Limit, Resource: resource, Window: window, Value: 1000},
				ratelimit.Observation{Kind: ratelimit.Remaining, Resource: resource, Window: window, Value: 900},
				ratelimit.Observation{Kind: ratelimit.Reset, Resource: resource, Window: window, Value: 30})
		}
	}
	for _, target := range cfg.Targets() {
		readings.Record(target.ID(), &prober.Result{Reading: ratelimit.Reading{Time: time.Unix(1795000000, 0), StatusCode: 200, Observations: obs}, Duration: time.Second, Outcome: prober.Success})
	}
	p, err := Start(Options{Registry: prometheus.NewRegistry(), Readings: readings, Logger: log.NewNopLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop(time.Second)
	series := 0
	families := Gatherer(prometheus.NewRegistry(), readings)
	mfs, err := families.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.provider.ForceFlush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(series), "series")
}
