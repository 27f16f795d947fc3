// Package scheduler decides when each key and model is probed: on a timer
// in interval mode, during scrapes in scrape mode, never twice at once, and
// never in a way that spends more of a quota than the config allows or
// ignores what the provider said.
package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Prober sends one probe.
type Prober interface {
	Probe(ctx context.Context, t config.Target) prober.Result
}

// Recorder keeps probe results and the interval each target is probed at.
type Recorder interface {
	Record(id config.TargetID, r *prober.Result)
	Observe(id config.TargetID, provider string, r *ratelimit.Reading)
	SetInterval(id config.TargetID, d time.Duration)
}

// jitterShare is how much each interval-mode interval varies either way,
// so that probes started together drift apart.
const jitterShare = 0.1

// Scheduler runs probes. Create it with New, configure it with Apply, and
// end it with Stop.
//
// A target's next probe is due one interval after its last probe ended
// (never probed: at once), and not before the provider's hold-off or a
// backoff ends. Due probes wait in one queue, oldest first, and are sent
// while fewer than probe.concurrency are in flight; a probe's timeout
// starts when it is sent.
type Scheduler struct {
	prober   Prober
	recorder Recorder
	logger   log.Logger
	clock    clockwork.Clock
	random   func() float64 // in [0, 1)

	history *history.History
	// onRequest: no probe of its own accord, only those RefreshTarget asks
	// for (ProbeOnRequestOnly).
	onRequest bool

	ctx    context.Context // ends with Stop; every probe derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	settings config.Probe
	targets  map[config.TargetID]*target
	leaving  map[config.TargetID]*target // left the config with a probe queued or in flight
	order    []*target                   // config order
	queue    []*target                   // due, waiting for a concurrency slot
	inFlight int                         // probes sent and not yet ended
	kick     chan struct{}
	kicks    uint64    // kicks sent
	seen     uint64    // kicks the dispatcher's last pass took into account
	nextWake time.Time // when the dispatcher wakes next
}

type target struct {
	id   config.TargetID
	cfg  config.Target
	rank int // first probes go in this order: every key's first model, then every second one, ...

	flight      *flight   // queued or sent
	last        time.Time // when the last probe ended; zero: never probed
	gap         float64   // the next probe is due last + gap × interval
	lastOutcome prober.Outcome

	limits         []ratelimit.Observation // the limits last read
	tokensPerProbe float64
	interval       time.Duration // the configured one, stretched to the quota share
	stretchedBy    string        // the window that stretched it; "" when not stretched
	holdUntil      time.Time     // the provider asked for no probe before then
	failures       int           // backoff failures in a row
	backoffUntil   time.Time     // backing off from them
}

// flight is a probe queued or under way; everyone who wants it waits on done.
type flight struct {
	done  chan struct{}
	entry *history.Entry // the probe's, set before done is closed; nil if cancelled
}

// New returns a scheduler that probes with p and records into r.
func New(p Prober, r Recorder, logger log.Logger) *Scheduler {
	return newScheduler(p, r, logger, clockwork.NewRealClock(), rand.Float64)
}

// KeepHistory makes s add each probe, and each reading of the proxy's
// traffic, to h. Call it before Apply.
func (s *Scheduler) KeepHistory(h *history.History) {
	s.mu.Lock()
	s.history = h
	s.mu.Unlock()
}

// ProbeOnRequestOnly makes s send no probe of its own accord: none on the
// interval-mode timer, none for Refresh; in scrape mode, RefreshTarget
// still probes its target when due. Replicas behind one Service so share
// the probing: each /probe request reaches one of them. Call it before
// Apply.
func (s *Scheduler) ProbeOnRequestOnly() {
	s.mu.Lock()
	s.onRequest = true
	s.mu.Unlock()
}

// newScheduler is New with the clock and the random source given, for tests.
func newScheduler(p Prober, r Recorder, logger log.Logger, clock clockwork.Clock, random func() float64) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		prober:   p,
		recorder: r,
		logger:   logger,
		clock:    clock,
		random:   random,
		ctx:      ctx,
		cancel:   cancel,
		targets:  map[config.TargetID]*target{},
		leaving:  map[config.TargetID]*target{},
		kick:     make(chan struct{}, 1),
	}
	s.wg.Add(1)
	go s.dispatch()
	return s
}

// configuredPeriod is the shortest time between two probes of t that the
// config asks for in the current mode (config.Probe.Period).
func (s *Scheduler) configuredPeriod(t *target) time.Duration {
	return s.settings.Period(t.cfg.Key)
}

