package scheduler

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

type clockFixture struct {
	*fixture
	clock *clockwork.FakeClock
}

// newScrapeFixture probes one key, keyA, with one model, in scrape mode on a fake clock.
func newScrapeFixture(t *testing.T, minInterval time.Duration, share float64, limits simulator.Limits) *clockFixture {
	t.Helper()
	// One fake clock for the simulator, the prober and the scheduler.
	clock := clockwork.NewFakeClockAt(time.Now())
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
	c.Apply(cfg)
	p := prober.New("test")
	p.SetClock(clock.Now)
	s := newScheduler(p, c, log.NewNopLogger(), clock, func() float64 { return 0.25 }) // jitter scales backoff by 0.75
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
	if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "result", "rate_limited", "reason", "request_quota_exceeded"); got != 1 {
		t.Errorf("rate_limited probes = %v, want 1", got)
	}
	if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "result", "success"); got != 1 {
		t.Errorf("successful probes = %v, want 1 after the wait", got)
	}
}

func TestExhaustedWindowWaitsForItsReset(t *testing.T) {
	f := newScrapeFixture(t, 0, 1, simulator.Limits{"requests": {"minute": 6}})
	f.sim.Exhaust(keyA, "m")
	f.step(t, 0, 1) // 429 with headers: remaining 0, reset 60s (Retry-After says 10s)
	if got := testkit.Value(t, f.collector, "ratelimit_remaining", "window", "minute"); got != 0 {
		t.Errorf("remaining = %v, want 0", got)
	}
	if got := testkit.Value(t, f.collector, "ratelimit_probe_success"); got != 1 {
		t.Errorf("a 429 with headers is a successful observation: success = %v", got)
	}
	f.step(t, 30*time.Second, 1)
	f.step(t, 29*time.Second, 1)
	f.step(t, 2*time.Second, 2) // 61s: past the reset
}

func TestUnauthorizedBacksOffUntilTheKeyChangesOrSucceeds(t *testing.T) {
	f := newScrapeFixture(t, 10*time.Second, 1, simulator.FreeTrial())
	f.sim.RevokeKey(keyA)
	f.step(t, 0, 1)              // 401: wait 20s
	f.step(t, 19*time.Second, 1) //
	f.step(t, 2*time.Second, 2)  // 401 again: wait 40s
	f.step(t, 39*time.Second, 2) //
	f.step(t, 2*time.Second, 3)  // and 80s next
	same := *f.cfg
	same.Keys = append([]config.Key(nil), f.cfg.Keys...)
	same.Keys[0].Labels = map[string]string{"team": "search"}
	f.scheduler.Apply(&same)     // a reload that leaves the key's settings alone keeps the backoff
	f.step(t, 10*time.Second, 3) //
	f.step(t, 69*time.Second, 3) // 79s
	f.step(t, 2*time.Second, 4)  // 81s: 401 again: wait 160s
	fixed := same
	fixed.Keys = append([]config.Key(nil), same.Keys...)
	fixed.Keys[0].APIKey = keyB
	f.sim.AddKey(keyB, simulator.FreeTrial())
	f.scheduler.Apply(&fixed)    // a reload that changes the key ends its backoff:
	f.step(t, 10*time.Second, 5) // the normal 10s (160s otherwise); success
	f.step(t, 9*time.Second, 5)  //
	f.step(t, time.Second, 6)    // the normal 10s
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
	if got := testkit.Value(t, f.collector, "ratelimit_probe_success"); got != 0 {
		t.Errorf("success = %v during the outage", got)
	}
}

func TestQuotaShareStretchesTheInterval(t *testing.T) {
	limits := simulator.Limits{"requests": {"minute": 1000, "day": 14400}}
	f := newScrapeFixture(t, time.Minute, 0.05, limits)
	if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 60 {
		t.Errorf("interval before any limit is known = %v, want 60", got)
	}
	f.step(t, 0, 1) // reads 14,400 a day: at most 720 probes a day
	if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 120 {
		t.Errorf("interval = %v, want 120 (86,400 s / (0.05 × 14,400))", got)
	}
	f.step(t, 61*time.Second, 1)
	f.step(t, 58*time.Second, 1)
	f.step(t, time.Second, 2) // 120s
}

// In scrape mode min_interval alone decides: a reload that changes only
// probe.interval changes nothing.
func TestScrapeModeIgnoresProbeInterval(t *testing.T) {
	f := newScrapeFixture(t, 10*time.Second, 1, simulator.FreeTrial())
	f.step(t, 0, 1)
	longer := *f.cfg
	longer.Probe.Interval = config.Duration(24 * time.Hour)
	f.scheduler.Apply(&longer)
	f.step(t, 9*time.Second, 1)
	f.step(t, time.Second, 2) // 10s: min_interval
	f.step(t, 10*time.Second, 3)
	shorter := longer
	shorter.Probe.Interval = config.Duration(time.Second)
	f.scheduler.Apply(&shorter)
	f.step(t, 5*time.Second, 3) // still min_interval's 10s, not probe.interval's 1s
	f.step(t, 5*time.Second, 4)
}

