// Package scheduler decides when each key and model is probed: on a timer
// in interval mode, during scrapes in scrape mode, never twice at once, and
// never in a way that spends more of a quota than the config allows or
// ignores what the provider said.
package scheduler

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Prober sends one probe.
type Prober interface {
	Probe(ctx context.Context, t config.Target) prober.Result
}

// Recorder keeps probe results and the interval each target is probed at.
type Recorder interface {
	Record(id collector.ID, r *prober.Result)
	SetInterval(id collector.ID, d time.Duration)
}

// jitterShare is how much each interval-mode interval varies either way,
// so that probes started together drift apart.
const jitterShare = 0.1

// Scheduler runs probes. Create it with New, configure it with Apply, and
// end it with Stop.
type Scheduler struct {
	prober   Prober
	recorder Recorder
	logger   log.Logger
	now      func() time.Time
	random   func() float64 // in [0, 1)

	ctx    context.Context // ends with Stop; every probe derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	settings config.Probe
	slots    chan struct{} // probes in flight, bounded by settings.Concurrency
	targets  map[collector.ID]*target
	kick     chan struct{} // tells the dispatcher that timing changed
	nextWake time.Time     // when the dispatcher wakes next
}

type target struct {
	cfg         config.Target
	flight      *flight
	last        time.Time // when the last probe ended
	lastOutcome prober.Outcome

	limits         []ratelimit.Observation // the limits last read
	tokensPerProbe float64
	interval       time.Duration // the configured one, stretched to the quota share
	due            time.Time     // interval mode: when the next probe is due
	holdUntil      time.Time     // the provider asked for no probe before then
	failures       int           // backoff failures in a row
	backoffUntil   time.Time     // backing off from them; a reload clears it
}

// flight is a probe under way; everyone who wants it waits on done.
type flight struct {
	done chan struct{}
}

// New returns a scheduler that probes with p and records into r.
func New(p Prober, r Recorder, logger log.Logger) *Scheduler {
	return newScheduler(p, r, logger, time.Now, rand.Float64)
}

// newScheduler is New with the clock and the random source given, for tests.
func newScheduler(p Prober, r Recorder, logger log.Logger, now func() time.Time, random func() float64) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		prober:   p,
		recorder: r,
		logger:   logger,
		now:      now,
		random:   random,
		ctx:      ctx,
		cancel:   cancel,
		targets:  map[collector.ID]*target{},
		kick:     make(chan struct{}, 1),
	}
	s.wg.Add(1)
	go s.dispatch()
	return s
}

// configuredPeriod is the shortest time between two probes of one target
// that the config asks for in the current mode.
func (s *Scheduler) configuredPeriod() time.Duration {
	if s.settings.Mode == config.ModeScrape {
		return time.Duration(s.settings.MinInterval)
	}
	return time.Duration(s.settings.Interval)
}

// Apply makes cfg's targets and probe settings the ones in force. Targets
// that stay keep their timing, what the provider asked, and any probe under
// way; backoff after failures ends, since the config may have fixed them.
func (s *Scheduler) Apply(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	respread := s.settings.Mode != cfg.Probe.Mode || s.settings.Interval != cfg.Probe.Interval
	if s.slots == nil || s.settings.Concurrency != cfg.Probe.Concurrency {
		// Probes in flight release the slots they took; new ones use these.
		s.slots = make(chan struct{}, cfg.Probe.Concurrency)
	}
	s.settings = cfg.Probe

	targets := cfg.Targets()
	keep := make(map[collector.ID]bool, len(targets))
	now := s.now()
	for i, tc := range targets {
		id := collector.IDOf(tc)
		keep[id] = true
		t := s.targets[id]
		if t == nil || respread {
			if t == nil {
				t = &target{}
				s.targets[id] = t
			}
			// Spread the first probes over one interval rather than firing them together.
			t.due = now.Add(time.Duration(s.settings.Interval) * time.Duration(i) / time.Duration(len(targets)))
		}
		t.cfg = tc
		t.failures, t.backoffUntil = 0, time.Time{}
		s.updateIntervalLocked(id, t, true)
	}
	for id := range s.targets {
		if !keep[id] {
			delete(s.targets, id)
		}
	}
	s.kickDispatcher()
}

func (s *Scheduler) kickDispatcher() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// updateIntervalLocked recomputes t's interval from the config and the
// quota share, and reports a change. s.mu must be held.
func (s *Scheduler) updateIntervalLocked(id collector.ID, t *target, force bool) {
	configured := s.configuredPeriod()
	needed, why := quotaInterval(t.limits, s.settings.MaxQuotaShare, t.tokensPerProbe)
	interval := max(configured, needed)
	if interval == t.interval && !force {
		return
	}
	if interval > configured && interval != t.interval {
		level.Info(s.logger).Log("msg", "Probe interval stretched to keep probes within max_quota_share",
			"key", id.Key, "model", id.Model, "configured", configured, "interval", interval,
			"window", why.Window, "limit", why.Limit, "max_quota_share", s.settings.MaxQuotaShare,
			"tokens_per_probe", t.tokensPerProbe)
	}
	t.interval = interval
	s.recorder.SetInterval(id, interval)
}

// dispatchSlack lets one pass of the dispatcher start the probes due within
// it, so that spread probes do not each wake it.
const dispatchSlack = 10 * time.Millisecond