// Apply makes cfg's targets and probe settings the ones in force. Targets
// that stay keep their last probe time, what the provider asked, and any
// probe under way; their next probe is due one new interval after the last
// one. Backoff after failures ends only for keys whose settings changed.
// Targets new to the config are due at once.
func (s *Scheduler) Apply(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings = cfg.Probe

	targets := cfg.Targets()
	keys := map[string]int{}
	modelIndex := map[string]int{}
	for _, tc := range targets {
		if _, seen := keys[tc.Key.Name]; !seen {
			keys[tc.Key.Name] = len(keys)
		}
	}
	order := make([]*target, 0, len(targets))
	keep := make(map[config.TargetID]bool, len(targets))
	for _, tc := range targets {
		id := tc.ID()
		keep[id] = true
		t := s.targets[id]
		if t == nil && s.leaving[id] != nil {
			// Back before its probe ended: the same target, so that one
			// probe of it is under way, not two.
			t = s.leaving[id]
			delete(s.leaving, id)
			s.targets[id] = t
		}
		switch {
		case t == nil:
			t = &target{id: id, gap: 1}
			s.targets[id] = t
		case t.cfg.Key.Provider != tc.Key.Provider:
			// The same name at another API: nothing carries over, and
			// it is probed at once, as a new target is. A probe of
			// the old one still out is ignored when it ends.
			*t = target{id: id, gap: 1, flight: t.flight}
		case keyMoved(t.cfg.Key, tc.Key):
			// Another key, or the same one sent elsewhere: what the old
			// settings met, backoff and hold-offs, does not carry over.
			t.failures, t.backoffUntil, t.holdUntil = 0, time.Time{}, time.Time{}
		case keySettingsChanged(t.cfg.Key, tc.Key):
			// The same key to the same place, sent another way (its
			// api_version, its HTTP client): the failures may have been
			// the old way's, but what the provider asked of the quota,
			// which is the same, still holds.
			t.failures, t.backoffUntil = 0, time.Time{}
		}
		t.cfg = tc
		t.rank = modelIndex[tc.Key.Name]*len(keys) + keys[tc.Key.Name]
		modelIndex[tc.Key.Name]++
		s.updateIntervalLocked(t)
		order = append(order, t)
	}
	for id, t := range s.targets {
		if !keep[id] {
			delete(s.targets, id)
			if t.flight != nil {
				s.leaving[id] = t
			}
		}
	}
	s.order = order
	if s.history != nil {
		ids := make([]config.TargetID, len(targets))
		for i, tc := range targets {
			ids[i] = tc.ID()
		}
		s.history.Configure(ids)
	}
	s.kickDispatcher()
}

// keyMoved reports whether a reload made a key another credential, or
// sends it to another place: another quota, as far as anyone can tell.
func keyMoved(before, after *config.Key) bool {
	return before.APIKey != after.APIKey || before.APIKeyFile != after.APIKeyFile ||
		before.BearerTokenFile != after.BearerTokenFile || before.BaseURL != after.BaseURL
}

// keySettingsChanged reports whether a key's settings that decide how its
// probes fare changed: a reload that fixes a key ends its backoff.
func keySettingsChanged(before, after *config.Key) bool {
	if before == after {
		// The same key of the same config: every probe without a reload
		// between its sending and its end, spared reflect.DeepEqual.
		return false
	}
	strip := func(k config.Key) config.Key {
		k.Name, k.Models, k.Labels, k.ProbeInterval = "", nil, nil, nil
		return k
	}
	return !reflect.DeepEqual(strip(*before), strip(*after))
}

