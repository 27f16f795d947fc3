// Package collector turns probe results into Prometheus metrics.
package collector

import (
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/gzipjoin"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Collector holds the latest observation of every target and exposes it,
// both as a prometheus.Collector and as exposition text held compressed,
// so that a scrape mostly copies bytes (AppendBody).
//
// It is an unchecked collector: a key's own labels differ between keys, so
// there is no fixed set of descriptors to describe.
type Collector struct {
	mu      sync.RWMutex
	targets map[config.TargetID]*state
	order   []config.TargetID
	// stale says that some target's values changed since its block was
	// rendered: the next scrape renders it, as probes and traffic may
	// bring many readings between two scrapes, and a scrape needs only
	// the last.
	stale bool
	// blocks hold the targets' text, compressed, blockTargets targets of
	// c.order at a time; relayout says that c.order changed since they
	// were laid out.
	blocks   []*block
	relayout bool
	// update lets one scrape at a time render and compress blocks; it
	// guards the render buffer.
	update  sync.Mutex
	scratch []byte
	// keys are the configured keys, by name: Observe adds a model they do
	// not list, within each key's own budget.
	keys map[string]*configuredKey
	// strangers counts the targets of keys known only by their
	// fingerprint; Apply forgets them.
	strangers int
	// proxied: the config has a proxy, so every target shows its 429s.
	proxied bool
	dropped *prometheus.CounterVec
	// split: WriteText leaves the probe gauges to WriteTargetText, which
	// writes them alone (SplitProbeGauges).
	split atomic.Bool
}

// configuredKey is what Observe needs of a configured key.
type configuredKey struct {
	provider    string
	descs       *descs
	labelValues []string // the key's own labels, as a target's labelValues[3:]
	unlisted    int      // models Observe added
	// configured is what each configured source said of the key's
	// models, kept over Apply while the key keeps its provider.
	configured [numConfigured]configuredSet
	added      int // models only a configured source names
}

// configuredSet is what a configured source said of a key's models.
type configuredSet struct {
	byModel map[string][]ratelimit.Window
	at      time.Time
}

var _ prometheus.Collector = (*Collector)(nil)

// state is what is known about one target.
type state struct {
	descs       *descs
	labelValues []string // key, provider, model, then the key's labels in name order

	probed      bool
	success     bool
	duration    time.Duration
	statusCode  int
	outcome     prober.Outcome
	failure     string    // why the last probe failed: its error and the provider's code
	probedAt    time.Time // when the last probe ended
	lastSuccess time.Time
	observedAt  time.Time
	readBy      Source             // what read the windows at observedAt
	served      bool               // the last reading was Served: no window was empty
	windows     []ratelimit.Window // the last observation, by window
	interval    time.Duration

	observations [numSources]float64
	probes       []float64 // by prober.Outcomes index; those with a reason or a cause are in reasons
	reasons      []reason  // sorted by outcome, cause, code
	tokens       float64
	headerErrors float64
	// proxyRefused counts the refusals the applications got through the
	// proxy, by cause; shown when the config has a proxy, or once counted.
	proxyRefused [numCauses]float64
	// retryAfter is the wait the provider last asked for, at retryAsked.
	retryAfter time.Duration
	retryAsked time.Time
	// unprobed: a target the config does not name, known from the proxy
	// or a configured source; it shows no probe figures, as it is never
	// probed.
	unprobed  bool
	showProxy bool

	// configured holds what the sources other than headers say of the
	// target's windows, by source.
	configured [numConfigured]configuredWindows
	// merged are the windows of every source, one per resource and
	// window, when a configured source says anything; else windows alone.
	merged []view

	stale bool // the values changed since the target's block was rendered
}

// Source says where a reading of rate-limit values came from.
type Source int

// The sources, in the order metrics show them.
const (
	SourceProbe Source = iota // the exporter's own probe
	SourceProxy               // an application's request through the proxy
	numSources
)

var sourceNames = [numSources]string{SourceProbe: "probe", SourceProxy: "proxy"}

// ConfiguredSource is a source of a window's figures other than a
// response's headers.
type ConfiguredSource int

// The configured sources, in the order that ratelimit_limit prefers them
// where the headers give no limit.
const (
	SourceAdminAPI ConfiguredSource = iota // a provider's admin API
	SourceConfig                           // a limit the config declares, with the proxy's count
	numConfigured
)

var configuredNames = [numConfigured]string{SourceAdminAPI: "admin_api", SourceConfig: "config"}

// configuredWindows is what one configured source said of a target's
// windows, at a time: the reset of each is counted from it.
type configuredWindows struct {
	windows []ratelimit.Window // sorted by resource and window
	at      time.Time
}

// view is a window as the window families show it: the headers' figures,
// with the limit and the reset a configured source gives where the
// headers give none, and what each configured source says.
type view struct {
	w             ratelimit.Window
	fromHeaders   bool    // the headers gave the window; else a configured source alone
	resetAt       float64 // Unix seconds, when Has[Reset]
	configured    [numConfigured]float64
	hasConfigured [numConfigured]bool
	estimate      float64 // remaining, as SourceConfig counts it
	hasEstimate   bool
}

// reason counts the probes of one outcome that gave one cause and error code.
type reason struct {
	outcome int // index in prober.Outcomes
	cause   ratelimit.Cause
	code    string
	count   float64
}

func compareReasons(a, b reason) int {
	if c := a.outcome - b.outcome; c != 0 {
		return c
	}
	if c := strings.Compare(string(a.cause), string(b.cause)); c != 0 {
		return c
	}
	return strings.Compare(a.code, b.code)
}

// maxReasons bounds the reason label values of one target: past it, a new
// code counts with reason "" under its cause, so that an upstream inventing
// codes cannot create series without end. Causes are few, and kept: an
// alert on quota_exhausted must not miss one for a flood of codes.
const maxReasons = 16

// causeIndex is the index of each cause in proxyRefused; 0 is none.
var causeIndex = func() map[ratelimit.Cause]int {
	m := map[ratelimit.Cause]int{"": 0}
	for i, c := range ratelimit.Causes {
		m[c] = i + 1
	}
	return m
}()

const numCauses = len(ratelimit.Causes) + 1 // none, then ratelimit.Causes

var outcomeIndex = func() map[prober.Outcome]int {
	m := make(map[prober.Outcome]int, len(prober.Outcomes))
	for i, o := range prober.Outcomes {
		m[o] = i
	}
	return m
}()

// Why Observe drops a reading, the reason label of
// ratelimit_readings_dropped_total.
const (
	// DropKeyNotConfigured: a reading under the name of a key that the
	// running config does not have, such as one a reload removed while
	// the request was in flight.
	DropKeyNotConfigured = "key_not_configured"
	// DropUnlistedModels: a configured key's models that the config does
	// not list are at maxUnlistedModels.
	DropUnlistedModels = "unlisted_models_budget"
	// DropFingerprints: targets of unknown keys are at maxStrangerTargets.
	DropFingerprints = "fingerprints_budget"
	// DropConfiguredModels: the models of a key that only a configured
	// source names are at maxConfiguredModels.
	DropConfiguredModels = "configured_models_budget"
)

// New returns an empty collector; Apply gives it targets.
func New() *Collector {
	c := &Collector{
		targets: map[config.TargetID]*state{},
		keys:    map[string]*configuredKey{},
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_readings_dropped_total",
			Help: "Readings from the proxy or a configured source that were not recorded, by reason: " + DropKeyNotConfigured + " (a key the running config does not have), " +
				DropUnlistedModels + " (a configured key's unlisted models are at their budget), " + DropFingerprints + " (unknown keys' targets are at their budget), " +
				DropConfiguredModels + " (models only an admin API or the config's limits name are at their budget).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{DropKeyNotConfigured, DropUnlistedModels, DropFingerprints, DropConfiguredModels} {
		c.dropped.WithLabelValues(reason)
	}
	return c
}

// Collectors returns the collector's own metrics, to register:
// ratelimit_readings_dropped_total.
func (c *Collector) Collectors() []prometheus.Collector { return []prometheus.Collector{c.dropped} }

// Apply makes cfg's targets the set that is reported. Targets that stay
// keep their values and counters; targets that left the config are
// forgotten, and so are those Observe added.
func (c *Collector) Apply(cfg *config.Config) { c.apply(cfg.Targets(), cfg.Proxy != nil) }

// apply makes targets the set that is reported; proxied says whether the
// config has a proxy.
func (c *Collector) apply(targets []config.Target, proxied bool) {
	descsByLabels := map[string]*descs{}
	next := make(map[config.TargetID]*state, len(targets))
	order := make([]config.TargetID, 0, len(targets))
	keys := map[string]*configuredKey{}

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
		id := t.ID()
		s := c.targets[id]
		if s == nil || s.labelValues[1] != t.Key.Provider {
			// New, or the same name at another provider: nothing of
			// the other API's carries over.
			s = &state{probes: make([]float64, len(prober.Outcomes))}
		}
		s.descs, s.labelValues, s.showProxy = d, values, proxied
		next[id] = s
		order = append(order, id)
		if keys[t.Key.Name] == nil {
			k := &configuredKey{provider: t.Key.Provider, descs: d, labelValues: values[3:]}
			if before := c.keys[t.Key.Name]; before != nil && before.provider == k.provider {
				k.configured = before.configured
			}
			keys[t.Key.Name] = k
		}
	}
	old := c.targets
	c.targets, c.order, c.keys, c.strangers, c.proxied = next, order, keys, 0, proxied
	for name, k := range keys {
		for src := range numConfigured {
			if set := k.configured[src]; set.byModel != nil {
				c.setConfiguredLocked(ConfiguredSource(src), name, k, set, old)
			}
		}
	}
	for _, id := range c.order {
		c.targets[id].stale = true
	}
	c.stale, c.relayout = true, true
}

