package scheduler

import (
	"context"
	"errors"
	"math"
	"strings"
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
)

// proberFunc answers a probe with a function.
type proberFunc func(context.Context, config.Target) prober.Result

func (f proberFunc) Probe(ctx context.Context, t config.Target) prober.Result { return f(ctx, t) }

// newAnswerFixture runs the scheduler with one key, k/m, on a fake clock,
// each probe answered by answer with the probe's number (from 0) and the
// time; the answer's time is the clock's.
func newAnswerFixture(t *testing.T, probe config.Probe, answer func(n int, now time.Time) prober.Result) *timingFixture {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	f := &timingFixture{t: t, clock: clock, start: clock.Now()}
	f.cfg = &config.Config{Probe: probe, Keys: []config.Key{{Name: "k", Provider: "anthropic", APIKey: keyA, BaseURL: "http://127.0.0.1:1", Models: []string{"m"}}}}
	n := 0 // probes of one target never overlap
	f.prober = &recordingProber{Prober: proberFunc(func(context.Context, config.Target) prober.Result {
		r := answer(n, clock.Now())
		n++
		r.Time = clock.Now()
		return r
	}), clock: clock}
	f.collector = collector.New()
	f.collector.Apply(f.cfg)
	f.scheduler = newScheduler(f.prober, f.collector, log.NewNopLogger(), clock, noJitter)
	t.Cleanup(f.scheduler.Stop)
	f.history = history.New(history.DefaultLimit)
	f.scheduler.KeepHistory(f.history)
	f.scheduler.Apply(f.cfg)
	f.settle()
	return f
}

// A Retry-After far longer than the interval, or too long for a Duration,
// holds probes for maxRetryAfter, then lets one probe through per hold:
// never more, never a tight loop.
func TestLongRetryAfterProbesOncePerHold(t *testing.T) {
	for _, wait := range []time.Duration{7 * 24 * time.Hour, math.MaxInt64} {
		t.Run(wait.String(), func(t *testing.T) {
			f := newAnswerFixture(t, intervalProbe(time.Minute, 4, 1), func(int, time.Time) prober.Result {
				return prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: wait, Cause: ratelimit.CauseQuotaExhausted}, Outcome: prober.RateLimited}
			})
			f.advance(5 * time.Hour)
			times := f.prober.probesOf("k", "m")
			if len(times) != 6 {
				t.Fatalf("%d probes in 5h, want 6: one at the start and one per hold of %s", len(times), maxRetryAfter)
			}
			for i, at := range times {
				if want := f.start.Add(time.Duration(i) * maxRetryAfter); at.Before(want.Add(-dispatchSlack)) || at.After(want) {
					t.Errorf("probe %d at %s, want %s", i, at.Sub(f.start), want.Sub(f.start))
				}
			}
		})
	}
}

// A unified window rejected until its reset holds probes until then, as a
// window at 0 does; once it is allowed again, probes go at the interval.
func TestRejectedWindowHoldsUntilItsReset(t *testing.T) {
	var reset time.Time
	f := newAnswerFixture(t, intervalProbe(time.Minute, 4, 1), func(_ int, now time.Time) prober.Result {
		if reset.IsZero() {
			reset = now.Add(2 * time.Hour)
		}
		status, code, outcome := float64(ratelimit.StatusAllowed), 200, prober.Success
		if now.Before(reset) {
			status, code, outcome = ratelimit.StatusRejected, 429, prober.RateLimited
		}
		return prober.Result{Reading: ratelimit.Reading{StatusCode: code, RetryAfter: 10 * time.Second, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Reset, Resource: "unified", Window: "5h", Value: max(reset.Sub(now).Seconds(), 0)},
			{Kind: ratelimit.Status, Resource: "unified", Window: "5h", Value: status},
			{Kind: ratelimit.Utilization, Resource: "unified", Window: "5h", Value: 1},
		}}, Outcome: outcome}
	})
	f.advance(2*time.Hour + 2*time.Minute + 30*time.Second)
	times := f.prober.probesOf("k", "m")
	// At once (rejected), at the reset (allowed), then each interval
	// (no jitter).
	reopened := f.start.Add(2 * time.Hour)
	want := []time.Time{f.start, reopened, reopened.Add(time.Minute), reopened.Add(2 * time.Minute)}
	if len(times) != len(want) {
		t.Fatalf("probes at %v after the start, want %v", sinceStart(f.start, times), sinceStart(f.start, want))
	}
	for i := range want {
		if times[i].Before(want[i].Add(-dispatchSlack)) || times[i].After(want[i]) {
			t.Errorf("probes at %v after the start, want %v", sinceStart(f.start, times), sinceStart(f.start, want))
			break
		}
	}
}

func sinceStart(start time.Time, times []time.Time) []time.Duration {
	var out []time.Duration
	for _, at := range times {
		out = append(out, at.Sub(start))
	}
	return out
}

