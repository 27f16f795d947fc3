package collector

import (
	"slices"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// Snapshot returns what is known of every target at now, sorted by key
// and model: the figures the window families show, with the time each
// was read and what read it.
func (c *Collector) Snapshot(now time.Time) []snapshot.Target {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]snapshot.Target, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.targets[id].snapshot(now))
	}
	slices.SortStableFunc(out, snapshot.Compare)
	return out
}

// snapshot is what is known of the target at now.
func (s *state) snapshot(now time.Time) snapshot.Target {
	lv := s.labelValues
	t := snapshot.Target{Key: lv[0], Provider: lv[1], Model: lv[2], Windows: make([]snapshot.Window, 0, s.windowCount())}
	if names := s.descs.names[famSuccess][3:]; len(names) > 0 {
		t.Labels = make(map[string]string, len(names))
		for i, name := range names {
			t.Labels[name] = lv[3+i]
		}
	}
	switch {
	case s.unprobed:
		t.Result = snapshot.ResultNotProbed
	case s.probed:
		t.Result, t.StatusCode, t.OK, t.Error = string(s.outcome), s.statusCode, s.success, s.failure
	default:
		t.Result = snapshot.ResultPending
	}
	if !s.observedAt.IsZero() {
		at := s.observedAt.UTC()
		t.ReadAt, t.Source = &at, sourceNames[s.readBy]
		t.Served = s.served
		if s.unprobed {
			t.OK = true
		}
	}
	// A probe that failed after the headers were read: what they said may
	// no longer hold.
	outdated := s.probed && !s.success && s.probedAt.After(s.observedAt)
	for i := range s.windowCount() {
		w, resetAt, v := s.window(i)
		source, readAt := s.windowSource(v)
		if v != nil && !v.fromHeaders && s.unprobed {
			t.OK = true
		}
		win := t.AddWindow(w, readAt, source, now)
		if win == nil {
			continue // a balance
		}
		if win.ResetsAt != nil {
			// The reset of a merged window may count from another
			// source's time: resetAt is the one the families show, and
			// reset_seconds then counts to it from the window's read_at.
			*win.ResetsAt = time.Unix(0, int64(resetAt*1e9)).UTC()
			win.Current = win.ResetsAt.After(now)
			if resetAt != unixSeconds(readAt)+*win.ResetSeconds {
				*win.ResetSeconds = resetAt - unixSeconds(readAt)
			}
		}
		if v != nil && v.hasEstimate {
			estimate := v.estimate
			win.RemainingEstimate = &estimate
		}
		if outdated && v == nil || outdated && v.fromHeaders {
			win.Current = false
		}
	}
	return t
}

// windowSource is what gave the figures of the window whose view is v (nil:
// the headers alone), and when. The count's estimate and reset change as
// traffic flows, an admin API's limit seldom: a window no header gives
// is the count's where it gives an estimate, else the first configured
// source's that gives a limit.
func (s *state) windowSource(v *view) (source string, readAt time.Time) {
	if v == nil || v.fromHeaders {
		return sourceNames[s.readBy], s.observedAt
	}
	src := SourceConfig
	if i := slices.Index(v.hasConfigured[:], true); !v.hasEstimate && i >= 0 {
		src = ConfiguredSource(i)
	}
	return configuredNames[src], s.configured[src].at
}