// Record stores the result of a probe of the target id.
func (c *Collector) Record(id config.TargetID, r *prober.Result) {
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
	s.outcome, s.probedAt, s.failure = r.Outcome, r.Time, ""
	if !s.success {
		s.failure = r.Failure()
	}
	s.read(SourceProbe, &r.Reading)
	s.countProbe(r)
	s.tokens += r.Tokens
	s.stale, c.stale = true, true
}

// Budgets of the targets the proxy adds on its own, apart so that
// strangers cannot crowd out a configured key's models.
const (
	// maxUnlistedModels bounds the models of one configured key that the
	// config does not list.
	maxUnlistedModels = 100
	// maxStrangerTargets bounds the targets, key and model, of keys known
	// only by their fingerprint.
	maxStrangerTargets = 1000
)

// Observe stores what an application's response through the proxy said of
// the target id, a reading at no cost: the rate-limit values and when they
// were read, not a probe. A target the config does not name is added,
// within its budget, and forgotten at the next Apply: a model a configured
// key does not list, with the key's labels, or a key the proxy knows only
// by its fingerprint (config.FingerprintPrefix). A reading under the name
// of a key that is not configured is dropped: the key left the config
// while the request was in flight.
func (c *Collector) Observe(id config.TargetID, provider string, r *ratelimit.Reading) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.targets[id]
	if s == nil {
		if s = c.addTarget(id, provider); s == nil {
			return
		}
	}
	if r.Cause != "" {
		s.proxyRefused[causeIndex[r.Cause]]++
	}
	s.read(SourceProxy, r)
	s.stale, c.stale = true, true
}

