package scheduler

import (
	"context"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// fakeClock is shared by the simulator, the prober and the scheduler, so
// scrape-mode tests decide exactly when time passes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type clockFixture struct {
	*fixture
	clock *fakeClock
}

// newScrapeFixture probes one key, keyA, with one model, in scrape mode on a fake clock.
func newScrapeFixture(t *testing.T, minInterval time.Duration, share float64, limits simulator.Limits) *clockFixture {
	t.Helper()
	// Real now: probe deadlines, fake now + timeout, are real contexts' deadlines.
	clock := &fakeClock{t: time.Now()}
	sim := simulator.New("m")
	sim.SetClock(clock.Now)
	sim.AddKey(keyA, limits)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := &config.Config{
		Probe: config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
			MinInterval: config.Duration(minInterval), Concurrency: 4, MaxQuotaShare: share},
		Keys: []config.Key{{Name: "a", Provider: "cerebras", APIKey: keyA, BaseURL: srv.URL + "/v1", Models: []string{"m"}}},
	}
	c := collector.New()
	c.Apply(cfg.Targets())
	p := prober.New("test")
	p.SetClock(clock.Now)
	s := newScheduler(p, c, log.NewNopLogger(), clock.Now, func() float64 { return 0.25 }) // jitter scales backoff by 0.75
	t.Cleanup(s.Stop)
	s.Apply(cfg)
	return &clockFixture{fixture: &fixture{sim: sim, collector: c, scheduler: s, cfg: cfg}, clock: clock}
}

