package scheduler

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
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
	c.Apply(cfg)
	s := newScheduler(prober.New("test"), c, log.NewNopLogger(), clockwork.NewRealClock(), func() float64 { return 0.5 }) // no jitter
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
		if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "key", key, "result", "success"); got != 1 {
			t.Errorf("successful probes of %s = %v, want 1", key, got)
		}
	}
}

// /probe's path: scrapers of one target, and of everything, share one
// probe of it, and min_interval holds for all of them.
func TestRefreshTargetSharesProbes(t *testing.T) {
	f := newFixture(t, scrapeProbe(time.Minute))
	f.sim.SetLatency(100 * time.Millisecond)
	a := config.TargetID{Key: "a", Model: "m"}
	if !f.scheduler.RefreshTarget(context.Background(), a) {
		t.Fatal("RefreshTarget(a/m) reported an unknown target")
	}
	if got := f.sim.Requests(); got != 1 {
		t.Fatalf("RefreshTarget(a/m) sent %d probes, want 1: only its own target", got)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if i%2 == 0 {
				f.scheduler.RefreshTarget(context.Background(), config.TargetID{Key: "b", Model: "m"})
			} else {
				f.scheduler.Refresh(context.Background())
			}
		})
	}
	wg.Wait()
	if got := f.sim.Requests(); got != 2 {
		t.Errorf("%d probes in all, want 2: b once, a not again within min_interval", got)
	}
	if f.scheduler.RefreshTarget(context.Background(), config.TargetID{Key: "a", Model: "other"}) {
		t.Error("RefreshTarget of a model not configured reported it found")
	}
	if got := f.sim.Requests(); got != 2 {
		t.Errorf("%d probes after asking for an unknown target, want 2", got)
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

// A scraper's deadline ends its own wait, not the probes: they go on with
// the full probe timeout and their results serve the next scrape. A client
// that sends X-Prometheus-Scrape-Timeout-Seconds: 0.001 cannot turn probes
// into timeouts.
func TestScrapeDeadlineEndsOnlyTheWait(t *testing.T) {
	f := newFixture(t, scrapeProbe(time.Minute))
	f.sim.SetLatency(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	start := time.Now()
	f.scheduler.Refresh(ctx)
	if elapsed := time.Since(start); elapsed >= 300*time.Millisecond {
		t.Errorf("a scrape with a 1ms deadline waited %s, as long as the probes", elapsed)
	}
	// A scrape without a deadline joins the probes under way.
	f.scheduler.Refresh(context.Background())
	if got := f.sim.Requests(); got != 2 {
		t.Errorf("%d probes, want 2: the second scrape should join the probes under way", got)
	}
	for _, key := range []string{"a", "b"} {
		if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "key", key, "result", "success"); got != 1 {
			t.Errorf("successful probes of %s = %v, want 1", key, got)
		}
		if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "key", key, "result", "timeout"); got != 0 {
			t.Errorf("timeouts of %s = %v, want 0: the scraper's deadline is not the probe's", key, got)
		}
	}
}