// addTarget adds a target for a reading from the proxy, if its budget
// allows, or counts why not.
func (c *Collector) addTarget(id config.TargetID, provider string) *state {
	s := &state{probes: make([]float64, len(prober.Outcomes)), unprobed: true, showProxy: true}
	switch k := c.keys[id.Key]; {
	case k != nil && k.provider == provider:
		if k.unlisted >= maxUnlistedModels {
			c.dropped.WithLabelValues(DropUnlistedModels).Inc()
			return nil
		}
		k.unlisted++
		s.descs = k.descs
		s.labelValues = append([]string{id.Key, provider, id.Model}, k.labelValues...)
	case strings.HasPrefix(id.Key, config.FingerprintPrefix):
		if c.strangers >= maxStrangerTargets {
			c.dropped.WithLabelValues(DropFingerprints).Inc()
			return nil
		}
		c.strangers++
		s.descs = strangerDescs
		s.labelValues = []string{id.Key, provider, id.Model}
	default:
		c.dropped.WithLabelValues(DropKeyNotConfigured).Inc()
		return nil
	}
	c.targets[id] = s
	c.order = append(c.order, id)
	c.relayout = true
	return s
}

// maxConfiguredModels bounds the models of one key that only a configured
// source names: an admin API lists every model a project may call, some
// hundreds.
const maxConfiguredModels = 1000