// What the provider asked outlives a reload that leaves the key alone, or
// changes only how often it is probed.
func TestHoldOutlivesAReload(t *testing.T) {
	f := newScrapeFixture(t, 0, 1, simulator.Limits{"requests": {"minute": 6}})
	f.sim.Exhaust(keyA, "m")
	f.step(t, 0, 1) // remaining 0, reset 60s
	other := *f.cfg
	other.Probe.MinInterval = config.Duration(5 * time.Second)
	other.Probe.Interval = config.Duration(time.Hour)
	other.Keys = []config.Key{f.cfg.Keys[0]}
	other.Keys[0].ProbeInterval = new(config.Duration(5 * time.Second)) // how often to probe, not how probes fare
	f.scheduler.Apply(&other)
	f.step(t, 30*time.Second, 1)
	f.step(t, 29*time.Second, 1)
	f.step(t, 2*time.Second, 2) // 61s: past the reset
}

// A reload that changes how a key is sent to the same place (its
// api_version, its HTTP client) keeps what the provider asked of its
// quota, which is the same whatever the request's shape; it ends a
// backoff, which the old way may have earned.
func TestHoldOutlivesAReloadOfHowTheKeyIsSent(t *testing.T) {
	f := newScrapeFixture(t, 0, 1, simulator.Limits{"requests": {"minute": 6}})
	f.sim.Exhaust(keyA, "m")
	f.step(t, 0, 1) // remaining 0, reset 60s
	other := *f.cfg
	other.Keys = []config.Key{f.cfg.Keys[0]}
	other.Keys[0].APIVersion = "v1"
	other.Keys[0].HTTPClient.FollowRedirects = true
	f.scheduler.Apply(&other)
	f.step(t, 30*time.Second, 1)
	f.step(t, 29*time.Second, 1)
	f.step(t, 2*time.Second, 2) // 61s: past the reset

	f.sim.RevokeKey(keyA)
	f.step(t, 10*time.Second, 3) // 401: backing off
	again := other
	again.Keys = []config.Key{other.Keys[0]}
	again.Keys[0].APIVersion = ""
	f.scheduler.Apply(&again) // ends the backoff:
	f.step(t, 0, 4)           // probed at once (min_interval 0s)
}

// answers is a Prober that returns the same result to every probe, and counts them.
type answers struct {
	clock  clockwork.Clock
	result prober.Result
	sent   int
}

func (a *answers) Probe(context.Context, config.Target) prober.Result {
	a.sent++
	r := a.result
	r.Time = a.clock.Now()
	return r
}

// A free probe (OpenRouter's key endpoint) reads limits it does not spend:
// even a limit of 100 requests a day does not stretch its interval.
func TestFreeProbesAreNotStretched(t *testing.T) {
	for _, free := range []bool{true, false} {
		clock := clockwork.NewFakeClock()
		a := &answers{clock: clock, result: prober.Result{Reading: ratelimit.Reading{StatusCode: 200, Observations: []ratelimit.Observation{limit("requests", "day", 100)}}, Outcome: prober.Success, Free: free}}
		c := collector.New()
		cfg := &config.Config{
			Probe: config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
				MinInterval: config.Duration(time.Minute), Concurrency: 1, MaxQuotaShare: 0.05},
			Keys: []config.Key{{Name: "r", Provider: "openrouter", APIKey: keyA, BaseURL: "http://127.0.0.1:1", Models: []string{""}}},
		}
		c.Apply(cfg)
		s := newScheduler(a, c, log.NewNopLogger(), clock, noJitter)
		s.Apply(cfg)
		s.Refresh(context.Background())
		clock.Advance(time.Minute)
		s.Refresh(context.Background())
		s.Stop()
		want, interval := 2, 60.0
		if !free {
			want, interval = 1, 17280 // 86,400 s / (0.05 × 100)
		}
		if a.sent != want || testkit.Value(t, c, "ratelimit_probe_interval_seconds") != interval {
			t.Errorf("free=%v: %d probes a minute apart, interval %v; want %d, %v", free, a.sent, testkit.Value(t, c, "ratelimit_probe_interval_seconds"), want, interval)
		}
	}
}

