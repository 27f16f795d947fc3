package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// sentProbe is one probe as the prober saw it: which target, and when on
// the fake clock it was sent.
type sentProbe struct {
	id config.TargetID
	at time.Time
}

// recordingProber notes every probe it sends, in order.
type recordingProber struct {
	Prober
	clock clockwork.Clock
	mu    sync.Mutex
	sent  []sentProbe
}

func (p *recordingProber) Probe(ctx context.Context, t config.Target) prober.Result {
	p.mu.Lock()
	p.sent = append(p.sent, sentProbe{t.ID(), p.clock.Now()})
	p.mu.Unlock()
	return p.Prober.Probe(ctx, t)
}

// probesOf returns when the target key/model was probed.
func (p *recordingProber) probesOf(key, model string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var times []time.Time
	for _, s := range p.sent {
		if s.id == (config.TargetID{Key: key, Model: model}) {
			times = append(times, s.at)
		}
	}
	return times
}

func (p *recordingProber) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

type timingFixture struct {
	t         *testing.T
	sim       *simulator.Simulator
	url       string
	clock     *clockwork.FakeClock
	start     time.Time
	prober    *recordingProber
	collector *collector.Collector
	scheduler *Scheduler
	history   *history.History
	cfg       *config.Config
}

// newTimingFixture runs the scheduler with keys k0, k1, ... each probing
// models, against the simulator, everything on one fake clock.
func newTimingFixture(t *testing.T, probe config.Probe, keys int, models []string, limits simulator.Limits, random func() float64) *timingFixture {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	sim := simulator.New(models...)
	sim.SetClock(clock.Now)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	f := &timingFixture{t: t, sim: sim, url: srv.URL + "/v1", clock: clock, start: clock.Now()}
	f.cfg = &config.Config{Probe: probe}
	for i := range keys {
		f.addKey(fmt.Sprintf("k%d", i), models, limits)
	}
	p := prober.New("test")
	p.SetClock(clock.Now)
	f.prober = &recordingProber{Prober: p, clock: clock}
	f.collector = collector.New()
	f.collector.Apply(f.cfg)
	f.scheduler = newScheduler(f.prober, f.collector, log.NewNopLogger(), clock, random)
	t.Cleanup(f.scheduler.Stop)
	f.scheduler.Apply(f.cfg)
	f.settle()
	return f
}

// addKey adds a key to f.cfg and to the simulator; apply makes it count.
func (f *timingFixture) addKey(name string, models []string, limits simulator.Limits) {
	apiKey := "sk-test-timing-" + name
	f.sim.AddKey(apiKey, limits)
	f.cfg.Keys = append(f.cfg.Keys, config.Key{Name: name, Provider: "cerebras", APIKey: config.Secret(apiKey),
		BaseURL: f.url, Models: models})
}

// apply reloads the scheduler and the collector with cfg and waits until it settles.
func (f *timingFixture) apply(cfg *config.Config) {
	f.t.Helper()
	f.cfg = cfg
	f.collector.Apply(cfg)
	f.scheduler.Apply(cfg)
	f.settle()
}

// settle waits until the scheduler has nothing left to do at the fake
// clock's present: no probe queued or in flight, no wake-up missed. Time
// does not move meanwhile, so the wait decides nothing; it only fails the
// test if the scheduler never settles.
func (f *timingFixture) settle() {
	f.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if f.scheduler.settled() {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatal("the scheduler did not settle within 10s")
		}
	}
}

// advance moves the fake clock by d, stopping at each time the scheduler
// asked to wake at, so that every probe goes out at the time it is due.
func (f *timingFixture) advance(d time.Duration) {
	f.t.Helper()
	end := f.clock.Now().Add(d)
	for {
		f.scheduler.mu.Lock()
		wake := f.scheduler.nextWake
		f.scheduler.mu.Unlock()
		now := f.clock.Now()
		if wake.After(end) {
			f.clock.Advance(end.Sub(now))
			f.settle()
			return
		}
		f.clock.Advance(wake.Sub(now))
		f.settle()
	}
}

// settled reports whether the dispatcher has seen every kick and the
// present, and no probe is queued or in flight.
func (s *Scheduler) settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen == s.kicks && s.nextWake.After(s.clock.Now()) && s.inFlight == 0 && len(s.queue) == 0
}

