// Package scheduler decides when each key and model is probed: on a timer
// in interval mode, during scrapes in scrape mode, and never twice at once.
package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
)

// Prober sends one probe.
type Prober interface {
	Probe(ctx context.Context, t config.Target) prober.Result
}

// Recorder keeps probe results.
type Recorder interface {
	Record(id collector.ID, r *prober.Result)
}

// startSpread bounds how long the first interval-mode round takes to start
// every target, so a new exporter shows data soon but not in one burst.
const startSpread = 10 * time.Second

// Scheduler runs probes. Create it with New, configure it with Apply, and
// end it with Stop.
type Scheduler struct {
	prober   Prober
	recorder Recorder
	logger   log.Logger
	now      func() time.Time

	ctx    context.Context // ends with Stop; every probe derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	settings config.Probe
	slots    chan struct{} // probes in flight, bounded by settings.Concurrency
	targets  map[collector.ID]*target
}

type target struct {
	cfg         config.Target
	last        time.Time // when the last probe ended
	lastOutcome prober.Outcome
	flight      *flight
	stopLoop    context.CancelFunc // interval mode only
}

// flight is a probe under way; everyone who wants it waits on done.
type flight struct {
	done chan struct{}
}

// New returns a scheduler that probes with p and records into r.
func New(p Prober, r Recorder, logger log.Logger) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{
		prober:   p,
		recorder: r,
		logger:   logger,
		now:      time.Now,
		ctx:      ctx,
		cancel:   cancel,
		targets:  map[collector.ID]*target{},
	}
}

// Apply makes cfg's targets and probe settings the ones in force. Targets
// that stay keep their timing and any probe under way.
func (s *Scheduler) Apply(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	modeChanged := s.settings.Mode != cfg.Probe.Mode || s.settings.Interval != cfg.Probe.Interval
	if s.slots == nil || s.settings.Concurrency != cfg.Probe.Concurrency {
		// Probes in flight release the slots they took; new ones use these.
		s.slots = make(chan struct{}, cfg.Probe.Concurrency)
	}
	s.settings = cfg.Probe

	targets := cfg.Targets()
	keep := make(map[collector.ID]bool, len(targets))
	for _, t := range targets {
		id := collector.IDOf(t)
		keep[id] = true
		if existing := s.targets[id]; existing != nil {
			existing.cfg = t
			continue
		}
		s.targets[id] = &target{cfg: t}
	}
	for id, t := range s.targets {
		if !keep[id] || modeChanged {
			if t.stopLoop != nil {
				t.stopLoop()
				t.stopLoop = nil
			}
		}
		if !keep[id] {
			delete(s.targets, id)
		}
	}
	if s.settings.Mode != config.ModeInterval {
		return
	}
	for i, t := range targets {
		id := collector.IDOf(t)
		if s.targets[id].stopLoop != nil {
			continue
		}
		spread := min(time.Duration(s.settings.Interval), startSpread)
		offset := spread * time.Duration(i) / time.Duration(len(targets))
		ctx, stop := context.WithCancel(s.ctx)
		s.targets[id].stopLoop = stop
		s.wg.Add(1)
		go s.loop(ctx, id, offset)
	}
}

// loop probes one target every interval until ctx ends.
func (s *Scheduler) loop(ctx context.Context, id collector.ID, delay time.Duration) {
	defer s.wg.Done()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.mu.Lock()
		timeout, interval := time.Duration(s.settings.Timeout), time.Duration(s.settings.Interval)
		f := s.startLocked(id, s.now().Add(timeout))
		s.mu.Unlock()
		if f != nil {
			select {
			case <-f.done:
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(interval)
	}
}

// Refresh, in scrape mode, probes every target whose last probe is older
// than min_interval and waits for those probes. Probes it starts end by
// ctx's deadline, capped at the probe timeout, so their results, timeouts
// included, are recorded when it returns; probes it shares with an earlier
// caller are awaited only until ctx ends. In interval mode it does nothing.
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
		case t.last.IsZero() || now.Sub(t.last) >= time.Duration(s.settings.MinInterval):
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

	logger := log.With(s.logger, "key", id.Key, "model", id.Model, "result", r.Outcome,
		"status", r.StatusCode, "duration", r.Duration)
	switch {
	case r.Err == nil:
		if changed {
			level.Info(logger).Log("msg", "Probe succeeded")
		} else {
			level.Debug(logger).Log("msg", "Probe succeeded")
		}
	case changed:
		level.Warn(logger).Log("msg", "Probe failed", "err", r.Err)
	default:
		level.Debug(logger).Log("msg", "Probe failed", "err", r.Err)
	}
}

// Stop cancels every probe and loop and waits for them to end.
func (s *Scheduler) Stop() {
	s.cancel()
	s.wg.Wait()
}
