// Package tally counts what the proxy's traffic spends of the limits that
// keys declare, in fixed windows, and says what each window has left: the
// declared limit minus what was counted since the window began.
//
// Windows are aligned to the Unix epoch: a window of length L runs from a
// multiple of L since 1970-01-01T00:00:00Z to the next, so seconds,
// minutes and hours start on the clock's, days at midnight UTC, and longer
// windows (7d, month = 30d) at multiples of their length since the epoch.
// A window's figures are published when something is counted and when a
// window ends, by a timer set for the next end.
package tally

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Spent is what one response spent, by resource: a request served, and
// the tokens its usage reports.
type Spent struct {
	Requests, InputTokens, OutputTokens, Tokens float64
}

// of returns what s spent of resource, one of config.LimitResources.
func (s *Spent) of(resource string) float64 {
	switch resource {
	case config.ResourceRequests:
		return s.Requests
	case config.ResourceInputTokens:
		return s.InputTokens
	case config.ResourceOutputTokens:
		return s.OutputTokens
	case config.ResourceTokens:
		return s.Tokens
	}
	return 0
}

func (s *Spent) add(o Spent) {
	s.Requests += o.Requests
	s.InputTokens += o.InputTokens
	s.OutputTokens += o.OutputTokens
	s.Tokens += o.Tokens
}

// Publisher takes what the tally says of a key's declared windows, at a
// time: per model, each window's limit, the seconds from at to the
// window's end (Reset) and, once a whole window has been counted, what it
// has left (Remaining). It replaces what was published of the key before;
// an empty byModel says the key declares nothing. Publish is called with
// the tally's lock held, in the order the figures were made: it must not
// block, nor call the tally.
type Publisher interface {
	Publish(key string, byModel map[string][]ratelimit.Window, at time.Time)
}

// Tally counts the traffic of the keys that declare limits. It is safe for
// concurrent use.
type Tally struct {
	clock     clockwork.Clock
	publisher Publisher

	mu    sync.Mutex
	keys  map[string]*keyTally
	timer clockwork.Timer
	armed int // the timer's generation: a timer that fires after it was replaced does nothing
}

// keyTally is what is counted of one key.
type keyTally struct {
	provider string
	models   map[string]*modelTally // by model; "" counts all the key's traffic
}

// modelTally is what is counted of one key and model.
type modelTally struct {
	windows []*window
	spent   Spent // since counting began: ratelimit_proxy_usage_total
}

// window is one declared window and what was counted in its current span.
type window struct {
	resource, name string
	length         time.Duration
	limit          float64
	// since is when counting began: the window's span is counted whole
	// when it began no earlier.
	since time.Time
	start time.Time // the current span's
	count float64
}

var usageDesc = prometheus.NewDesc("ratelimit_proxy_usage_total",
	"What the proxy counted of the traffic of keys that declare limits, by resource: requests served (2xx), and the input, output and total tokens their usage reports.",
	[]string{config.LabelKey, config.LabelProvider, config.LabelModel, config.LabelResource}, nil)

var _ prometheus.Collector = (*Tally)(nil)

// New returns a tally that counts nothing until Apply, on clock, and
// publishes to p.
func New(clock clockwork.Clock, p Publisher) *Tally {
	return &Tally{clock: clock, publisher: p, keys: map[string]*keyTally{}}
}

// Apply makes cfg's declared limits those counted. A window that a key
// still declares, for the same model, resource and length, keeps what it
// counted, its limit changed or not, and so does a model's usage; the
// others start counting now, their first span not counted whole. A key
// that left the config, or moved to another provider, is forgotten. Every
// key of cfg that declared limits before or does now is published.
func (t *Tally) Apply(cfg *config.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	next := map[string]*keyTally{}
	for i := range cfg.Keys {
		k := &cfg.Keys[i]
		declared := k.DeclaredLimits()
		old := t.keys[k.Name]
		if old != nil && old.provider != k.Provider {
			old = nil
		}
		if len(declared) == 0 {
			if old != nil {
				t.publisher.Publish(k.Name, map[string][]ratelimit.Window{}, now)
			}
			continue
		}
		kt := &keyTally{provider: k.Provider, models: map[string]*modelTally{}}
		for model, limits := range declared {
			var before *modelTally
			if old != nil {
				before = old.models[model]
			}
			mt := &modelTally{}
			if before != nil {
				mt.spent = before.spent
			}
			for _, l := range limits {
				w := &window{resource: l.Resource, name: l.Window, length: l.Length(), limit: l.Limit, since: now, start: align(now, l.Length())}
				if before != nil {
					if i := slices.IndexFunc(before.windows, func(o *window) bool { return o.resource == w.resource && o.length == w.length }); i >= 0 {
						kept := before.windows[i]
						w.since, w.start, w.count = kept.since, kept.start, kept.count
					}
				}
				mt.windows = append(mt.windows, w)
			}
			kt.models[model] = mt
		}
		next[k.Name] = kt
	}
	t.keys = next
	for name, kt := range t.keys {
		t.publish(name, kt, now)
	}
	t.arm(now)
}