// kickDispatcher wakes the dispatcher. s.mu must be held.
func (s *Scheduler) kickDispatcher() {
	s.kicks++
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// updateIntervalLocked recomputes t's interval from the config and the
// quota share. s.mu must be held.
func (s *Scheduler) updateIntervalLocked(t *target) {
	configured := s.configuredPeriod(t)
	needed, why := quotaInterval(t.limits, s.settings.MaxQuotaShare, t.tokensPerProbe)
	interval := max(configured, needed)
	if interval == t.interval {
		return
	}
	if interval > configured {
		// At info only when the window that sets it changes: a token
		// count that moves between probes moves the interval each time.
		logAt := level.Debug
		if why.Window != t.stretchedBy {
			logAt = level.Info
		}
		logAt(s.logger).Log("msg", "Probe interval stretched to keep probes within max_quota_share",
			"key", t.id.Key, "model", t.id.Model, "configured", configured, "interval", interval,
			"window", why.Window, "limit", why.Limit, "max_quota_share", s.settings.MaxQuotaShare,
			"tokens_per_probe", t.tokensPerProbe)
	}
	t.stretchedBy = why.Window
	t.interval = interval
	s.recorder.SetInterval(t.id, interval)
}

// nextProbeLocked is when t may be probed next; the zero time when at
// once. s.mu must be held.
func (s *Scheduler) nextProbeLocked(t *target) time.Time {
	var next time.Time
	if !t.last.IsZero() {
		gap := t.gap
		if s.settings.Mode == config.ModeScrape {
			gap = 1 // min_interval alone governs scrape mode
		}
		next = t.last.Add(time.Duration(float64(t.interval) * gap))
	}
	if t.holdUntil.After(next) {
		next = t.holdUntil
	}
	if t.backoffUntil.After(next) {
		next = t.backoffUntil
	}
	return next
}

// dispatchSlack lets one pass of the dispatcher queue the probes due within
// it, so that spread probes do not each wake it.
const dispatchSlack = 10 * time.Millisecond

// maxWait bounds the dispatcher's sleep, so a clock that jumps is noticed.
const maxWait = time.Minute

// dispatch queues, in interval mode, the probes that are due, and sleeps
// until the next one is. One goroutine serves every target; a probe has a
// goroutine only while it is in flight.
func (s *Scheduler) dispatch() {
	defer s.wg.Done()
	timer := s.clock.NewTimer(maxWait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		s.seen = s.kicks
		wait := maxWait
		if s.settings.Mode == config.ModeInterval && !s.onRequest {
			now := s.clock.Now()
			var due []*target
			for _, t := range s.order {
				if t.flight != nil {
					continue
				}
				if d := s.nextProbeLocked(t).Sub(now); d > dispatchSlack {
					wait = min(wait, d)
				} else {
					due = append(due, t)
				}
			}
			s.enqueueLocked(due)
		}
		s.startQueuedLocked()
		s.nextWake = s.clock.Now().Add(wait)
		timer.Reset(wait)
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-timer.Chan():
		}
	}
}

// enqueueLocked queues a probe of each target in due, longest due first,
// then by rank. s.mu must be held.
func (s *Scheduler) enqueueLocked(due []*target) {
	next := make(map[*target]time.Time, len(due))
	for _, t := range due {
		next[t] = s.nextProbeLocked(t)
	}
	slices.SortStableFunc(due, func(a, b *target) int {
		if c := next[a].Compare(next[b]); c != 0 {
			return c
		}
		return a.rank - b.rank
	})
	for _, t := range due {
		t.flight = &flight{done: make(chan struct{})}
		s.queue = append(s.queue, t)
	}
}

// startQueuedLocked sends queued probes while fewer than probe.concurrency
// are in flight. s.mu must be held.
func (s *Scheduler) startQueuedLocked() {
	for len(s.queue) > 0 && s.inFlight < s.settings.Concurrency && s.ctx.Err() == nil {
		t := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if s.targets[t.id] != t { // left the config while queued
			close(t.flight.done)
			t.flight = nil
			delete(s.leaving, t.id)
			continue
		}
		s.inFlight++
		s.wg.Add(1)
		go s.run(t, t.flight, t.cfg, time.Duration(s.settings.Timeout))
	}
}

// run sends one probe, which has timeout from now, and records its result.
func (s *Scheduler) run(t *target, f *flight, cfg config.Target, timeout time.Duration) {
	defer s.wg.Done()
	started := s.clock.Now()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	result := s.prober.Probe(ctx, cfg)
	cancelled := errors.Is(ctx.Err(), context.Canceled)
	cancel()
	if cancelled && result.Err != nil {
		// Stopped, not failed: what the probe would have read is unknown.
		level.Debug(s.logger).Log("msg", "Probe cancelled", "key", t.id.Key, "model", t.id.Model, "err", result.Err)
		s.mu.Lock()
		s.inFlight--
		t.flight = nil
		s.mu.Unlock()
		close(f.done)
		return
	}
	s.finish(t, f, cfg, &result, &history.Entry{Source: history.Probe, Target: t.id, Provider: cfg.Key.Provider, Started: started, Schedule: history.Schedule{Timeout: timeout}})
}