func intervalProbe(interval time.Duration, concurrency int, share float64) config.Probe {
	return config.Probe{Mode: config.ModeInterval, Interval: config.Duration(interval), Timeout: config.Duration(10 * time.Second),
		MinInterval: config.Duration(15 * time.Second), Concurrency: concurrency, MaxQuotaShare: share}
}

var roomy = simulator.Limits{"requests": {"minute": 1e6, "day": 1e9}}

func noJitter() float64 { return 0.5 }

// With interval 1h, every key has series at once, not spread over the hour.
func TestFirstProbesGoOutAtOnce(t *testing.T) {
	f := newTimingFixture(t, intervalProbe(time.Hour, 16, 1), 8, []string{"m"}, roomy, noJitter)
	for i := range 8 {
		key := fmt.Sprintf("k%d", i)
		if times := f.prober.probesOf(key, "m"); len(times) != 1 || !times[0].Equal(f.start) {
			t.Errorf("%s probed at %v, want once at the start", key, times)
		}
		if got := testkit.Value(t, f.collector, "ratelimit_probe_success", "key", key); got != 1 {
			t.Errorf("%s: probe_success = %v, want 1", key, got)
		}
	}
}

// First probes go to every key's first model before any key's second, so
// that every key shows up early when probe.concurrency holds them back.
func TestFirstProbesReachEveryKeyFirst(t *testing.T) {
	f := newTimingFixture(t, intervalProbe(time.Hour, 1, 1), 3, []string{"m1", "m2"}, roomy, noJitter)
	var got []string
	for _, s := range f.prober.sent {
		got = append(got, s.id.Key+"/"+s.id.Model)
	}
	want := []string{"k0/m1", "k1/m1", "k2/m1", "k0/m2", "k1/m2", "k2/m2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first probes in the order %v, want %v", got, want)
	}
}

// After the first probes, which go out together, each target's second probe
// has its own place in the interval that follows; later intervals vary by
// the jitter.
func TestLaterProbesAreSpreadOverTheInterval(t *testing.T) {
	source := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	random := func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return source.Float64()
	}
	const n = 8
	f := newTimingFixture(t, intervalProbe(time.Hour, 16, 1), n, []string{"m"}, roomy, random)
	f.advance(5 * time.Hour)

	earliest, latest := 2*time.Hour, time.Duration(0)
	var gaps []time.Duration
	for i := range n {
		id := config.TargetID{Key: fmt.Sprintf("k%d", i), Model: "m"}
		times := f.prober.probesOf(id.Key, id.Model)
		if len(times) < 4 {
			t.Fatalf("%s probed %d times in 5h at 1h, want at least 4", id.Key, len(times))
		}
		second := times[1].Sub(times[0])
		want := time.Duration(float64(time.Hour) * (1 + phase(id)))
		if d := second - want; d < -dispatchSlack || d > 0 {
			t.Errorf("%s: second probe %s after the first, want %s (1h × (1 + its phase %.3f))", id.Key, second, want, phase(id))
		}
		earliest, latest = min(earliest, second), max(latest, second)
		for j := 2; j < 4; j++ {
			gap := times[j].Sub(times[j-1])
			if gap < 54*time.Minute-dispatchSlack || gap > 66*time.Minute {
				t.Errorf("%s: %s between probes %d and %d, want 1h ± 10%%", id.Key, gap, j-1, j)
			}
		}
		gaps = append(gaps, times[2].Sub(times[1]), times[3].Sub(times[2]))
	}
	if slices.Sort(gaps); gaps[len(gaps)-1]-gaps[0] < 4*time.Minute {
		t.Errorf("later intervals %v hardly vary: no jitter", gaps)
	}
	if latest-earliest < 30*time.Minute {
		t.Errorf("second probes fall between %s and %s after the first: not spread over the interval", earliest, latest)
	}
}

// A key that a reload adds is probed at once, whatever its place in the file.
func TestReloadProbesAddedTargetsAtOnce(t *testing.T) {
	f := newTimingFixture(t, intervalProbe(time.Hour, 16, 1), 4, []string{"m"}, roomy, noJitter)
	f.advance(10 * time.Minute)
	cfg := *f.cfg
	cfg.Keys = append([]config.Key(nil), f.cfg.Keys...)
	f.cfg = &cfg
	f.addKey("new", []string{"m"}, roomy)
	f.cfg.Keys = append([]config.Key{f.cfg.Keys[len(f.cfg.Keys)-1]}, f.cfg.Keys[:len(f.cfg.Keys)-1]...) // first in the file
	before := f.prober.count()
	f.apply(f.cfg)
	if times := f.prober.probesOf("new", "m"); len(times) != 1 || !times[0].Equal(f.start.Add(10*time.Minute)) {
		t.Errorf("the added key was probed at %v, want once, at the reload (%v)", times, f.start.Add(10*time.Minute))
	}
	if got := f.prober.count() - before; got != 1 {
		t.Errorf("the reload sent %d probes, want 1 (the new key's); kept keys keep their timing", got)
	}
}