// Count adds what a response for key and model spent: to the model's
// windows, and to the windows that count all the key's traffic ("").
// Keys and models that declare nothing are not counted.
func (t *Tally) Count(key, model string, s Spent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kt := t.keys[key]
	if kt == nil {
		return
	}
	now := t.clock.Now()
	counted, back := false, false
	for i, m := range [2]string{model, ""} {
		mt := kt.models[m]
		if mt == nil || i == 1 && model == "" {
			continue
		}
		for _, w := range mt.windows {
			back = w.roll(now) || back
			w.count += s.of(w.resource)
		}
		mt.spent.add(s)
		counted = true
	}
	if counted {
		t.publish(key, kt, now)
	}
	if back {
		t.arm(now) // the timer was set for the end of a span the clock left
	}
}

// Stop stops the timer of the windows' ends.
func (t *Tally) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armed++
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}

// publish gives the publisher every window of the key, as of now.
func (t *Tally) publish(name string, kt *keyTally, now time.Time) {
	limit, remaining, reset := ratelimit.KindIndex[ratelimit.Limit], ratelimit.KindIndex[ratelimit.Remaining], ratelimit.KindIndex[ratelimit.Reset]
	byModel := make(map[string][]ratelimit.Window, len(kt.models))
	for model, mt := range kt.models {
		windows := make([]ratelimit.Window, len(mt.windows))
		for i, w := range mt.windows {
			w.roll(now)
			rw := &windows[i]
			rw.Resource, rw.Window = w.resource, w.name
			rw.Values[limit], rw.Has[limit] = w.limit, true
			rw.Values[reset], rw.Has[reset] = w.start.Add(w.length).Sub(now).Seconds(), true
			if !w.since.After(w.start) {
				rw.Values[remaining], rw.Has[remaining] = math.Max(0, w.limit-w.count), true
			}
		}
		byModel[model] = windows
	}
	t.publisher.Publish(name, byModel, now)
}

// arm sets the timer for the next end of a window, in place of any other.
func (t *Tally) arm(now time.Time) {
	t.armed++
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	var next time.Time
	for _, kt := range t.keys {
		for _, mt := range kt.models {
			for _, w := range mt.windows {
				if end := w.start.Add(w.length); next.IsZero() || end.Before(next) {
					next = end
				}
			}
		}
	}
	if next.IsZero() {
		return
	}
	generation := t.armed
	t.timer = t.clock.AfterFunc(max(next.Sub(now), 0), func() { t.windowEnded(generation) })
}

// windowEnded publishes the keys of which a window has ended, and sets the
// timer for the next end.
func (t *Tally) windowEnded(generation int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if generation != t.armed {
		return
	}
	now := t.clock.Now()
	for name, kt := range t.keys {
		if kt.ended(now) {
			t.publish(name, kt, now)
		}
	}
	t.arm(now)
}

// ended reports whether one of the key's windows has ended by now, or not
// begun: the clock was set back.
func (kt *keyTally) ended(now time.Time) bool {
	for _, mt := range kt.models {
		for _, w := range mt.windows {
			if now.Before(w.start) || !now.Before(w.start.Add(w.length)) {
				return true
			}
		}
	}
	return false
}

// roll starts the span of the window that now is in, if the current one
// has ended, or not begun: a wall clock set back starts the span it is
// set into, counted whole only from now. It reports whether the clock
// went back.
func (w *window) roll(now time.Time) (back bool) {
	back = now.Before(w.start)
	if back || !now.Before(w.start.Add(w.length)) {
		w.start, w.count = align(now, w.length), 0
	}
	if now.Before(w.since) {
		w.since = now
	}
	return back
}

// align returns the start of the span of length that t is in: the last
// multiple of length since the Unix epoch.
func align(t time.Time, length time.Duration) time.Time {
	ns, l := t.UnixNano(), int64(length)
	start := ns - ns%l
	if ns%l < 0 {
		start -= l
	}
	return time.Unix(0, start).UTC()
}

// Describe implements prometheus.Collector.
func (t *Tally) Describe(ch chan<- *prometheus.Desc) { ch <- usageDesc }

// Collect implements prometheus.Collector. It takes the figures under the
// lock and sends them after, so that a slow gatherer never holds up the
// proxy's counting.
func (t *Tally) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	var metrics []prometheus.Metric
	for name, kt := range t.keys {
		for model, mt := range kt.models {
			for _, resource := range config.LimitResources {
				metrics = append(metrics, prometheus.MustNewConstMetric(usageDesc, prometheus.CounterValue, mt.spent.of(resource), name, kt.provider, model, resource))
			}
		}
	}
	t.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}
