// Package collector turns probe results into Prometheus metrics.
package collector

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

const namespace = "ratelimit"

// ID names a target across config reloads.
type ID struct {
	Key   string
	Model string
}

// IDOf returns the ID of a target.
func IDOf(t config.Target) ID { return ID{Key: t.Key.Name, Model: t.Model} }

// Collector holds the latest observation of every target and exposes it.
// It is an unchecked collector: a key's own labels differ between keys, so
// there is no fixed set of descriptors to describe.
type Collector struct {
	mu      sync.RWMutex
	targets map[ID]*state
	order   []ID
}

var _ prometheus.Collector = (*Collector)(nil)

// state is what is known about one target.
type state struct {
	descs       *descs
	labelValues []string // key, provider, model, then the key's labels in name order

	probed       bool
	success      bool
	duration     time.Duration
	statusCode   int
	lastSuccess  time.Time
	observedAt   time.Time
	observations []ratelimit.Observation

	probes       []float64 // by prober.Outcomes index
	tokens       float64
	headerErrors float64
}

var outcomeIndex = func() map[prober.Outcome]int {
	m := make(map[prober.Outcome]int, len(prober.Outcomes))
	for i, o := range prober.Outcomes {
		m[o] = i
	}
	return m
}()

// New returns an empty collector; Apply gives it targets.
func New() *Collector {
	return &Collector{targets: map[ID]*state{}}
}

// Apply makes targets the set that is reported. Targets that stay keep
// their values and counters; targets that left the config are forgotten.
func (c *Collector) Apply(targets []config.Target) {
	descsByLabels := map[string]*descs{}
	next := make(map[ID]*state, len(targets))
	order := make([]ID, 0, len(targets))

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range targets {
		names := t.Key.LabelNames()
		signature := strings.Join(names, "\xff")
		d, ok := descsByLabels[signature]
		if !ok {
			d = newDescs(names)
			descsByLabels[signature] = d
		}
		values := []string{t.Key.Name, t.Key.Provider, t.Model}
		for _, n := range names {
			values = append(values, t.Key.Labels[n])
		}
		id := IDOf(t)
		s := c.targets[id]
		if s == nil {
			s = &state{probes: make([]float64, len(prober.Outcomes))}
		}
		s.descs, s.labelValues = d, values
		next[id] = s
		order = append(order, id)
	}
	c.targets, c.order = next, order
}

// Record stores the result of a probe of the target id.
func (c *Collector) Record(id ID, r *prober.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.targets[id]
	if s == nil {
		return // the target left the config while it was probed
	}
	s.probed = true
	s.success = r.Success()
	s.duration = r.Duration
	s.statusCode = r.StatusCode
	if s.success {
		s.lastSuccess = r.Time
		s.observedAt = r.Time
		s.observations = r.Observations
	}
	s.probes[outcomeIndex[r.Outcome]]++
	s.tokens += r.Tokens
	s.headerErrors += float64(r.InvalidHeaders)
}

// Describe implements prometheus.Collector. It sends nothing: see Collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, id := range c.order {
		c.targets[id].collect(ch)
	}
}

func (s *state) collect(ch chan<- prometheus.Metric) {
	d, lv := s.descs, s.labelValues
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}

	withWindow := make([]string, 0, len(lv)+2)
	for _, o := range s.observations {
		withWindow = append(withWindow[:0], lv[:3]...)
		withWindow = append(withWindow, o.Resource, o.Window)
		withWindow = append(withWindow, lv[3:]...)
		switch o.Kind {
		case ratelimit.Limit:
			gauge(d.limit, o.Value, withWindow...)
		case ratelimit.Remaining:
			gauge(d.remaining, o.Value, withWindow...)
		case ratelimit.Reset:
			gauge(d.reset, o.Value, withWindow...)
			gauge(d.resetTimestamp, unixSeconds(s.observedAt)+o.Value, withWindow...)
		}
	}

	if s.probed {
		gauge(d.success, boolToFloat(s.success), lv...)
		gauge(d.duration, s.duration.Seconds(), lv...)
		gauge(d.statusCode, float64(s.statusCode), lv...)
	}
	if !s.lastSuccess.IsZero() {
		gauge(d.lastSuccess, unixSeconds(s.lastSuccess), lv...)
	}
	withResult := append(append(make([]string, 0, len(lv)+1), lv...), "")
	for i, o := range prober.Outcomes {
		withResult[len(lv)] = string(o)
		counter(d.probes, s.probes[i], withResult...)
	}
	counter(d.tokens, s.tokens, lv...)
	counter(d.headerErrors, s.headerErrors, lv[:3]...)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