// SetConfigured makes byModel what source says of the windows of key's
// models, read at at, in place of what it said before: per model, windows
// with a limit and, from SourceConfig, the estimate of what is left
// (Remaining) and the seconds from at to the window's end (Reset). A model
// the config does not list becomes a target that shows its limits, within
// maxConfiguredModels; a key the config does not have is ignored. What a
// source said is kept over Apply while the key keeps its provider.
func (c *Collector) SetConfigured(source ConfiguredSource, key string, byModel map[string][]ratelimit.Window, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.keys[key]
	if k == nil {
		return
	}
	sorted := make(map[string][]ratelimit.Window, len(byModel))
	for model, windows := range byModel {
		sorted[model] = slices.SortedFunc(slices.Values(windows), compareWindows)
	}
	set := configuredSet{byModel: sorted, at: at}
	c.setConfiguredLocked(source, key, k, set, c.targets)
	c.stale = true
}

// setConfiguredLocked puts set in place of what source said of key's
// models, taking targets it adds from known, if there, so that Apply keeps
// their counters.
func (c *Collector) setConfiguredLocked(source ConfiguredSource, key string, k *configuredKey, set configuredSet, known map[config.TargetID]*state) {
	for model := range k.configured[source].byModel {
		if _, still := set.byModel[model]; still {
			continue
		}
		id := config.TargetID{Key: key, Model: model}
		if s := c.targets[id]; s != nil {
			s.configured[source] = configuredWindows{}
			s.remerge()
			s.stale = true
			c.forgetIfEmpty(id, s, k)
		}
	}
	k.configured[source] = set
	for _, model := range slices.Sorted(maps.Keys(set.byModel)) {
		id := config.TargetID{Key: key, Model: model}
		s := c.targets[id]
		if s == nil {
			if k.added >= maxConfiguredModels {
				c.dropped.WithLabelValues(DropConfiguredModels).Inc()
				continue
			}
			if s = known[id]; s == nil || !s.unprobed || s.labelValues[1] != k.provider {
				s = &state{probes: make([]float64, len(prober.Outcomes)), unprobed: true}
			}
			s.descs, s.showProxy = k.descs, c.proxied
			s.labelValues = append([]string{key, k.provider, model}, k.labelValues...)
			k.added++
			c.targets[id] = s
			c.order = append(c.order, id)
			c.relayout = true
		}
		s.configured[source] = configuredWindows{windows: set.byModel[model], at: set.at}
		s.remerge()
		s.stale = true
	}
}

// forgetIfEmpty removes the target id if only configured sources made it
// and none says anything of it now.
func (c *Collector) forgetIfEmpty(id config.TargetID, s *state, k *configuredKey) {
	if !s.unprobed || s.observations[SourceProxy] > 0 {
		return
	}
	for _, cw := range s.configured {
		if cw.windows != nil {
			return
		}
	}
	delete(c.targets, id)
	c.order = slices.DeleteFunc(c.order, func(o config.TargetID) bool { return o == id })
	c.relayout = true
	k.added--
}