// step advances the clock by d, scrapes, and checks how many probes the simulator has answered in all.
func (f *clockFixture) step(t *testing.T, d time.Duration, wantProbes int) {
	t.Helper()
	f.clock.Advance(d)
	f.scheduler.Refresh(context.Background())
	if got := f.sim.Requests(); got != wantProbes {
		t.Fatalf("after %s more: %d probes in all, want %d", d, got, wantProbes)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := newScrapeFixture(t, 0, 1, simulator.Limits{"requests": {"minute": 6}})
	f.sim.SetFault(keyA, simulator.No429Headers) // only Retry-After says when
	f.sim.Exhaust(keyA, "m")
	f.step(t, 0, 1)             // 429, Retry-After: 10 (one request refills in 10s)
	f.step(t, 9*time.Second, 1) // held
	f.step(t, 2*time.Second, 2) // 11s: allowed again
	if got := value(t, f.collector, "ratelimit_probes_total", "result", "rate_limited"); got != 1 {
		t.Errorf("rate_limited probes = %v, want 1", got)
	}
	if got := value(t, f.collector, "ratelimit_probes_total", "result", "success"); got != 1 {
		t.Errorf("successful probes = %v, want 1 after the wait", got)
	}
}

func TestExhaustedWindowWaitsForItsReset(t *testing.T) {
	f := newScrapeFixture(t, 0, 1, simulator.Limits{"requests": {"minute": 6}})
	f.sim.Exhaust(keyA, "m")
	f.step(t, 0, 1) // 429 with headers: remaining 0, reset 60s (Retry-After says 10s)
	if got := value(t, f.collector, "ratelimit_remaining", "window", "minute"); got != 0 {
		t.Errorf("remaining = %v, want 0", got)
	}
	if got := value(t, f.collector, "ratelimit_probe_success"); got != 1 {
		t.Errorf("a 429 with headers is a successful observation: success = %v", got)
	}
	f.step(t, 30*time.Second, 1)
	f.step(t, 29*time.Second, 1)
	f.step(t, 2*time.Second, 2) // 61s: past the reset
}

func TestUnauthorizedBacksOffUntilReloadOrSuccess(t *testing.T) {
	f := newScrapeFixture(t, 10*time.Second, 1, simulator.FreeTrial())
	f.sim.RevokeKey(keyA)
	f.step(t, 0, 1)              // 401: wait 20s
	f.step(t, 19*time.Second, 1) //
	f.step(t, 2*time.Second, 2)  // 401 again: wait 40s
	f.step(t, 39*time.Second, 2) //
	f.step(t, 2*time.Second, 3)  // and 80s next
	f.scheduler.Apply(f.cfg)     // a reload ends the backoff:
	f.step(t, 10*time.Second, 4) // the normal 10s (80s otherwise); 401 again: wait 20s
	f.sim.AddKey(keyA, simulator.FreeTrial())
	f.step(t, 10*time.Second, 4) //
	f.step(t, 10*time.Second, 5) // success ends the backoff:
	f.step(t, 10*time.Second, 6) // the normal 10s
}

func TestServerErrorsBackOffWithJitter(t *testing.T) {
	f := newScrapeFixture(t, 10*time.Second, 1, simulator.FreeTrial())
	f.sim.SetFault(keyA, simulator.ServerError)
	f.step(t, 0, 1)              // 503: 20s × 0.75 = 15s
	f.step(t, 14*time.Second, 1) //
	f.step(t, 2*time.Second, 2)  // 503: 40s × 0.75 = 30s
	f.step(t, 29*time.Second, 2) //
	f.step(t, 2*time.Second, 3)  //
	// The values read before the outage stay; success says the truth.
	if got := value(t, f.collector, "ratelimit_probe_success"); got != 0 {
		t.Errorf("success = %v during the outage", got)
	}
}

func TestQuotaShareStretchesTheInterval(t *testing.T) {
	limits := simulator.Limits{"requests": {"minute": 1000, "day": 14400}}
	f := newScrapeFixture(t, time.Minute, 0.05, limits)
	if got := value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 60 {
		t.Errorf("interval before any limit is known = %v, want 60", got)
	}
	f.step(t, 0, 1) // reads 14,400 a day: at most 720 probes a day
	if got := value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 120 {
		t.Errorf("interval = %v, want 120 (86,400 s / (0.05 × 14,400))", got)
	}
	f.step(t, 61*time.Second, 1)
	f.step(t, 58*time.Second, 1)
	f.step(t, time.Second, 2) // 120s
}

func TestQuotaShareInIntervalMode(t *testing.T) {
	f := newFixture(t, config.Probe{Mode: config.ModeInterval, Interval: config.Duration(time.Minute),
		Timeout: config.Duration(time.Second), Concurrency: 4, MaxQuotaShare: 0.05})
	f.sim.AddKey(keyA, simulator.Limits{"requests": {"minute": 1000, "day": 14400}})
	deadline := time.Now().Add(5 * time.Second)
	for value(t, f.collector, "ratelimit_probe_interval_seconds", "key", "a") != 120 {
		if time.Now().After(deadline) {
			t.Fatalf("interval of a = %v, want 120", value(t, f.collector, "ratelimit_probe_interval_seconds", "key", "a"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recordingProber notes when each target was probed.
type recordingProber struct {
	Prober
	mu    sync.Mutex
	times map[string][]time.Time
}

func (p *recordingProber) Probe(ctx context.Context, t config.Target) prober.Result {
	p.mu.Lock()
	p.times[t.Key.Name] = append(p.times[t.Key.Name], time.Now())
	p.mu.Unlock()
	return p.Prober.Probe(ctx, t)
}

func TestIntervalModeSpreadsProbesWithJitter(t *testing.T) {
	sim := simulator.New("m")
	srv := httptest.NewServer(sim)
	defer srv.Close()
	cfg := &config.Config{Probe: config.Probe{Mode: config.ModeInterval, Interval: config.Duration(time.Second),
		Timeout: config.Duration(time.Second), Concurrency: 16, MaxQuotaShare: 1}}
	const n = 10
	for i := range n {
		apiKey := "sk-test-spread-" + string(rune('a'+i))
		sim.AddKey(apiKey, simulator.Limits{"requests": {"minute": 1e6}})
		cfg.Keys = append(cfg.Keys, config.Key{Name: string(rune('a' + i)), Provider: "cerebras", APIKey: config.Secret(apiKey),
			BaseURL: srv.URL + "/v1", Models: []string{"m"}})
	}
	c := collector.New()
	c.Apply(cfg.Targets())
	rec := &recordingProber{Prober: prober.New("test"), times: map[string][]time.Time{}}
	s := New(rec, c, log.NewNopLogger())
	start := time.Now()
	s.Apply(cfg)
	time.Sleep(2300 * time.Millisecond)
	s.Stop()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var gaps []time.Duration
	for i := range n {
		times := rec.times[string(rune('a'+i))]
		if len(times) < 2 {
			t.Fatalf("target %d probed %d times in 2.3s at 1s", i, len(times))
		}
		// The first probes are spread over the interval: target i at i/10 of it.
		if offset, want := times[0].Sub(start), time.Duration(i)*100*time.Millisecond; offset < want || offset > want+60*time.Millisecond {
			t.Errorf("target %d first probed at %s, want about %s", i, offset, want)
		}
		gap := times[1].Sub(times[0])
		if gap < 900*time.Millisecond || gap > 1150*time.Millisecond {
			t.Errorf("target %d: %s between probes, want 1s ± 10%%", i, gap)
		}
		gaps = append(gaps, gap)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	if gaps[n-1]-gaps[0] < 10*time.Millisecond {
		t.Errorf("intervals %v hardly vary: no jitter", gaps)
	}
}
