// Package history keeps the recent probes and proxy readings, and the last
// failed probe of each target, for the landing page and /probe?debug=true.
// An entry holds what its probe already had; its log is rendered, with the
// key hidden, only when someone reads it.
package history

import (
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
)

// DefaultLimit is how many entries --history.limit keeps by default.
const DefaultLimit = 100

// Source says where an entry's reading came from.
type Source string

// The sources of an entry.
const (
	Probe Source = "probe"
	Proxy Source = "proxy"
)

// Entry is one probe, or one reading of the proxy's traffic. It is not
// changed once added.
type Entry struct {
	ID       uint64 // set by Add; 1 for the first entry
	Source   Source
	Target   config.TargetID
	Provider string
	Started  time.Time // when the probe was sent, or the proxy's response read
	// Result is the probe's; for a proxy reading, only its Reading is set.
	Result   prober.Result
	Schedule Schedule
}

// Schedule is what a probe's result made of its target's schedule.
type Schedule struct {
	Mode         string
	Timeout      time.Duration
	HoldUntil    time.Time // the provider asked for no probe before then
	Failures     int
	BackoffUntil time.Time
	Interval     time.Duration
	StretchedBy  string // the window that stretched the interval
	Next         time.Time
	// Stale: the key's settings changed while the probe was out.
	Stale bool
	// Removed: a reload removed the target while the probe was out.
	Removed bool
}

// Outcome is the entry's result.
func (e *Entry) Outcome() prober.Outcome {
	if e.Source == Proxy {
		return prober.ReadingResult(&e.Result.Reading)
	}
	return e.Result.Outcome
}

// Failed reports whether the entry read no limits.
func (e *Entry) Failed() bool { return e.Outcome() != prober.Success }

// WriteLog writes the entry's log as logfmt lines: what was sent and
// received with the key hidden, what was read and dropped, the outcome, and
// what it made of the schedule.
func (e *Entry) WriteLog(w io.Writer) {
	logger := log.NewLogfmtLogger(w)
	if e.Source == Proxy {
		logger.Log("ts", e.Started.Format(time.RFC3339Nano), "msg", "Reading of proxied traffic", "key", e.Target.Key, "model", e.Target.Model, "provider", e.Provider)
		prober.WriteReading(logger, &e.Result.Reading)
		return
	}
	s := e.Schedule
	logger.Log("ts", e.Started.Format(time.RFC3339Nano), "msg", "Beginning probe", "key", e.Target.Key, "model", e.Target.Model, "provider", e.Provider, "timeout", s.Timeout)
	logger = log.With(logger, "ts", e.Result.Time.Format(time.RFC3339Nano))
	e.Result.WriteTrace(logger)
	if s.Removed {
		logger.Log("msg", "A reload removed the target while the probe was out: nothing more is scheduled")
		return
	}
	if s.Stale {
		logger.Log("msg", "The key's settings changed while the probe was out: its result moves no timing, and the key is probed again as if new")
		return
	}
	if s.HoldUntil.After(e.Result.Time) {
		logger.Log("msg", "Holding off probes as the provider asked", "until", s.HoldUntil.Format(time.RFC3339Nano))
	}
	if s.BackoffUntil.After(e.Result.Time) {
		logger.Log("msg", "Backing off after failures", "failures", s.Failures, "until", s.BackoffUntil.Format(time.RFC3339Nano))
	}
	if s.StretchedBy != "" {
		logger.Log("msg", "Probe interval stretched to keep probes within max_quota_share", "interval", s.Interval, "window", s.StretchedBy)
	}
	when := "the next scrape from then on"
	if s.Mode == string(config.ModeInterval) {
		when = "then"
	}
	logger.Log("msg", "Next probe due", "mode", s.Mode, "at", s.Next.Format(time.RFC3339Nano), "sent", when)
}

// History keeps the last entries, limit of them, and apart from them the
// last failed probe of each configured target. The zero value keeps
// nothing; use New.
type History struct {
	mu       sync.Mutex
	limit    uint64
	ring     []*Entry // entry n is at (n-1) % limit; grows to limit as entries come
	last     uint64   // the last ID given
	failures map[config.TargetID]*Entry
	keys     map[string]bool // the configured keys
}

// New returns a history of the last limit entries; 0 keeps none, though
// the last failure of each target is kept still.
func New(limit int) *History {
	// The ring grows as entries come: a limit far beyond what is ever
	// kept costs nothing up front.
	return &History{limit: uint64(max(limit, 0)), failures: map[config.TargetID]*Entry{}}
}

// Add gives e its ID and keeps it. It takes a short lock and copies
// nothing: the proxy calls it for every reading. A proxy reading of a key
// no longer configured, which ended after the reload that removed it, is
// not kept, as the collector does not keep it.
func (h *History) Add(e *Entry) {
	h.mu.Lock()
	if e.Source == Proxy && !h.keys[e.Target.Key] && !strings.HasPrefix(e.Target.Key, config.FingerprintPrefix) {
		h.mu.Unlock()
		return
	}
	h.last++
	e.ID = h.last
	if h.limit > 0 {
		if i := (e.ID - 1) % h.limit; i < uint64(len(h.ring)) {
			h.ring[i] = e
		} else {
			h.ring = append(h.ring, e) // IDs come in order: i is len(h.ring)
		}
	}
	if e.Source == Probe && e.Failed() {
		if _, configured := h.failures[e.Target]; configured {
			h.failures[e.Target] = e
		}
	}
	h.mu.Unlock()
}

// Recent returns the kept entries, newest first.
func (h *History) Recent() []*Entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Entry, 0, len(h.ring))
	for i := range uint64(len(h.ring)) {
		if e := h.ring[(h.last-1-i)%h.limit]; e != nil {
			out = append(out, e)
		}
	}
	return out
}

// Get returns entry id while it is kept: in the recent entries, or as
// its target's last failure.
func (h *History) Get(id uint64) (*Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id > 0 && id <= h.last && h.last-id < uint64(len(h.ring)) {
		if e := h.ring[(id-1)%h.limit]; e != nil {
			return e, true
		}
	}
	for _, e := range h.failures {
		if e != nil && e.ID == id {
			return e, true
		}
	}
	return nil, false
}

// Latest returns the newest kept probe of target: its last failure or its
// newest recent entry.
func (h *History) Latest(target config.TargetID) (*Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	latest := h.failures[target]
	for i := range uint64(len(h.ring)) {
		e := h.ring[(h.last-1-i)%h.limit]
		if e != nil && e.Source == Probe && e.Target == target {
			if latest == nil || e.ID > latest.ID {
				latest = e
			}
			break
		}
	}
	return latest, latest != nil
}

// Failures returns the last failed probe of each target that has one.
func (h *History) Failures() []*Entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Entry
	for _, e := range h.failures {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// Configure sets the targets whose last failure is kept: the entries of
// targets no longer configured, and the proxy's readings of keys no longer
// configured, are dropped.
func (h *History) Configure(targets []config.TargetID) {
	keys := map[string]bool{}
	failures := make(map[config.TargetID]*Entry, len(targets))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range targets {
		failures[id] = h.failures[id]
		keys[id.Key] = true
	}
	h.failures, h.keys = failures, keys
	for i, e := range h.ring {
		if e == nil {
			continue
		}
		if _, configured := failures[e.Target]; !keys[e.Target.Key] || e.Source == Probe && !configured {
			h.ring[i] = nil
		}
	}
}

// Limit is how many recent entries h keeps.
func (h *History) Limit() int { return int(h.limit) }