func compareWindows(a, b ratelimit.Window) int {
	if c := strings.Compare(a.Resource, b.Resource); c != 0 {
		return c
	}
	return strings.Compare(a.Window, b.Window)
}

// remerge makes merged anew from windows and configured: call it after
// either changes.
func (s *state) remerge() {
	some := false
	for _, cw := range s.configured {
		some = some || len(cw.windows) > 0
	}
	if !some {
		s.merged = nil
		return
	}
	limit, remaining, reset := ratelimit.KindIndex[ratelimit.Limit], ratelimit.KindIndex[ratelimit.Remaining], ratelimit.KindIndex[ratelimit.Reset]
	merged := s.merged[:0]
	for _, w := range s.windows {
		v := view{w: w, fromHeaders: true}
		if w.Has[reset] {
			v.resetAt = unixSeconds(s.observedAt) + w.Values[reset]
		}
		merged = append(merged, v)
	}
	s.nameUnnamedWindows(merged)
	for src, cw := range s.configured {
		for _, w := range cw.windows {
			i := slices.IndexFunc(merged, func(v view) bool { return v.w.Resource == w.Resource && v.w.Window == w.Window })
			if i < 0 {
				merged = append(merged, view{w: ratelimit.Window{Resource: w.Resource, Window: w.Window}})
				i = len(merged) - 1
			}
			v := &merged[i]
			if w.Has[limit] {
				v.configured[src], v.hasConfigured[src] = w.Values[limit], true
				if !v.w.Has[limit] {
					v.w.Values[limit], v.w.Has[limit] = w.Values[limit], true
				}
			}
			if ConfiguredSource(src) == SourceConfig && w.Has[remaining] {
				v.estimate, v.hasEstimate = w.Values[remaining], true
			}
			if w.Has[reset] && !v.w.Has[reset] {
				v.w.Values[reset], v.w.Has[reset] = w.Values[reset], true
				v.resetAt = unixSeconds(cw.at) + w.Values[reset]
			}
		}
	}
	slices.SortStableFunc(merged, func(a, b view) int { return compareWindows(a.w, b.w) })
	s.merged = merged
}

// nameUnnamedWindows gives a window the headers do not name (OpenAI's
// requests and tokens are per minute or per day, by the account's tier)
// the name of the one configured window of its resource whose limit is the
// headers' limit: the headers and the admin API then agree on one series.
// Where none or more than one matches, the window stays unnamed, beside the
// configured ones.
func (s *state) nameUnnamedWindows(merged []view) {
	limit := ratelimit.KindIndex[ratelimit.Limit]
	for i := range merged {
		v := &merged[i].w
		if v.Window != "" || !v.Has[limit] {
			continue
		}
		name, matches := "", 0
		for _, cw := range s.configured {
			for _, w := range cw.windows {
				if w.Resource == v.Resource && w.Window != "" && w.Has[limit] && w.Values[limit] == v.Values[limit] && w.Window != name {
					name, matches = w.Window, matches+1
				}
			}
		}
		taken := slices.ContainsFunc(merged, func(o view) bool { return o.w.Resource == v.Resource && o.w.Window == name })
		if matches == 1 && !taken {
			v.Window = name
		}
	}
}

// windowCount is the number of windows each shows.
func (s *state) windowCount() int {
	if s.merged != nil {
		return len(s.merged)
	}
	return len(s.windows)
}

// window returns the i-th window each shows, when it is full again (Unix
// seconds, if it has a reset), and its view, nil without configured sources.
func (s *state) window(i int) (*ratelimit.Window, float64, *view) {
	if s.merged != nil {
		v := &s.merged[i]
		return &v.w, v.resetAt, v
	}
	w := &s.windows[i]
	return w, unixSeconds(s.observedAt) + w.Values[ratelimit.KindIndex[ratelimit.Reset]], nil
}

