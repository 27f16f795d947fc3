package scheduler

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/testkit"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/simulator"
)

// results is a Recorder that keeps every result.
type results struct {
	mu  sync.Mutex
	got []*prober.Result
}

func (r *results) Record(_ config.TargetID, res *prober.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, res)
}

func (r *results) SetInterval(config.TargetID, time.Duration) {}

func (r *results) Observe(config.TargetID, string, *ratelimit.Reading) {}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// slowProber takes hold to answer each probe, and notes, per probe, how
// much of its context's time was left when it was sent.
type slowProber struct {
	hold time.Duration
	mu   sync.Mutex
	left []time.Duration
}

func (p *slowProber) Probe(ctx context.Context, _ config.Target) prober.Result {
	deadline, _ := ctx.Deadline()
	p.mu.Lock()
	p.left = append(p.left, time.Until(deadline))
	p.mu.Unlock()
	select {
	case <-time.After(p.hold): // a slow upstream
		return prober.Result{Reading: ratelimit.Reading{Time: time.Now(), StatusCode: 200}, Outcome: prober.Success}
	case <-ctx.Done():
		return prober.Result{Reading: ratelimit.Reading{Time: time.Now()}, Outcome: prober.Timeout, Err: ctx.Err()}
	}
}

func threeKeys(probe config.Probe) *config.Config {
	cfg := &config.Config{Probe: probe}
	for _, name := range []string{"a", "b", "c"} {
		cfg.Keys = append(cfg.Keys, config.Key{Name: name, Provider: "cerebras", APIKey: "sk-test-accounting", BaseURL: "http://127.0.0.1:1/v1", Models: []string{"m"}})
	}
	return cfg
}

// A probe that waited for a concurrency slot has its whole timeout once sent.
func TestProbeTimeoutStartsWhenSent(t *testing.T) {
	const timeout = time.Hour
	p := &slowProber{hold: 300 * time.Millisecond}
	rec := &results{}
	s := newScheduler(p, rec, log.NewNopLogger(), clockwork.NewRealClock(), noJitter)
	defer s.Stop()
	s.Apply(threeKeys(config.Probe{Mode: config.ModeScrape, Timeout: config.Duration(timeout), Concurrency: 1, MaxQuotaShare: 1}))
	s.Refresh(context.Background()) // three probes, one at a time: the last waits 600ms for its slot

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.left) != 3 {
		t.Fatalf("%d probes sent, want 3", len(p.left))
	}
	for i, left := range p.left {
		if left < timeout-100*time.Millisecond {
			t.Errorf("probe %d was sent with %s of its %s timeout left: the wait for a slot counted", i, left, timeout)
		}
	}
	for _, r := range rec.got {
		if r.Outcome != prober.Success {
			t.Errorf("outcome %s, want success", r.Outcome)
		}
	}
}

// Stopping records nothing for probes that never went out, nor for the
// probes it cancels, and logs nothing about them above debug.
func TestStopRecordsNothingForCancelledProbes(t *testing.T) {
	p := &slowProber{hold: time.Hour}
	rec := &results{}
	var logs bytes.Buffer
	logger := log.NewLogfmtLogger(log.NewSyncWriter(&logs))
	s := newScheduler(p, rec, logger, clockwork.NewRealClock(), noJitter)
	s.Apply(threeKeys(config.Probe{Mode: config.ModeInterval, Interval: config.Duration(time.Minute), Timeout: config.Duration(time.Hour), Concurrency: 1, MaxQuotaShare: 1}))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		p.mu.Lock()
		sent := len(p.left)
		p.mu.Unlock()
		if sent == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no probe sent within 10s")
		}
	}
	s.Stop()
	if n := rec.count(); n != 0 {
		t.Errorf("%d results recorded at stop, want 0: one probe was cancelled and two never went out", n)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line != "" && !strings.Contains(line, "level=debug") {
			t.Errorf("logged above debug at stop: %s", line)
		}
	}
}