// A reload keeps each kept target's last probe time: its next probe is due
// one new interval after it, never at once, and never at the old stretched time.
func TestReloadRecomputesDueTimesFromTheLastProbe(t *testing.T) {
	// 14,400 requests a day at 5%: a 1m interval is stretched to 2m.
	limits := simulator.Limits{"requests": {"minute": 1000, "day": 14400}}
	f := newTimingFixture(t, intervalProbe(time.Minute, 16, 0.05), 1, []string{"m"}, limits, noJitter)
	id := config.TargetID{Key: "k0", Model: "m"}
	if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 120 {
		t.Fatalf("interval = %v, want 120 (86,400 s / (0.05 × 14,400))", got)
	}
	gap := 1 + phase(id)
	f.advance(30 * time.Second)

	// Longer interval: not probed again at once; due 5m × gap after the first probe.
	longer := *f.cfg
	longer.Probe.Interval = config.Duration(5 * time.Minute)
	f.apply(&longer)
	if got := f.prober.count(); got != 1 {
		t.Fatalf("%d probes after a reload that lengthened the interval, want 1: it should not probe at once", got)
	}
	due := f.start.Add(time.Duration(float64(5*time.Minute) * gap))
	f.advance(due.Sub(f.clock.Now()) - time.Second)
	if got := f.prober.count(); got != 1 {
		t.Fatalf("probed before %v", due)
	}
	f.advance(time.Second)
	if times := f.prober.probesOf("k0", "m"); len(times) != 2 || times[1].Sub(due) < -dispatchSlack || times[1].After(due) {
		t.Fatalf("probes at %v, want the second at %v", times, due)
	}

	// max_quota_share 1: the 5m interval, not a stretched one.
	last := f.prober.probesOf("k0", "m")[1]
	unguarded := longer
	unguarded.Probe.Interval = config.Duration(time.Minute)
	f.apply(&unguarded) // 1m stretched to 2m still
	if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 120 {
		t.Fatalf("interval = %v, want 120", got)
	}
	unguarded.Probe.MaxQuotaShare = 1
	f.apply(&unguarded)
	if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 60 {
		t.Fatalf("interval after max_quota_share: 1 = %v, want 60", got)
	}
	f.scheduler.mu.Lock()
	gap = f.scheduler.targets[id].gap
	f.scheduler.mu.Unlock()
	due = last.Add(time.Duration(float64(time.Minute) * gap))
	f.advance(due.Sub(f.clock.Now()) + time.Second)
	if times := f.prober.probesOf("k0", "m"); len(times) != 3 || times[2].Sub(due) < -dispatchSlack || times[2].After(due) {
		t.Fatalf("probes at %v, want the third at %v, 1m after the second", times, due)
	}
}

func TestReloadStopsProbingRemovedTargets(t *testing.T) {
	f := newTimingFixture(t, intervalProbe(time.Minute, 4, 1), 2, []string{"m"}, roomy, noJitter)
	only := *f.cfg
	only.Keys = f.cfg.Keys[:1]
	f.apply(&only)
	f.advance(10 * time.Minute)
	if got := len(f.prober.probesOf("k1", "m")); got != 1 {
		t.Errorf("the removed key was probed %d times, want only its first probe", got)
	}
	if got := len(f.prober.probesOf("k0", "m")); got < 9 {
		t.Errorf("the kept key was probed %d times in 10m at 1m, want at least 9", got)
	}
}

