// Package adminpoll reads the providers' admin APIs on their own slow
// clock: the rate limits configured for the projects and workspaces that
// keys name, which become limits of those keys' models beside what the
// headers say, and the month's costs, compared with the budgets the config
// declares. Reading them spends none of any key's quota.
package adminpoll

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jonboulle/clockwork"

	"github.com/ratelimit-exporter/ratelimit_exporter/admin"
	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// Recorder takes what an admin source says of a key's models: the
// collector.
type Recorder interface {
	SetConfigured(source collector.ConfiguredSource, key string, byModel map[string][]ratelimit.Window, at time.Time)
}

// minBackoff is the wait after a first failure; it doubles with each
// failure in a row, up to the source's interval.
const minBackoff = 30 * time.Second

// Poller reads every admin source of the running config. Create it with
// New, give it configs with Prepare and Use, and end it with Stop.
//
// Each source reads its APIs once at start, then every interval after the
// last read ended; a failed read is retried after a backoff, never sooner
// than a Retry-After asks, and what the last good read said is kept.
type Poller struct {
	recorder  Recorder
	logger    log.Logger
	clock     clockwork.Clock
	newReader func(s *settings) reader

	ctx    context.Context // ends with Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	sources map[string]*source // by admin name
	keys    map[string]keyUse  // the keys that name an admin source, by name
	pushed  map[string]bool    // keys the recorder holds admin limits of
	stopped bool
}

// keyUse is the admin source a key names and its project or workspace.
type keyUse struct{ admin, scope string }

// settings are what a source reads with: from the config, and the HTTP
// client built for it.
type settings struct {
	name, provider string
	baseURL        string
	interval       time.Duration
	key            func() (config.Secret, error)
	client         *http.Client
	budgets        []config.Budget
	scopes         []string // the projects or workspaces its keys name, sorted
	// sentTo is what decides where the admin key goes and which key it
	// is: a change reads at once.
	sentTo sentTo
}

type sentTo struct {
	adminKey     config.Secret
	adminKeyFile string
	baseURL      string
	httpClient   config.HTTPClient
}

// source is one admin source and what it read.
type source struct {
	settings settings
	reader   reader
	cancel   context.CancelFunc
	wake     chan struct{} // the settings changed: see what is due
	kicks    uint64        // wakes sent
	seen     uint64        // wakes the loop's last pass took into account
	parked   bool          // the loop waits for a wake or wakeAt
	wakeAt   time.Time     // zero: no timer
	apis     [numAPIs]apiState
	limits   map[string]limitsRead // the last good read of each scope
	spend    *costsRead            // the last good read of the costs
}

// apiState is when a source reads one API and how that went.
type apiState struct {
	pollNow     bool      // read as soon as no Retry-After holds it
	last        time.Time // when the last read ended
	next        time.Time // when the next read is due
	holdUntil   time.Time // a Retry-After asked for no read before then
	failures    int       // failed reads in a row
	polled, ok  bool      // read at least once; the last read worked
	lastSuccess time.Time
	requests    map[string]float64 // by result
	results     map[string]string  // the last read's result, by scope
	errors      map[string]string  // the last read's error, by scope that failed
}

type limitsRead struct {
	byModel map[string][]ratelimit.Window
	at      time.Time
}

type costsRead struct {
	costs []admin.Cost
	month time.Time // the month they are of
	at    time.Time
}

// New returns a poller that gives what it reads to recorder.
func New(recorder Recorder, logger log.Logger) *Poller {
	return newPoller(recorder, logger, clockwork.NewRealClock())
}

// newPoller is New with the clock given, for tests.
func newPoller(recorder Recorder, logger log.Logger, clock clockwork.Clock) *Poller {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Poller{
		recorder: recorder, logger: logger, clock: clock,
		newReader: func(s *settings) reader {
			return &adminReader{provider: s.provider, baseURL: s.baseURL, key: s.key, client: s.client}
		},
		ctx: ctx, cancel: cancel,
		sources: map[string]*source{}, keys: map[string]keyUse{}, pushed: map[string]bool{},
	}
}

// Plan is what Use puts to work: the settings of a config's admin sources,
// with their HTTP clients built.
type Plan struct {
	sources []settings
	keys    map[string]keyUse
}

// Prepare builds the HTTP clients of cfg's admin sources, reusing the
// running ones where http_client is the same. It changes nothing.
func (p *Poller) Prepare(cfg *config.Config) (*Plan, error) {
	p.mu.Lock()
	running := map[string]settings{}
	for name, s := range p.sources {
		running[name] = s.settings
	}
	p.mu.Unlock()
	return newPlan(cfg, running)
}