// strangerDescs are the descriptors of keys known by their fingerprint,
// which have no labels of their own.
var strangerDescs = newDescs(nil)

// read takes the rate-limit values of r, if it has any, and the wait it
// asks for.
func (s *state) read(source Source, r *ratelimit.Reading) {
	s.headerErrors += float64(r.Dropped)
	if r.RetryAfter > 0 && !r.Time.Before(s.retryAsked) {
		s.retryAfter, s.retryAsked = r.RetryAfter, r.Time
	}
	if !r.Success() {
		return
	}
	s.observations[source]++
	if r.Time.Before(s.observedAt) {
		return // a newer reading is in already
	}
	s.lastSuccess = r.Time
	s.observedAt = r.Time
	s.readBy = source
	s.served = len(r.Observations) == 0
	defer s.remerge()
	if len(r.Observations) == 0 { // Served: no window is empty now
		s.windows = limitsOnly(s.windows)
		return
	}
	obs := r.Observations
	if !slices.IsSortedFunc(obs, ratelimit.Compare) {
		// Windows groups sorted observations; unsorted, one window
		// would show twice, and a scrape with a duplicate series fails.
		obs = slices.SortedFunc(slices.Values(obs), ratelimit.Compare)
	}
	var left int
	s.windows, left = ratelimit.Windows(obs, s.windows[:0])
	s.headerErrors += float64(left)
}

// limitsOnly keeps of windows their limits, which a served request does
// not change, and forgets the rest, which it proves out of date.
func limitsOnly(windows []ratelimit.Window) []ratelimit.Window {
	i := ratelimit.KindIndex[ratelimit.Limit]
	kept := windows[:0]
	for _, w := range windows {
		if w.Has[i] {
			limit := ratelimit.Window{Resource: w.Resource, Window: w.Window}
			limit.Values[i], limit.Has[i] = w.Values[i], true
			kept = append(kept, limit)
		}
	}
	return kept
}

// countProbe counts r by outcome and, for a refused one, by cause and reason.
func (s *state) countProbe(r *prober.Result) {
	outcome := outcomeIndex[r.Outcome]
	code := r.ErrorCode
	if r.Outcome != prober.RateLimited && r.Cause == "" {
		code = "" // as before: reasons are kept for refusals only
	}
	if code != "" && !s.countReason(reason{outcome: outcome, cause: r.Cause, code: code}, s.codes() < maxReasons) {
		code = "" // past the bound: counted under its cause alone
	}
	if code != "" {
		return
	}
	if r.Cause != "" {
		s.countReason(reason{outcome: outcome, cause: r.Cause}, true)
		return
	}
	s.probes[outcome]++
}

// countReason counts a probe of key's outcome, cause and code if it is
// counted already, or if add, and reports whether it counted it.
func (s *state) countReason(key reason, add bool) bool {
	i, found := slices.BinarySearchFunc(s.reasons, key, compareReasons)
	switch {
	case found:
		s.reasons[i].count++
	case add:
		key.count = 1
		s.reasons = slices.Insert(s.reasons, i, key)
	default:
		return false
	}
	return true
}

// codes counts the reasons that have a code.
func (s *state) codes() int {
	n := 0
	for _, r := range s.reasons {
		if r.code != "" {
			n++
		}
	}
	return n
}

// SetInterval records the time between probes of the target id.
func (c *Collector) SetInterval(id config.TargetID, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.targets[id]; s != nil && s.interval != d {
		s.interval = d
		s.stale, c.stale = true, true
	}
}

// Describe implements prometheus.Collector. It sends nothing: see Collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	values := make([]string, 0, 16)
	for _, id := range c.order {
		s := c.targets[id]
		for f := range numFamilies {
			s.each(f, values, func(labelValues []string, v float64) {
				ch <- prometheus.MustNewConstMetric(s.descs.desc[f], f.valueType(), v, labelValues...)
			})
		}
	}
}