// Refresh, in scrape mode, queues a probe of every target that is due (its
// last probe is older than its interval and nothing holds it off) and waits
// until every probe queued or under way has ended, or ctx ends. ctx bounds
// only this wait: a probe goes on with its full timeout once sent, and its
// result serves the next scrape. In interval mode, or when probing only
// on request, it does nothing.
func (s *Scheduler) Refresh(ctx context.Context) {
	s.refresh(ctx, func() []*target {
		if s.onRequest {
			return nil
		}
		return s.order
	})
}

// RefreshTarget is Refresh for the target id alone: a probe of it that is
// under way, or due, is shared with every other caller, so two scrapers of
// one target cause one probe. It reports false if id is not configured.
func (s *Scheduler) RefreshTarget(ctx context.Context, id config.TargetID) bool {
	found := false
	s.refresh(ctx, func() []*target {
		if t := s.targets[id]; t != nil {
			found = true
			return []*target{t}
		}
		return nil
	})
	return found
}

// refresh does Refresh for the targets that wanted returns under s.mu,
// and returns the probes it waited for.
func (s *Scheduler) refresh(ctx context.Context, wanted func() []*target) []*flight {
	s.mu.Lock()
	if s.settings.Mode != config.ModeScrape {
		s.mu.Unlock()
		return nil
	}
	now := s.clock.Now()
	var due []*target
	var waits []*flight
	for _, t := range wanted() {
		switch {
		case t.flight != nil:
			waits = append(waits, t.flight)
		case !now.Before(s.nextProbeLocked(t)):
			due = append(due, t)
		}
	}
	s.enqueueLocked(due)
	for _, t := range due {
		waits = append(waits, t.flight)
	}
	s.startQueuedLocked()
	s.mu.Unlock()

	for _, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return waits
		case <-s.ctx.Done():
			return waits
		}
	}
	return waits
}