// dispatch starts, in interval mode, the probes that are due, and sleeps
// until the next one is. One goroutine serves every target; a probe has a
// goroutine only while it runs.
func (s *Scheduler) dispatch() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		s.mu.Lock()
		if s.settings.Mode == config.ModeInterval {
			deadline := s.now().Add(time.Duration(s.settings.Timeout))
			for id, t := range s.targets {
				if t.flight != nil {
					continue
				}
				if d := s.delayLocked(t); d > dispatchSlack {
					wait = min(wait, d)
				} else {
					s.startLocked(id, deadline)
				}
			}
		}
		s.nextWake = s.now().Add(wait)
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}

// delayLocked is how long until t may be probed. s.mu must be held.
func (s *Scheduler) delayLocked(t *target) time.Duration {
	next := t.due
	if t.holdUntil.After(next) {
		next = t.holdUntil
	}
	if t.backoffUntil.After(next) {
		next = t.backoffUntil
	}
	return max(next.Sub(s.now()), 0)
}

// Refresh, in scrape mode, probes every target that is due (its last probe
// is older than its interval and nothing holds it off) and waits for those
// probes. Probes it starts end by ctx's deadline, capped at the probe
// timeout, so their results, timeouts included, are recorded when it
// returns; probes it shares with an earlier caller are awaited only until
// ctx ends. In interval mode it does nothing.
func (s *Scheduler) Refresh(ctx context.Context) {
	s.mu.Lock()
	if s.settings.Mode != config.ModeScrape {
		s.mu.Unlock()
		return
	}
	now := s.now()
	deadline := now.Add(time.Duration(s.settings.Timeout))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var started, joined []*flight
	for id, t := range s.targets {
		switch {
		case t.flight != nil:
			joined = append(joined, t.flight)
		case t.last.IsZero() || !now.Before(t.last.Add(t.interval)) && s.delayLocked(t) == 0:
			started = append(started, s.startLocked(id, deadline))
		}
	}
	s.mu.Unlock()

	for _, f := range started {
		<-f.done
	}
	for _, f := range joined {
		select {
		case <-f.done:
		case <-ctx.Done():
			return
		}
	}
}

// startLocked returns the probe of id under way, starting one that ends by
// deadline if there is none. s.mu must be held.
func (s *Scheduler) startLocked(id collector.ID, deadline time.Time) *flight {
	t := s.targets[id]
	if t == nil {
		return nil
	}
	if t.flight != nil {
		return t.flight
	}
	f := &flight{done: make(chan struct{})}
	t.flight = f
	cfg, slots := t.cfg, s.slots
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(f.done)
		ctx, cancel := context.WithDeadline(s.ctx, deadline)
		defer cancel()
		result := s.probe(ctx, cfg, slots)
		s.finish(id, t, f, &result)
	}()
	return f
}

func (s *Scheduler) probe(ctx context.Context, cfg config.Target, slots chan struct{}) prober.Result {
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return prober.Result{Time: s.now(), Outcome: prober.Timeout, Err: ctx.Err()}
	}
	return s.prober.Probe(ctx, cfg)
}

// finish records a result and works out when the target may be probed next.
func (s *Scheduler) finish(id collector.ID, t *target, f *flight, r *prober.Result) {
	s.recorder.Record(id, r)

	s.mu.Lock()
	defer s.mu.Unlock()
	if t.flight == f {
		t.flight = nil
	}
	t.last = r.Time
	changed := t.lastOutcome != r.Outcome
	t.lastOutcome = r.Outcome

	if r.Success() {
		t.failures, t.backoffUntil = 0, time.Time{}
		t.limits = t.limits[:0]
		for _, o := range r.Observations {
			if o.Kind == ratelimit.Limit {
				t.limits = append(t.limits, o)
			}
		}
	} else if isBackoffFailure(r) {
		t.failures++
	}
	if r.Tokens > 0 {
		t.tokensPerProbe = r.Tokens
	}
	s.updateIntervalLocked(id, t, false)
	t.due = r.Time.Add(time.Duration(float64(t.interval) * (1 - jitterShare + 2*jitterShare*s.random())))
	defer func() {
		if next := r.Time.Add(s.delayLocked(t)); next.Before(s.nextWake) {
			s.kickDispatcher()
		}
	}()

	logger := log.With(s.logger, "key", id.Key, "model", id.Model)
	if wait, why := providerHold(r); wait > 0 {
		t.holdUntil = r.Time.Add(wait)
		level.Info(logger).Log("msg", "Holding off probes as the provider asked", "reason", why, "until", t.holdUntil)
	}
	if wait, why := failureBackoff(r, t.failures, t.interval, s.random); wait > 0 {
		t.backoffUntil = r.Time.Add(wait)
		level.Debug(logger).Log("msg", "Backing off after failures", "reason", why, "failures", t.failures, "until", t.backoffUntil)
	}

	logger = log.With(logger, "result", r.Outcome, "status", r.StatusCode, "duration", r.Duration)
	switch {
	case r.Err == nil && changed:
		level.Info(logger).Log("msg", "Probe succeeded")
	case r.Err == nil:
		level.Debug(logger).Log("msg", "Probe succeeded")
	case changed:
		level.Warn(logger).Log("msg", "Probe failed", "err", r.Err)
	default:
		level.Debug(logger).Log("msg", "Probe failed", "err", r.Err)
	}
}

// Stop cancels every probe and the dispatcher and waits for them to end.
func (s *Scheduler) Stop() {
	s.cancel()
	s.wg.Wait()
}