// WriteText writes every target's metrics in the text exposition format
// (AppendBody). Before it writes, it calls sized, if not nil, with the number of
// bytes it will write.
func (c *Collector) WriteText(w io.Writer, sized func(int)) error {
	return writeBody(w, c.AppendBody(nil), sized)
}

// WriteTargetText is WriteText for the target id alone (AppendTargetBody); it
// writes nothing if id is not a target.
func (c *Collector) WriteTargetText(w io.Writer, id config.TargetID, sized func(int)) error {
	return writeBody(w, c.AppendTargetBody(nil, id), sized)
}

func writeBody(w io.Writer, b gzipjoin.Body, sized func(int)) error {
	if sized != nil {
		sized(b.Len())
	}
	return b.WriteText(w)
}

// probeGauge marks the families of a target's latest probe.
var probeGauge = [numFamilies]bool{famSuccess: true, famDuration: true, famStatusCode: true, famLastSuccess: true, famInterval: true}

// SplitProbeGauges makes AppendBody leave out the gauges of each target's
// latest probe (ratelimit_probe_success, _duration_seconds, _status_code,
// _last_success_timestamp_seconds, _interval_seconds) and
// AppendTargetBody give them alone. Replicas that share the probing, each probe sent by
// whichever replica a /probe request reached, so serve each family from
// one place: the probe's gauges from the /probe that sent it, and from
// each replica's /metrics the readings and the counters, which only add
// up per replica.
func (c *Collector) SplitProbeGauges() { c.split.Store(true) }

// kindOf is the index into ratelimit.Window.Values of each window family.
var kindOf = [numFamilies]int{
	famLimit:          ratelimit.KindIndex[ratelimit.Limit],
	famRemaining:      ratelimit.KindIndex[ratelimit.Remaining],
	famReset:          ratelimit.KindIndex[ratelimit.Reset],
	famResetTimestamp: ratelimit.KindIndex[ratelimit.Reset],
	famUtilization:    ratelimit.KindIndex[ratelimit.Utilization],
	famWindowStatus:   ratelimit.KindIndex[ratelimit.Status],
	famBalance:        ratelimit.KindIndex[ratelimit.Balance],
}