// finish records a result and works out when the target may be probed
// next. cfg is what the probe was sent with.
// entry, the probe's history entry, gets the result and the schedule.
func (s *Scheduler) finish(t *target, f *flight, cfg config.Target, r *prober.Result, entry *history.Entry) {
	s.recorder.Record(t.id, r)
	entry.Result = *r
	f.entry = entry
	defer close(f.done)
	if s.history != nil { // set before Apply, so before any probe
		defer s.history.Add(entry)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	entry.Schedule.Mode = string(s.settings.Mode)
	s.inFlight--
	if t.flight == f {
		t.flight = nil
	}
	if s.targets[t.id] != t {
		delete(s.leaving, t.id) // left the config; nothing to schedule
		entry.Schedule.Removed = true
		s.startQueuedLocked()
		return
	}
	if keySettingsChanged(cfg.Key, t.cfg.Key) {
		// A reload changed the key while this probe was out: what it met
		// says nothing of the new settings, so it moves no timing and
		// starts no backoff; the key is probed again as if new.
		t.last, t.failures, t.backoffUntil = time.Time{}, 0, time.Time{}
		entry.Schedule.Stale = true
		s.startQueuedLocked()
		s.kickDispatcher()
		return
	}
	first := t.last.IsZero()
	t.last = r.Time
	previous := t.lastOutcome
	t.lastOutcome = r.Outcome

	if r.Success() {
		t.read(&r.Reading, r.Free)
	} else if isBackoffFailure(r) {
		t.failures++
	}
	if r.Tokens > 0 {
		t.tokensPerProbe = r.Tokens
	}
	s.updateIntervalLocked(t)
	if first {
		// First probes go out together; their second ones are spread over
		// the interval that follows, each at its own place in it.
		t.gap = 1 + phase(t.id)
	} else {
		t.gap = 1 - jitterShare + 2*jitterShare*s.random()
	}

	logger := log.With(s.logger, "key", t.id.Key, "model", t.id.Model)
	t.hold(&r.Reading, logger)
	if wait, why := failureBackoff(r, t.failures, t.interval, s.random); wait > 0 {
		t.backoffUntil = r.Time.Add(wait)
		level.Info(logger).Log("msg", "Backing off after failures", "reason", why, "failures", t.failures, "until", t.backoffUntil)
	}
	entry.Schedule.HoldUntil, entry.Schedule.Failures, entry.Schedule.BackoffUntil = t.holdUntil, t.failures, t.backoffUntil
	entry.Schedule.Interval, entry.Schedule.StretchedBy, entry.Schedule.Next = t.interval, t.stretchedBy, s.nextProbeLocked(t)
	s.startQueuedLocked()
	if s.nextProbeLocked(t).Before(s.nextWake) {
		s.kickDispatcher()
	}

	logOutcome(log.With(logger, "result", r.Outcome, "status", r.StatusCode, "duration", r.Duration), previous, r)
}

// Debug returns the record of id's latest probe, for /probe?debug=true:
// in scrape mode it first sends one if id is due, as /probe does, and
// returns that probe's record; in interval mode it sends none and returns
// the newest kept, its last failure or its newest history entry. False if
// there is none, or id is not configured.
func (s *Scheduler) Debug(ctx context.Context, id config.TargetID) (*history.Entry, bool) {
	waits := s.refresh(ctx, func() []*target {
		if t := s.targets[id]; t != nil {
			return []*target{t}
		}
		return nil
	})
	for _, f := range waits {
		select {
		case <-f.done:
			if f.entry != nil {
				return f.entry, true
			}
		default: // the request's deadline came first
		}
	}
	if s.history == nil {
		return nil, false
	}
	return s.history.Latest(id)
}

// logOutcome logs what a probe changed at info or warn, a target's first
// failure, a change of failure or its recovery, and a probe that changed
// nothing at debug: a thousand keys that work log nothing each interval.
func logOutcome(logger log.Logger, previous prober.Outcome, r *prober.Result) {
	failedBefore := previous != "" && previous != prober.Success
	switch {
	case r.Err == nil && failedBefore:
		level.Info(logger).Log("msg", "Probe succeeded again", "previous", previous)
	case r.Err == nil:
		level.Debug(logger).Log("msg", "Probe succeeded")
	case previous != r.Outcome:
		level.Warn(logger).Log("msg", "Probe failed", "err", r.Err)
	default:
		level.Debug(logger).Log("msg", "Probe failed", "err", r.Err)
	}
}

// read takes what a successful reading, a probe's or the proxy's, says:
// the key works, and its limits are these. A free probe spends none of
// what it reads: its limits do not stretch its interval. A Served reading
// gives no limits, and a request served changes none: they stay.
func (t *target) read(r *ratelimit.Reading, free bool) {
	t.failures, t.backoffUntil = 0, time.Time{}
	if len(r.Observations) == 0 {
		return // Served: no window was empty; the limits last read still hold
	}
	t.limits = t.limits[:0]
	for _, o := range r.Observations {
		if o.Kind == ratelimit.Limit && !free {
			t.limits = append(t.limits, o)
		}
	}
}

// hold holds probes off for as long as r asks, if it asks for longer than
// a hold already in force.
func (t *target) hold(r *ratelimit.Reading, logger log.Logger) {
	wait, why := providerHold(r)
	if until := r.Time.Add(wait); wait > 0 && until.After(t.holdUntil) {
		t.holdUntil = until
		level.Info(logger).Log("msg", "Holding off probes as the provider asked", "reason", why, "until", t.holdUntil)
	}
}

// Observe records a reading of id's rate limits taken from an
// application's own request through the proxy. For a configured target of
// that provider it counts as a probe: the next probe is due one interval
// after the newest reading, whatever its source, so a key and model in
// steady use costs no probes, and probes resume when the traffic stops.
// A reading without limits, such as a 429 or a 503, still holds probes off
// for its Retry-After.
func (s *Scheduler) Observe(id config.TargetID, provider string, r *ratelimit.Reading) {
	s.recorder.Observe(id, provider, r)
	if s.history != nil { // set before Apply, so before any reading
		s.history.Add(&history.Entry{Source: history.Proxy, Target: id, Provider: provider, Started: r.Time, Result: prober.Result{Reading: *r}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.targets[id]
	if t == nil || t.cfg.Key.Provider != provider {
		return
	}
	logger := log.With(s.logger, "key", id.Key, "model", id.Model, "source", "proxy")
	t.hold(r, logger)
	if !r.Success() || r.Time.Before(t.last) {
		return
	}
	t.last, t.gap = r.Time, 1
	t.read(r, false)
	s.updateIntervalLocked(t)
}

// phase places a target in [0, 1) of an interval by its name, so that its
// place stays the same across restarts and reloads whatever the config order.
func phase(id config.TargetID) float64 {
	sum := sha256.Sum256([]byte(id.Key + "\x00" + id.Model))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// Stop cancels every probe and the dispatcher and waits for them to end.
// Probes still queued are dropped.
func (s *Scheduler) Stop() {
	s.cancel()
	s.mu.Lock()
	for _, t := range s.queue {
		close(t.flight.done)
		t.flight = nil
	}
	s.queue = nil
	s.mu.Unlock()
	s.wg.Wait()
}