// A reload that gives a key's name to another provider probes it at once:
// the old API's interval, stretch and holds say nothing of the new one.
func TestProviderChangeProbesAtOnce(t *testing.T) {
	clock := clockwork.NewFakeClock()
	a := &answers{clock: clock, result: prober.Result{Reading: ratelimit.Reading{StatusCode: 200, Observations: []ratelimit.Observation{limit("requests", "day", 100)}}, Outcome: prober.Success}}
	c := collector.New()
	cfg := &config.Config{
		Probe: config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
			MinInterval: config.Duration(time.Minute), Concurrency: 1, MaxQuotaShare: 0.05},
		Keys: []config.Key{{Name: "k", Provider: "cerebras", APIKey: keyA, BaseURL: "http://127.0.0.1:1", Models: []string{"m"}}},
	}
	c.Apply(cfg)
	s := newScheduler(a, c, log.NewNopLogger(), clock, noJitter)
	defer s.Stop()
	s.Apply(cfg)
	s.Refresh(context.Background()) // stretched: 100 a day at 5% is one probe every 4.8h
	moved := *cfg
	moved.Keys = []config.Key{cfg.Keys[0]}
	moved.Keys[0].Provider = "anthropic"
	c.Apply(&moved)
	s.Apply(&moved)
	s.Refresh(context.Background())
	if a.sent != 2 {
		t.Errorf("%d probes: the key at its new provider was not probed at once", a.sent)
	}
}

// A provider that says nothing until a quota runs out (Gemini) is probed
// at its own minimum interval, whatever probe.interval or min_interval
// say, unless the key sets probe_interval, which wins either way.
func TestProviderMinInterval(t *testing.T) {
	served := prober.Result{Reading: ratelimit.Reading{StatusCode: 200, Served: true}, Outcome: prober.Success}
	for _, tc := range []struct {
		name          string
		mode          string
		probeInterval *config.Duration
		want          time.Duration
	}{
		{"interval mode", config.ModeInterval, nil, time.Hour},
		{"scrape mode", config.ModeScrape, nil, time.Hour},
		{"probe_interval, longer", config.ModeScrape, new(config.Duration(2 * time.Hour)), 2 * time.Hour},
		{"probe_interval, shorter", config.ModeInterval, new(config.Duration(5 * time.Minute)), 5 * time.Minute},
		{"probe_interval 0 in scrape mode: every scrape", config.ModeScrape, new(config.Duration(0)), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClock()
			a := &answers{clock: clock, result: served}
			c := collector.New()
			cfg := &config.Config{
				Probe: config.Probe{Mode: tc.mode, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
					MinInterval: 0, Concurrency: 1, MaxQuotaShare: 0.05},
				Keys: []config.Key{{Name: "g", Provider: "gemini", APIKey: keyA, BaseURL: "http://127.0.0.1:1", Models: []string{"m"},
					ProbeInterval: tc.probeInterval}},
			}
			c.Apply(cfg)
			s := newScheduler(a, c, log.NewNopLogger(), clock, noJitter)
			defer s.Stop()
			s.Apply(cfg)
			if tc.want > 0 { // no series for 0
				if got := testkit.Value(t, c, "ratelimit_probe_interval_seconds"); got != tc.want.Seconds() {
					t.Errorf("interval %vs, want %vs", got, tc.want.Seconds())
				}
			}
			if tc.mode != config.ModeScrape {
				return
			}
			s.Refresh(context.Background())
			clock.Advance(max(tc.want-time.Second, time.Millisecond))
			s.Refresh(context.Background())
			clock.Advance(time.Second)
			s.Refresh(context.Background())
			if want := map[bool]int{true: 3, false: 2}[tc.want == 0]; a.sent != want {
				t.Errorf("%d probes over one interval, want %d", a.sent, want)
			}
		})
	}
}

// A served answer says that no window was empty and nothing of the
// limits: the limits last read keep the interval stretched.
func TestServedKeepsTheLimits(t *testing.T) {
	clock := clockwork.NewFakeClock()
	a := &answers{clock: clock, result: prober.Result{Reading: ratelimit.Reading{StatusCode: 429, Observations: []ratelimit.Observation{
		limit("requests", "day", 100), {Kind: ratelimit.Remaining, Resource: "requests", Window: "day"}}}, Outcome: prober.RateLimited}}
	c := collector.New()
	cfg := &config.Config{
		Probe: config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
			Concurrency: 1, MaxQuotaShare: 0.05},
		Keys: []config.Key{{Name: "g", Provider: "gemini", APIKey: keyA, BaseURL: "http://127.0.0.1:1", Models: []string{"m"}}},
	}
	c.Apply(cfg)
	s := newScheduler(a, c, log.NewNopLogger(), clock, noJitter)
	defer s.Stop()
	s.Apply(cfg)
	s.Refresh(context.Background())
	const stretched = 17280 // 86,400 s / (0.05 × 100)
	if got := testkit.Value(t, c, "ratelimit_probe_interval_seconds"); got != stretched {
		t.Fatalf("interval %v after the 429, want %v", got, stretched)
	}
	a.result = prober.Result{Reading: ratelimit.Reading{StatusCode: 200, Served: true}, Outcome: prober.Success}
	clock.Advance(24 * time.Hour)
	s.Refresh(context.Background())
	if a.sent != 2 || testkit.Value(t, c, "ratelimit_probe_interval_seconds") != stretched {
		t.Errorf("%d probes; interval %v after a served answer, want %v", a.sent, testkit.Value(t, c, "ratelimit_probe_interval_seconds"), stretched)
	}
}
