// Package collector turns probe results into Prometheus metrics.
package collector

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// ID names a target across config reloads.
type ID struct {
	Key   string
	Model string
}

// IDOf returns the ID of a target.
func IDOf(t config.Target) ID { return ID{Key: t.Key.Name, Model: t.Model} }

// Collector holds the latest observation of every target and exposes it,
// both as a prometheus.Collector and as exposition text rendered when a
// result arrives, so that a scrape only writes bytes (WriteText).
//
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
	interval     time.Duration

	probes       []float64 // by prober.Outcomes index
	tokens       float64
	headerErrors float64

	text [numFamilies][]byte // the target's samples of each family, as exposition text
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
		s.render()
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
	s.render()
}

// SetInterval records the time between probes of the target id.
func (c *Collector) SetInterval(id ID, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.targets[id]; s != nil && s.interval != d {
		s.interval = d
		s.render()
	}
}

// Describe implements prometheus.Collector. It sends nothing: see Collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, id := range c.order {
		c.targets[id].emit(func(_ family, m prometheus.Metric) { ch <- m })
	}
}

// WriteText writes every target's metrics in the text exposition format,
// from the text rendered when their results arrived.
func (c *Collector) WriteText(w io.Writer) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	bw := bufio.NewWriterSize(w, 64<<10)
	for f, fam := range families {
		started := false
		for _, id := range c.order {
			text := c.targets[id].text[f]
			if len(text) == 0 {
				continue
			}
			if !started {
				bw.WriteString("# HELP " + fam.name + " " + fam.help + "\n# TYPE " + fam.name + " " + strings.ToLower(fam.typ.String()) + "\n")
				started = true
			}
			bw.Write(text)
		}
	}
	return bw.Flush()
}

// render refreshes the target's exposition text. Rendering with the text
// encoder of prometheus/common keeps the format the one promhttp writes.
func (s *state) render() {
	var byFamily [numFamilies][]*dto.Metric
	s.emit(func(f family, m prometheus.Metric) {
		out := &dto.Metric{}
		if err := m.Write(out); err == nil {
			byFamily[f] = append(byFamily[f], out)
		}
	})
	var buf bytes.Buffer
	for f, metrics := range byFamily {
		s.text[f] = s.text[f][:0]
		if len(metrics) == 0 {
			continue
		}
		buf.Reset()
		fam := families[f]
		typ := fam.typ
		if _, err := expfmt.MetricFamilyToText(&buf, &dto.MetricFamily{Name: &fam.name, Help: &fam.help, Type: &typ, Metric: metrics}); err != nil {
			continue
		}
		// Keep the samples; WriteText writes HELP and TYPE once per family.
		text := buf.Bytes()
		for range 2 {
			text = text[bytes.IndexByte(text, '\n')+1:]
		}
		s.text[f] = append(s.text[f], text...)
	}
}

// emit passes each of the target's metrics, with its family, to send.
func (s *state) emit(send func(family, prometheus.Metric)) {
	d, lv := s.descs, s.labelValues
	gauge := func(f family, v float64, labels ...string) {
		send(f, prometheus.MustNewConstMetric(d[f], prometheus.GaugeValue, v, labels...))
	}
	counter := func(f family, v float64, labels ...string) {
		send(f, prometheus.MustNewConstMetric(d[f], prometheus.CounterValue, v, labels...))
	}

	withWindow := make([]string, 0, len(lv)+2)
	for _, o := range s.observations {
		withWindow = append(withWindow[:0], lv[:3]...)
		withWindow = append(withWindow, o.Resource, o.Window)
		withWindow = append(withWindow, lv[3:]...)
		switch o.Kind {
		case ratelimit.Limit:
			gauge(famLimit, o.Value, withWindow...)
		case ratelimit.Remaining:
			gauge(famRemaining, o.Value, withWindow...)
		case ratelimit.Reset:
			gauge(famReset, o.Value, withWindow...)
			gauge(famResetTimestamp, unixSeconds(s.observedAt)+o.Value, withWindow...)
		}
	}

	if s.probed {
		gauge(famSuccess, boolToFloat(s.success), lv...)
		gauge(famDuration, s.duration.Seconds(), lv...)
		gauge(famStatusCode, float64(s.statusCode), lv...)
	}
	if !s.lastSuccess.IsZero() {
		gauge(famLastSuccess, unixSeconds(s.lastSuccess), lv...)
	}
	if s.interval > 0 {
		gauge(famInterval, s.interval.Seconds(), lv[:3]...)
	}
	withResult := append(append(make([]string, 0, len(lv)+1), lv[:3]...), "")
	withResult = append(withResult, lv[3:]...)
	for i, o := range prober.Outcomes {
		withResult[3] = string(o)
		counter(famProbes, s.probes[i], withResult...)
	}
	counter(famTokens, s.tokens, lv...)
	counter(famHeaderErrors, s.headerErrors, lv[:3]...)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