// newPlan builds the plan of cfg, reusing the clients of running, by
// admin name, where their http_client is the same.
func newPlan(cfg *config.Config, running map[string]settings) (*Plan, error) {
	plan := &Plan{keys: map[string]keyUse{}}
	scopes := map[string][]string{}
	for i := range cfg.Keys {
		k := &cfg.Keys[i]
		if k.Admin != "" {
			plan.keys[k.Name] = keyUse{admin: k.Admin, scope: k.Scope()}
			if !slices.Contains(scopes[k.Admin], k.Scope()) {
				scopes[k.Admin] = append(scopes[k.Admin], k.Scope())
			}
		}
	}
	for i := range cfg.Admin {
		a := cfg.Admin[i]
		s := settings{
			name: a.Name, provider: a.Provider, baseURL: a.BaseURL, interval: time.Duration(a.Interval),
			key: a.Secret, budgets: slices.Clone(a.Budgets), scopes: slices.Sorted(slices.Values(scopes[a.Name])),
			sentTo: sentTo{adminKey: a.AdminKey, adminKeyFile: a.AdminKeyFile, baseURL: a.BaseURL, httpClient: a.HTTPClient},
		}
		if old, ok := running[a.Name]; ok && reflect.DeepEqual(old.sentTo.httpClient, a.HTTPClient) {
			s.client = old.client
		} else {
			client, err := prober.NewClient(a.HTTPClient)
			if err != nil {
				return nil, fmt.Errorf("admin %s: http_client: %w", a.Name, err)
			}
			s.client = client
		}
		plan.sources = append(plan.sources, s)
	}
	return plan, nil
}

// Use makes plan's sources the ones read. A source that stays keeps what
// it read, and gives it at once to the keys that name it now; one whose
// admin key, base_url or http_client changed, or that has a project or
// workspace it never read, reads at once. A source that left stops.
func (p *Poller) Use(plan *Plan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	next := map[string]*source{}
	for _, set := range plan.sources {
		s := p.sources[set.name]
		if s != nil && s.settings.provider != set.provider {
			s = nil // another API: nothing it read applies
		}
		if s == nil {
			s = p.startLocked(set)
		} else {
			p.changeLocked(s, set)
		}
		next[set.name] = s
	}
	for name, s := range p.sources {
		if next[name] != s {
			s.cancel()
		}
	}
	p.sources, p.keys = next, plan.keys
	now := p.clock.Now()
	for key, use := range p.keys {
		if read, ok := next[use.admin].limitsOf(use.scope); ok {
			p.recorder.SetConfigured(collector.SourceAdminAPI, key, read.byModel, read.at)
			p.pushed[key] = true
		} else if p.pushed[key] {
			p.recorder.SetConfigured(collector.SourceAdminAPI, key, nil, now)
			delete(p.pushed, key)
		}
	}
	for key := range p.pushed {
		if _, ok := p.keys[key]; !ok {
			p.recorder.SetConfigured(collector.SourceAdminAPI, key, nil, now)
			delete(p.pushed, key)
		}
	}
}

// startLocked starts reading a new source at once.
func (p *Poller) startLocked(set settings) *source {
	ctx, cancel := context.WithCancel(p.ctx)
	s := &source{settings: set, cancel: cancel, wake: make(chan struct{}, 1), limits: map[string]limitsRead{}}
	s.reader = p.newReader(&s.settings)
	for i := range s.apis {
		s.apis[i] = apiState{pollNow: true, requests: map[string]float64{}, results: map[string]string{}, errors: map[string]string{}}
	}
	p.wg.Add(1)
	go p.run(ctx, s)
	return s
}