// each calls fn with every sample of family f: its label values, in the
// order of the family's label names, and its value. fn must not keep
// labelValues. values is room for the label values, of capacity 16,
// which the caller keeps from one call to the next: fn could keep what
// it is given, so room of each's own would be allocated at every call.
func (s *state) each(f family, values []string, fn func(labelValues []string, v float64)) {
	lv := s.labelValues
	switch f {
	case famWindowStatus:
		k := kindOf[f]
		for i := range s.windowCount() {
			w, _, _ := s.window(i)
			if !w.Has[k] {
				continue
			}
			withStatus := append(append(append(values[:0], lv[:3]...), w.Resource, w.Window, ""), lv[3:]...)
			for i, status := range ratelimit.Statuses {
				withStatus[5] = status
				fn(withStatus, boolToFloat(w.Values[k] == float64(i)))
			}
		}
	case famBalance:
		k := kindOf[f]
		var last string
		for i := range s.windowCount() {
			w, _, _ := s.window(i)
			// A balance has a currency, no window: one series each, the
			// first window's, as two would make a duplicate series.
			if w.Has[k] && (i == 0 || w.Resource != last) {
				last = w.Resource
				fn(append(append(append(values[:0], lv[:3]...), w.Resource), lv[3:]...), w.Values[k])
			}
		}
	case famConfiguredLimit:
		for i := range s.windowCount() {
			w, _, v := s.window(i)
			if v == nil {
				continue
			}
			withSource := append(append(append(values[:0], lv[:3]...), w.Resource, w.Window, ""), lv[3:]...)
			for src, name := range configuredNames {
				if v.hasConfigured[src] {
					withSource[5] = name
					fn(withSource, v.configured[src])
				}
			}
		}
	case famRemainingEstimate:
		for i := range s.windowCount() {
			w, _, v := s.window(i)
			if v != nil && v.hasEstimate {
				fn(append(append(append(values[:0], lv[:3]...), w.Resource, w.Window), lv[3:]...), v.estimate)
			}
		}
	case famRetryAfter:
		if s.retryAfter > 0 {
			fn(lv[:3], s.retryAfter.Seconds())
		}
	case famRetryAfterTimestamp:
		if s.retryAfter > 0 {
			fn(lv[:3], unixSeconds(s.retryAsked)+s.retryAfter.Seconds())
		}
	case famReadingTimestamp:
		for i := range s.windowCount() {
			w, _, v := s.window(i)
			if !w.Has[kindOf[famLimit]] && !w.Has[kindOf[famRemaining]] && !w.Has[kindOf[famReset]] &&
				!w.Has[kindOf[famUtilization]] && !w.Has[kindOf[famWindowStatus]] {
				continue // a balance: its series have a currency, not a window
			}
			if v != nil && !v.fromHeaders {
				// Only the config or an admin API gives it: no response
				// was read. A declared window's estimate is a count,
				// which replicas add up rather than take the freshest of.
				continue
			}
			fn(append(append(append(values[:0], lv[:3]...), w.Resource, w.Window), lv[3:]...), unixSeconds(s.observedAt))
		}
	case famLimit, famRemaining, famReset, famResetTimestamp, famUtilization:
		k := kindOf[f]
		for i := range s.windowCount() {
			w, resetAt, _ := s.window(i)
			if !w.Has[k] {
				continue
			}
			withWindow := append(append(append(values[:0], lv[:3]...), w.Resource, w.Window), lv[3:]...)
			v := w.Values[k]
			if f == famResetTimestamp {
				v = resetAt
			}
			fn(withWindow, v)
		}
	case famSuccess:
		if s.probed {
			fn(lv, boolToFloat(s.success))
		}
	case famDuration:
		if s.probed {
			fn(lv, s.duration.Seconds())
		}
	case famStatusCode:
		if s.probed {
			fn(lv, float64(s.statusCode))
		}
	case famLastSuccess:
		if !s.lastSuccess.IsZero() {
			fn(lv, unixSeconds(s.lastSuccess))
		}
	case famInterval:
		if s.interval > 0 {
			fn(lv[:3], s.interval.Seconds())
		}
	case famProbes:
		if s.unprobed {
			return
		}
		withResult := append(append(append(values[:0], lv[:3]...), "", "", ""), lv[3:]...)
		next := 0
		for i, o := range prober.Outcomes {
			withResult[3], withResult[4], withResult[5] = string(o), "", ""
			fn(withResult, s.probes[i])
			for ; next < len(s.reasons) && s.reasons[next].outcome == i; next++ {
				r := &s.reasons[next]
				withResult[4], withResult[5] = r.code, string(r.cause)
				fn(withResult, r.count)
			}
		}
	case famObservations:
		withSource := append(values[:0], lv[0], lv[1], lv[2], "")
		for i, name := range sourceNames {
			if s.unprobed && Source(i) == SourceProbe {
				continue
			}
			withSource[3] = name
			fn(withSource, s.observations[i])
		}
	case famTokens:
		if !s.unprobed {
			fn(lv, s.tokens)
		}
	case famProxyRateLimited:
		// The series without a cause stays, at 0, so that a sum over
		// causes never loses a series.
		withCause := append(values[:0], lv[0], lv[1], lv[2], "")
		counted := false
		for i, n := range s.proxyRefused[1:] {
			if n > 0 {
				if !counted {
					fn(withCause, 0)
					counted = true
				}
				withCause[3] = string(ratelimit.Causes[i])
				fn(withCause, n)
			}
		}
		if s.showProxy && !counted {
			fn(withCause, 0)
		}
	case famHeaderErrors:
		fn(lv[:3], s.headerErrors)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