func TestQuotaShareInIntervalMode(t *testing.T) {
	f := newTimingFixture(t, intervalProbe(time.Minute, 4, 0.05), 1, []string{"m"},
		simulator.Limits{"requests": {"minute": 1000, "day": 14400}}, noJitter)
	if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds", "key", "k0"); got != 120 {
		t.Errorf("interval = %v, want 120", got)
	}
	f.advance(3 * time.Hour)
	times := f.prober.probesOf("k0", "m")
	for i := 2; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 120*time.Second-dispatchSlack {
			t.Errorf("%s between probes %d and %d, want 2m", gap, i-1, i)
		}
	}
	if len(times) < 80 || len(times) > 91 {
		t.Errorf("%d probes in 3h at 2m, want about 90", len(times))
	}
}

// A reading from the applications' traffic counts as a probe: traffic every
// second for 20 s costs no probe of that key and model, and probes resume
// one interval after the traffic stops. Another key's probes go on.
func TestTrafficMakesProbesUnnecessary(t *testing.T) {
	f := newTimingFixture(t, intervalProbe(10*time.Second, 4, 1), 2, []string{"m"}, roomy, noJitter)
	busy := config.TargetID{Key: "k0", Model: "m"}
	reading := func() *ratelimit.Reading {
		return &ratelimit.Reading{Time: f.clock.Now(), StatusCode: 200, Observations: []ratelimit.Observation{{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 5}}}
	}
	if got := len(f.prober.probesOf("k0", "m")); got != 1 {
		t.Fatalf("%d first probes, want 1", got)
	}
	for range 20 {
		f.advance(time.Second)
		f.scheduler.Observe(busy, "cerebras", reading())
	}
	f.settle()
	if got := len(f.prober.probesOf("k0", "m")); got != 1 {
		t.Errorf("%d probes of k0/m during 20s of traffic, want only the first", got)
	}
	if got := len(f.prober.probesOf("k1", "m")); got < 2 {
		t.Errorf("%d probes of k1/m in 20s at a 10s interval: its probes should go on", got)
	}
	stopped := f.clock.Now()
	f.advance(10*time.Second - time.Millisecond)
	if got := len(f.prober.probesOf("k0", "m")); got != 1 {
		t.Errorf("a probe before one interval after the last reading")
	}
	f.advance(30 * time.Second)
	probes := f.prober.probesOf("k0", "m")
	if len(probes) < 3 || !probes[1].Equal(stopped.Add(10*time.Second)) {
		t.Errorf("after the traffic stopped at %s, probes at %v: want one 10s later, then every interval", stopped.Format(time.TimeOnly), probes)
	}
	// A reading of another provider's key of the same name is not this
	// target's: the probe due 5s after it still goes out.
	next := probes[len(probes)-1].Add(10 * time.Second)
	f.advance(next.Add(-5 * time.Second).Sub(f.clock.Now()))
	f.scheduler.Observe(busy, "openai", reading())
	f.advance(5 * time.Second)
	if got := len(f.prober.probesOf("k0", "m")); got != len(probes)+1 {
		t.Errorf("a reading for another provider held off a probe")
	}
}

// Probing on request only, nothing is probed on the timer or for a whole
// scrape; in scrape mode a target's own request probes it once per
// min_interval, as on any exporter.
func TestProbeOnRequestOnly(t *testing.T) {
	for _, mode := range []string{config.ModeInterval, config.ModeScrape} {
		t.Run(mode, func(t *testing.T) {
			probe := intervalProbe(time.Minute, 4, 1)
			probe.Mode = mode
			f := newTimingFixture(t, probe, 0, []string{"m"}, roomy, noJitter)
			f.scheduler.ProbeOnRequestOnly()
			f.addKey("k0", []string{"m"}, roomy)
			f.addKey("k1", []string{"m"}, roomy)
			f.apply(f.cfg)
			f.advance(time.Hour)
			f.scheduler.Refresh(context.Background())
			f.settle()
			if n := f.prober.count(); n != 0 {
				t.Fatalf("%d probes in an hour and a scrape of /metrics, want none", n)
			}
			asked := config.TargetID{Key: "k0", Model: "m"}
			for range 3 {
				f.scheduler.RefreshTarget(context.Background(), asked)
			}
			f.advance(time.Duration(probe.MinInterval))
			f.scheduler.RefreshTarget(context.Background(), asked)
			f.settle()
			want := 0
			if mode == config.ModeScrape {
				want = 2 // at the start and one min_interval later
			}
			if got := len(f.prober.probesOf("k0", "m")); got != want || f.prober.count() != want {
				t.Errorf("k0/m asked for 4 times over one min_interval: probed %d times (%d in all), want %d", got, f.prober.count(), want)
			}
		})
	}
}