// changeLocked gives a running source its new settings.
func (p *Poller) changeLocked(s *source, set settings) {
	old := s.settings
	s.settings = set
	s.reader = p.newReader(&s.settings)
	if !reflect.DeepEqual(old.sentTo, set.sentTo) {
		// Another key, or another place: what held the old one back
		// does not hold this one.
		for i := range s.apis {
			s.apis[i].pollNow, s.apis[i].holdUntil, s.apis[i].failures = true, time.Time{}, 0
		}
	}
	for _, scope := range set.scopes {
		if _, read := s.limits[scope]; !read {
			s.apis[apiRateLimits].pollNow = true
		}
	}
	for scope := range s.limits {
		if !slices.Contains(set.scopes, scope) {
			delete(s.limits, scope)
		}
	}
	if !slices.Equal(old.budgets, set.budgets) && len(set.budgets) > 0 && s.spend == nil {
		s.apis[apiCosts].pollNow = true
	}
	if set.interval != old.interval {
		// An interval after the last read; a backoff stays if sooner, as
		// it never waits longer than the interval.
		for i := range s.apis {
			st := &s.apis[i]
			if at := st.last.Add(set.interval); !st.last.IsZero() && (st.failures == 0 || at.Before(st.next)) {
				st.next = at
			}
		}
	}
	s.kicks++
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop stops every source and waits for their reads to end.
func (p *Poller) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// limitsOf returns the last good read of scope's limits, if any.
func (s *source) limitsOf(scope string) (limitsRead, bool) {
	if s == nil {
		return limitsRead{}, false
	}
	read, ok := s.limits[scope]
	return read, ok
}

// used reports whether the source reads api with its settings.
func (s *settings) used(a api) bool {
	if a == apiRateLimits {
		return len(s.scopes) > 0
	}
	return len(s.budgets) > 0
}

// due returns the first API due at now, or -1 and how long until one is
// (-1: none until the settings change).
func (s *source) due(now time.Time) (api, time.Duration) {
	wait := time.Duration(-1)
	for a := range numAPIs {
		if !s.settings.used(a) {
			continue
		}
		st := &s.apis[a]
		at := st.next
		if st.pollNow {
			at = time.Time{}
		}
		if st.holdUntil.After(at) {
			at = st.holdUntil
		}
		if !at.After(now) {
			return a, 0
		}
		if d := at.Sub(now); wait < 0 || d < wait {
			wait = d
		}
	}
	return -1, wait
}

// run reads s's APIs when they are due, until ctx ends.
func (p *Poller) run(ctx context.Context, s *source) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		s.seen = s.kicks
		now := p.clock.Now()
		a, wait := s.due(now)
		set, r := s.settings, s.reader
		var timer clockwork.Timer
		var fired <-chan time.Time
		switch {
		case a >= 0:
			s.apis[a].pollNow = false
		case wait >= 0:
			timer = p.clock.NewTimer(wait)
			fired = timer.Chan()
			s.parked, s.wakeAt = true, now.Add(wait)
		default:
			s.parked, s.wakeAt = true, time.Time{}
		}
		p.mu.Unlock()
		if a >= 0 {
			if a == apiRateLimits {
				p.readLimits(ctx, s, &set, r)
			} else {
				p.readCosts(ctx, s, &set, r)
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fired:
		}
		if timer != nil {
			timer.Stop()
		}
		p.mu.Lock()
		s.parked = false
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// readLimits reads the limits of every scope of set, keeps those read and
// gives them to the keys that name their scope.
func (p *Poller) readLimits(ctx context.Context, s *source, set *settings, r reader) {
	reads := map[string]limitsRead{}
	outcomes := map[string]error{} // nil: read
	requests := map[string]float64{}
	var retryAfter time.Duration
	for _, scope := range set.scopes {
		readCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		res, err := r.limits(readCtx, scope)
		cancel()
		if ctx.Err() != nil {
			return // stopping or replaced: nothing to record
		}
		for result, n := range requestsOf(res.Pages, err) {
			requests[result] += n
		}
		outcomes[scope] = err
		if err != nil {
			retryAfter = max(retryAfter, retryAfterOf(err))
			continue
		}
		reads[scope] = limitsRead{byModel: windowsByModel(res.Limits), at: p.clock.Now()}
		level.Debug(p.logger).Log("msg", "Read an admin API", "admin", set.name, "api", APIRateLimits, "scope", scope,
			"models", len(reads[scope].byModel), "pages", res.Pages, "dropped", res.Dropped)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sources[set.name] != s {
		return
	}
	for scope, read := range reads {
		// A reload while the read was in flight may have dropped the
		// scope: kept, it would pass for current when a key named the
		// scope again, and hold off the read that key needs.
		if slices.Contains(s.settings.scopes, scope) {
			s.limits[scope] = read
		}
	}
	for key, use := range p.keys {
		if read, ok := reads[use.scope]; ok && use.admin == set.name {
			p.recorder.SetConfigured(collector.SourceAdminAPI, key, read.byModel, read.at)
			p.pushed[key] = true
		}
	}
	p.finishLocked(s, set, apiRateLimits, outcomes, requests, retryAfter)
}

// readCosts reads the month's costs and keeps, for each budget, the spend.
func (p *Poller) readCosts(ctx context.Context, s *source, set *settings, r reader) {
	now := p.clock.Now()
	readCtx, cancel := context.WithTimeout(ctx, requestTimeout)
	res, err := r.costs(readCtx, monthStart(now))
	cancel()
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sources[set.name] != s {
		return
	}
	if err == nil {
		s.spend = &costsRead{costs: res.Costs, month: monthStart(now), at: p.clock.Now()}
		level.Debug(p.logger).Log("msg", "Read an admin API", "admin", set.name, "api", APICosts, "costs", len(res.Costs), "pages", res.Pages)
	}
	p.finishLocked(s, set, apiCosts, map[string]error{"": err}, requestsOf(res.Pages, err), retryAfterOf(err))
}

// finishLocked records how a read of a went, by scope (a nil error: read),
// and when the next is due: an interval after one that worked; after a
// failure, a backoff that doubles up to the interval, and never before a
// Retry-After ends. A scope's failure is logged at warn when its result
// changed, at debug when it is the same again, as the probes' are.
func (p *Poller) finishLocked(s *source, set *settings, a api, outcomes map[string]error, requests map[string]float64, retryAfter time.Duration) {
	now := p.clock.Now()
	st := &s.apis[a]
	for result, n := range requests {
		st.requests[result] += n
	}
	ok := true
	for _, err := range outcomes {
		ok = ok && err == nil
	}
	st.polled, st.ok, st.last = true, ok, now
	var wait time.Duration
	if ok {
		if st.failures > 0 {
			level.Info(p.logger).Log("msg", "Reading an admin API works again", "admin", set.name, "api", apiNames[a], "failures", st.failures)
		}
		st.failures, st.lastSuccess, st.next, st.holdUntil = 0, now, now.Add(set.interval), time.Time{}
	} else {
		st.failures++
		wait = min(minBackoff<<min(st.failures-1, 20), set.interval)
		if retryAfter > 0 {
			st.holdUntil = now.Add(retryAfter)
			wait = max(wait, retryAfter)
		}
		st.next = now.Add(wait)
	}
	for _, scope := range slices.Sorted(maps.Keys(outcomes)) {
		err, result := outcomes[scope], resultOf(outcomes[scope])
		previous := st.results[scope]
		st.results[scope] = result
		if err == nil {
			delete(st.errors, scope)
			continue
		}
		st.errors[scope] = err.Error()
		logger := level.Debug(p.logger)
		if result != previous {
			logger = level.Warn(p.logger)
		}
		// The errors hold no key: admin.Error and a key file's error are
		// built without one.
		logger.Log("msg", "Reading an admin API failed; what it last read is kept", "admin", set.name, "api", apiNames[a],
			"scope", scope, "result", result, "err", err, "retry_in", wait)
	}
}

// Sources says how the last read of each source's rate limits went, by
// source name, for the JSON view: the projects or workspaces its keys name
// that were read, and those that failed, with the error, which holds no
// key. A source that reads no rate limits (only costs) is left out.
func (p *Poller) Sources() []snapshot.AdminSource {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]snapshot.AdminSource, 0, len(p.sources))
	for _, name := range slices.Sorted(maps.Keys(p.sources)) {
		s := p.sources[name]
		if !s.settings.used(apiRateLimits) {
			continue
		}
		st := &s.apis[apiRateLimits]
		src := snapshot.AdminSource{Name: name, Provider: s.settings.provider, Read: []string{}}
		if st.polled {
			at := st.last.UTC()
			src.ReadAt = &at
		}
		for _, scope := range s.settings.scopes {
			switch {
			case st.results[scope] == ResultSuccess:
				src.Read = append(src.Read, scope)
			case st.errors[scope] != "":
				src.Failed = append(src.Failed, snapshot.Failed{Scope: scope, Error: st.errors[scope]})
			}
		}
		// A scope not read yet, as after a reload that added it, is
		// neither: the source is not OK until it is read.
		src.OK = st.polled && len(src.Read) == len(s.settings.scopes)
		out = append(out, src)
	}
	return out
}

// settled reports whether every source's loop waits, has seen every
// change, and has nothing due at the clock's present: for tests, which
// move a fake clock.
func (p *Poller) settled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	for _, s := range p.sources {
		if a, _ := s.due(now); !s.parked || s.seen != s.kicks || a >= 0 {
			return false
		}
	}
	return true
}

// nextWake returns when the first source's loop wakes; zero when none will.
func (p *Poller) nextWake() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, s := range p.sources {
		if !s.wakeAt.IsZero() && (first.IsZero() || s.wakeAt.Before(first)) {
			first = s.wakeAt
		}
	}
	return first
}
