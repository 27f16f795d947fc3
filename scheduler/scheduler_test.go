package scheduler

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

const (
	keyA = "sk-test-scheduler-a"
	keyB = "sk-test-scheduler-b"
)

type fixture struct {
	sim       *simulator.Simulator
	collector *collector.Collector
	scheduler *Scheduler
	cfg       *config.Config
}

func newFixture(t *testing.T, probe config.Probe) *fixture {
	t.Helper()
	sim := simulator.New("m")
	limits := simulator.Limits{"requests": {"minute": 1e6, "hour": 1e6, "day": 1e6}}
	sim.AddKey(keyA, limits)
	sim.AddKey(keyB, limits)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := &config.Config{Probe: probe, Keys: []config.Key{
		{Name: "a", Provider: "cerebras", APIKey: keyA, BaseURL: srv.URL + "/v1", Models: []string{"m"}},
		{Name: "b", Provider: "cerebras", APIKey: keyB, BaseURL: srv.URL + "/v1", Models: []string{"m"}},
	}}
	c := collector.New()
	c.Apply(cfg.Targets())
	s := newScheduler(prober.New("test"), c, log.NewNopLogger(), time.Now, func() float64 { return 0.5 }) // no jitter
	t.Cleanup(s.Stop)
	s.Apply(cfg)
	return &fixture{sim: sim, collector: c, scheduler: s, cfg: cfg}
}

func scrapeProbe(minInterval time.Duration) config.Probe {
	return config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
		MinInterval: config.Duration(minInterval), Concurrency: 16}
}

func TestParallelScrapesShareOneProbe(t *testing.T) {
	f := newFixture(t, scrapeProbe(time.Minute))
	f.sim.SetLatency(100 * time.Millisecond)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.scheduler.Refresh(context.Background())
		}()
	}
	wg.Wait()
	if got := f.sim.Requests(); got != 2 {
		t.Errorf("50 parallel scrapes sent %d probes, want 2 (one per key and model)", got)
	}
	// Within min_interval the last result is served again.
	f.scheduler.Refresh(context.Background())
	if got := f.sim.Requests(); got != 2 {
		t.Errorf("a scrape within min_interval probed: %d probes, want 2", got)
	}
	for _, key := range []string{"a", "b"} {
		if got := value(t, f.collector, "ratelimit_probes_total", "key", key, "result", "success"); got != 1 {
			t.Errorf("successful probes of %s = %v, want 1", key, got)
		}
	}
}

func TestScrapeModeProbesAgainAfterMinInterval(t *testing.T) {
	f := newFixture(t, scrapeProbe(0))
	for range 3 {
		f.scheduler.Refresh(context.Background())
	}
	if got := f.sim.Requests(); got != 6 {
		t.Errorf("3 scrapes with min_interval 0 sent %d probes, want 6", got)
	}
}

func TestScrapeDeadline(t *testing.T) {
	f := newFixture(t, scrapeProbe(0))
	f.sim.SetLatency(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	f.scheduler.Refresh(ctx)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("refresh took %s with a 200ms deadline", elapsed)
	}
	want := `# HELP ratelimit_probe_success Whether the last probe read rate-limit headers.
# TYPE ratelimit_probe_success gauge
ratelimit_probe_success{key="a",model="m",provider="cerebras"} 0
ratelimit_probe_success{key="b",model="m",provider="cerebras"} 0
`
	if err := testutil.CollectAndCompare(f.collector, strings.NewReader(want), "ratelimit_probe_success"); err != nil {
		t.Error(err)
	}
	if got := value(t, f.collector, "ratelimit_probes_total", "key", "a", "result", "timeout"); got != 1 {
		t.Errorf("timeouts recorded for a = %v, want 1", got)
	}
}

func TestIntervalModeProbesOnATimer(t *testing.T) {
	f := newFixture(t, config.Probe{Mode: config.ModeInterval, Interval: config.Duration(100 * time.Millisecond),
		Timeout: config.Duration(time.Second), Concurrency: 1})
	time.Sleep(480 * time.Millisecond)
	f.scheduler.Stop()
	got := f.sim.Requests()
	// First probes at 0 and 50ms, then every 100ms: 4 or 5 each by 480ms.
	if got < 6 || got > 10 {
		t.Errorf("%d probes in 480ms at a 100ms interval for 2 targets, want 6 to 10", got)
	}
	// Scrapes in interval mode never probe.
	f.scheduler.Refresh(context.Background())
	time.Sleep(150 * time.Millisecond)
	if after := f.sim.Requests(); after != got {
		t.Errorf("probes went on after Stop or a scrape probed: %d then %d", got, after)
	}
}

func TestApplyStopsRemovedTargets(t *testing.T) {
	f := newFixture(t, config.Probe{Mode: config.ModeInterval, Interval: config.Duration(50 * time.Millisecond),
		Timeout: config.Duration(time.Second), Concurrency: 4})
	time.Sleep(120 * time.Millisecond)
	only := *f.cfg
	only.Keys = f.cfg.Keys[:1]
	f.scheduler.Apply(&only)
	before := f.sim.Requests()
	time.Sleep(260 * time.Millisecond)
	probed := f.sim.Requests() - before
	if probed < 3 || probed > 6 {
		t.Errorf("%d probes in 260ms at 50ms for the one remaining target, want 3 to 6 (not the 2 targets of before)", probed)
	}
}

// value returns the value of the one series of name whose labels include the given name, value pairs.
func value(t *testing.T, c prometheus.Collector, name string, labelPairs ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if have[labelPairs[i]] != labelPairs[i+1] {
					continue metrics
				}
			}
			found = append(found, m.GetGauge().GetValue()+m.GetCounter().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labelPairs, len(found))
	}
	return found[0]
}