// An unreadable api_key_file is its own result: nothing was sent, and the
// next try comes one interval later, without backoff.
func TestUnreadableKeyFileIsKeyUnavailable(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(keyA), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newScrapeFixture(t, 10*time.Second, 1, simulator.FreeTrial())
	cfg := *f.cfg
	cfg.Keys = []config.Key{f.cfg.Keys[0]}
	cfg.Keys[0].APIKey, cfg.Keys[0].APIKeyFile = "", keyFile
	f.scheduler.Apply(&cfg)
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	f.step(t, 0, 0) // a first try at once
	for i := 2; i <= 4; i++ {
		f.step(t, 5*time.Second, 0) // not before its interval
		if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "result", "key_unavailable"); got != float64(i-1) {
			t.Fatalf("tried again within the interval: key_unavailable = %v, want %d", got, i-1)
		}
		f.step(t, 5*time.Second, 0) // every 10s, never backing off, never sending
		if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "result", "key_unavailable"); got != float64(i) {
			t.Fatalf("after %d tries: key_unavailable = %v, want %d", i, got, i)
		}
	}
	if got := testkit.Value(t, f.collector, "ratelimit_probes_total", "result", "unauthorized"); got != 0 {
		t.Errorf("unauthorized = %v, want 0: the provider never refused the key", got)
	}
}

// gateProber holds every probe until released, and counts probes in flight.
type gateProber struct {
	release  chan struct{}
	mu       sync.Mutex
	inFlight int
	most     int
	sent     []string // api keys, in order
}

func (p *gateProber) Probe(ctx context.Context, t config.Target) prober.Result {
	p.mu.Lock()
	p.inFlight++
	p.most = max(p.most, p.inFlight)
	p.sent = append(p.sent, t.Key.APIKey.Reveal())
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	select {
	case <-p.release:
		return prober.Result{Reading: ratelimit.Reading{Time: time.Now(), StatusCode: 401}, Outcome: prober.Unauthorized, Err: errors.New("HTTP 401")}
	case <-ctx.Done():
		return prober.Result{Reading: ratelimit.Reading{Time: time.Now()}, Outcome: prober.Timeout, Err: ctx.Err()}
	}
}

func (p *gateProber) waitSent(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		p.mu.Lock()
		sent := len(p.sent)
		p.mu.Unlock()
		if sent >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d probes sent within 10s, want %d", sent, n)
		}
	}
}

// A key removed and added back while its probe is out is still one target:
// one probe in flight, not two.
func TestReaddedTargetKeepsItsProbe(t *testing.T) {
	p := &gateProber{release: make(chan struct{})}
	s := newScheduler(p, &results{}, log.NewNopLogger(), clockwork.NewRealClock(), noJitter)
	defer s.Stop()
	all := threeKeys(config.Probe{Mode: config.ModeInterval, Interval: config.Duration(time.Hour), Timeout: config.Duration(time.Hour), Concurrency: 16, MaxQuotaShare: 1})
	s.Apply(all)
	p.waitSent(t, 3)
	without := *all
	without.Keys = all.Keys[1:]
	s.Apply(&without)
	s.Apply(all)
	// Once the dispatcher has seen the reload, a second probe would be in flight.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		seen, inFlight, queued := s.seen == s.kicks, s.inFlight, len(s.queue)
		s.mu.Unlock()
		if seen {
			if inFlight+queued != 3 {
				t.Errorf("%d probes in flight or queued, want 3: the re-added key was probed twice", inFlight+queued)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher did not see the reload within 10s")
		}
	}
	close(p.release)
}

// A probe sent with settings a reload has since changed moves no timing:
// the fixed key is probed at once, not after a backoff its old key earned.
func TestStaleResultDoesNotUndoAFix(t *testing.T) {
	p := &gateProber{release: make(chan struct{})}
	s := newScheduler(p, &results{}, log.NewNopLogger(), clockwork.NewRealClock(), noJitter)
	defer s.Stop()
	cfg := threeKeys(config.Probe{Mode: config.ModeInterval, Interval: config.Duration(time.Hour), Timeout: config.Duration(time.Hour), Concurrency: 16, MaxQuotaShare: 1})
	cfg.Keys = cfg.Keys[:1]
	s.Apply(cfg)
	p.waitSent(t, 1)
	fixed := *cfg
	fixed.Keys = []config.Key{cfg.Keys[0]}
	fixed.Keys[0].APIKey = "sk-test-accounting-fixed"
	s.Apply(&fixed)
	close(p.release) // the old key's 401 arrives after the fix
	p.waitSent(t, 2)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent[1] != "sk-test-accounting-fixed" {
		t.Errorf("second probe sent with %q, want the fixed key", p.sent[1])
	}
}