// A weekly window rejected for days holds scrapes' probes for a day at
// most, as a window at 0 does; scrapes in between probe nothing.
func TestRejectedWeekHoldsADayAtMost(t *testing.T) {
	probe := config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
		MinInterval: 0, Concurrency: 4, MaxQuotaShare: 1}
	f := newAnswerFixture(t, probe, func(int, time.Time) prober.Result {
		return prober.Result{Reading: ratelimit.Reading{StatusCode: 429, Observations: []ratelimit.Observation{
			{Kind: ratelimit.Reset, Resource: "unified", Window: "7d", Value: 5 * 86400},
			{Kind: ratelimit.Status, Resource: "unified", Window: "7d", Value: ratelimit.StatusRejected},
		}}, Outcome: prober.RateLimited}
	})
	scrape := func(d time.Duration, want int) {
		t.Helper()
		f.clock.Advance(d)
		f.scheduler.Refresh(context.Background())
		if got := f.prober.count(); got != want {
			t.Fatalf("at %s: %d probes in all, want %d", f.clock.Now().Sub(f.start), got, want)
		}
	}
	scrape(0, 1) // rejected for 5 days: held for a day
	for range 23 {
		scrape(time.Hour, 1)
	}
	scrape(59*time.Minute, 1)
	scrape(time.Minute, 2) // 24h
	scrape(time.Second, 2) // held again
}

// A served answer (no values: none was empty) keeps the limits read
// before, and so the interval they stretch.
func TestServedKeepsTheStretch(t *testing.T) {
	probe := config.Probe{Mode: config.ModeScrape, Interval: config.Duration(time.Minute), Timeout: config.Duration(5 * time.Second),
		MinInterval: config.Duration(time.Minute), Concurrency: 4, MaxQuotaShare: 0.05}
	f := newAnswerFixture(t, probe, func(n int, _ time.Time) prober.Result {
		if n == 0 { // a 429 whose body gives the window's limit
			return prober.Result{Reading: ratelimit.Reading{StatusCode: 429, Observations: []ratelimit.Observation{
				{Kind: ratelimit.Limit, Resource: "requests", Window: "minute", Value: 10},
				{Kind: ratelimit.Remaining, Resource: "requests", Window: "minute", Value: 0},
				{Kind: ratelimit.Reset, Resource: "requests", Window: "minute", Value: 30},
			}}, Outcome: prober.RateLimited}
		}
		return prober.Result{Reading: ratelimit.Reading{StatusCode: 200, Served: true}, Outcome: prober.Success}
	})
	scrape := func(d time.Duration, want int) {
		t.Helper()
		f.clock.Advance(d)
		f.scheduler.Refresh(context.Background())
		if got := f.prober.count(); got != want {
			t.Fatalf("at %s: %d probes in all, want %d", f.clock.Now().Sub(f.start), got, want)
		}
		// 10 a minute at 5%: one probe every 120s.
		if got := testkit.Value(t, f.collector, "ratelimit_probe_interval_seconds"); got != 120 {
			t.Fatalf("at %s: interval %vs, want 120", f.clock.Now().Sub(f.start), got)
		}
	}
	scrape(0, 1)
	scrape(119*time.Second, 1)
	scrape(time.Second, 2) // served
	scrape(119*time.Second, 2)
	scrape(time.Second, 3)
}

// A probe's log ends with what its result made of the schedule, in the
// fake clock's time: the provider's hold, the backoff, and the next probe.
func TestProbeLogTellsTheSchedule(t *testing.T) {
	f := newAnswerFixture(t, intervalProbe(time.Minute, 4, 1), func(int, time.Time) prober.Result {
		return prober.Result{Reading: ratelimit.Reading{StatusCode: 429, RetryAfter: 10 * time.Minute}, Outcome: prober.RateLimited, Err: errors.New("HTTP 429")}
	})
	id := config.TargetID{Key: "k", Model: "m"}
	entry, ok := f.scheduler.Debug(context.Background(), id)
	if !ok {
		t.Fatal("no record of the first probe")
	}
	var got strings.Builder
	entry.WriteLog(&got)
	hold := f.start.Add(10 * time.Minute).Format(time.RFC3339Nano)
	for _, want := range []string{
		`ts=2026-11-22T12:00:00Z msg="Beginning probe" key=k model=m provider=anthropic timeout=`,
		`msg="Holding off probes as the provider asked" until=` + hold + "\n",
		`msg="Next probe due" mode=interval at=` + hold + " sent=then\n",
	} {
		if !strings.Contains(got.String(), want) {
			t.Errorf("the probe's log lacks %q:\n%s", want, got.String())
		}
	}
	f.settle() // a probe Debug queued would have ended
	if len(f.prober.probesOf("k", "m")) != 1 {
		t.Error("Debug sent a probe in interval mode")
	}
	if _, ok := f.scheduler.Debug(context.Background(), config.TargetID{Key: "k", Model: "other"}); ok {
		t.Error("a log of a target that is not configured")
	}
}
