// Package snapshot is the JSON view of what is known of each key's rate
// limits, schema version 1: the exporter serves it at /api/v1/limits, and
// `check --output=json` writes it. Within a version, fields are only
// added, never renamed, removed or given another meaning.
package snapshot

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Version is the schema version of Report.
const Version = 1

// Where a window's figures came from: the Source of a Window or a Target.
const (
	SourceProbe    = "probe"     // the exporter's own probe
	SourceProxy    = "proxy"     // an application's response through the proxy
	SourceAdminAPI = "admin_api" // a provider's admin API
	SourceConfig   = "config"    // a limit the config declares, counted from traffic
)

// ResultNotProbed is the result of a target the exporter does not probe:
// one the proxy or a configured source made known.
const ResultNotProbed = "not_probed"

// ResultPending is the result of a target the exporter probes that it has
// not probed yet.
const ResultPending = "pending"

// Report is what is known of every key and model at a time.
type Report struct {
	SchemaVersion int       `json:"schema_version"`
	GeneratedAt   time.Time `json:"generated_at"`
	// OK: every target the exporter probes read rate limits at its last
	// probe (one not probed yet is not OK), and every admin source read
	// every project or workspace (see Healthy).
	OK      bool          `json:"ok"`
	Targets []Target      `json:"targets"` // sorted by key, then model
	Admin   []AdminSource `json:"admin,omitempty"`
}

// Target is one key and model.
type Target struct {
	Key      string            `json:"key"` // the key's name in the config, never the key
	Provider string            `json:"provider"`
	Model    string            `json:"model"` // "" for a key probed once for all its models
	Labels   map[string]string `json:"labels,omitempty"`
	// OK: the last probe read rate limits, or, for a target not probed,
	// something read them.
	OK bool `json:"ok"`
	// Result is the last probe's outcome (prober.Outcome), or
	// ResultNotProbed.
	Result     string `json:"result"`
	StatusCode int    `json:"status_code"`
	Error      string `json:"error,omitempty"` // why not OK; never holds a key
	// ReadAt is when the headers were last read, and Source what read
	// them (probe or proxy).
	ReadAt *time.Time `json:"read_at,omitempty"`
	Source string     `json:"source,omitempty"`
	// Served: the provider sends values only when a window runs out, and
	// its last answer said that none was.
	Served   bool      `json:"served,omitempty"`
	Windows  []Window  `json:"windows"`
	Balances []Balance `json:"balances,omitempty"`
}

// Window is one resource and window of a target. A figure no source gave
// is absent (nil, or "" for the status).
type Window struct {
	Resource    string   `json:"resource"`
	Window      string   `json:"window"` // "" where the provider names none
	Remaining   *float64 `json:"remaining,omitempty"`
	Limit       *float64 `json:"limit,omitempty"`
	Utilization *float64 `json:"utilization,omitempty"` // the share used, from 0 to 1
	Status      string   `json:"status,omitempty"`      // allowed, allowed_warning or rejected
	// ResetSeconds is how long after ReadAt the window is full again;
	// ResetsAt is that time, which ratelimit_reset_timestamp_seconds
	// shows.
	ResetSeconds *float64   `json:"reset_seconds,omitempty"`
	ResetsAt     *time.Time `json:"resets_at,omitempty"`
	// RemainingEstimate is the declared limit less what the proxy counted
	// (source config), where the config declares the window.
	RemainingEstimate *float64 `json:"remaining_estimate,omitempty"`
	// Source is what gave the window's figures: probe or proxy (its
	// headers), else admin_api or config.
	Source string     `json:"source"`
	ReadAt *time.Time `json:"read_at,omitempty"`
	// Current: the figures still describe the window. False once its
	// reset has passed (it has refilled since), or when the target's
	// last probe failed after they were read.
	Current bool `json:"current"`
}

// Balance is money left on the account, in one currency.
type Balance struct {
	Currency string  `json:"currency"`
	Amount   float64 `json:"amount"`
}

// AdminSource is how reading one admin source's rate limits went.
type AdminSource struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// OK: the last read of every project or workspace its keys name
	// worked. A source not read yet is not OK, and has no ReadAt.
	OK bool `json:"ok"`
	// Read and Failed are the projects or workspaces whose last read
	// worked and failed ("" is an Anthropic organization's limits).
	Read   []string `json:"read"`
	Failed []Failed `json:"failed,omitempty"`
	// ReadAt is when the source's rate limits were last read, whether
	// every project or workspace worked or not.
	ReadAt *time.Time `json:"read_at,omitempty"`
}

// Failed is a project or workspace whose limits were not read, and why.
type Failed struct {
	Scope string `json:"scope"`
	Error string `json:"error"` // never holds the admin key
}

// Healthy reports whether every target the exporter probes read rate
// limits at its last probe and every admin source read every project or
// workspace: the report's OK. A target not probed is left out, as no probe
// of it can fail; one not probed yet is not healthy.
func (r *Report) Healthy() bool {
	for i := range r.Targets {
		if t := &r.Targets[i]; !t.OK && t.Result != ResultNotProbed {
			return false
		}
	}
	for i := range r.Admin {
		if !r.Admin[i].OK {
			return false
		}
	}
	return true
}

// AddWindows adds windows, read at readAt by source, to t: a balance to
// its balances, every other window to its windows. Each window's reset is
// counted from readAt; a window is current while that reset is after now.
func (t *Target) AddWindows(windows []ratelimit.Window, readAt time.Time, source string, now time.Time) {
	for i := range windows {
		t.AddWindow(&windows[i], readAt, source, now)
	}
}

// AddWindow is AddWindows of one window. It returns the window added, nil
// for a balance; the pointer holds until the next window is added.
func (t *Target) AddWindow(w *ratelimit.Window, readAt time.Time, source string, now time.Time) *Window {
	if k := ratelimit.KindIndex[ratelimit.Balance]; w.Has[k] {
		// One amount per currency, the first, as ratelimit_balance shows
		// it: a balance has no window.
		if !slices.ContainsFunc(t.Balances, func(b Balance) bool { return b.Currency == w.Resource }) {
			t.Balances = append(t.Balances, Balance{Currency: w.Resource, Amount: w.Values[k]})
		}
		return nil
	}
	// A window's figures and times in one allocation: a report of
	// thousands of targets has tens of thousands of windows.
	f := &figures{values: w.Values}
	figure := func(kind ratelimit.Kind) *float64 {
		if k := ratelimit.KindIndex[kind]; w.Has[k] {
			return &f.values[k]
		}
		return nil
	}
	out := Window{Resource: w.Resource, Window: w.Window, Source: source, Current: true}
	if f.readAt = readAt.UTC(); !readAt.IsZero() {
		out.ReadAt = &f.readAt
	}
	out.Limit, out.Remaining, out.ResetSeconds = figure(ratelimit.Limit), figure(ratelimit.Remaining), figure(ratelimit.Reset)
	out.Utilization = figure(ratelimit.Utilization)
	if status := figure(ratelimit.Status); status != nil && *status >= 0 && int(*status) < len(ratelimit.Statuses) {
		out.Status = ratelimit.Statuses[int(*status)]
	}
	if out.ResetSeconds != nil && !readAt.IsZero() {
		f.resetsAt = f.readAt.Add(time.Duration(*out.ResetSeconds * float64(time.Second)))
		out.ResetsAt = &f.resetsAt
		out.Current = f.resetsAt.After(now)
	}
	t.Windows = append(t.Windows, out)
	return &t.Windows[len(t.Windows)-1]
}

// figures are what a Window's pointers point to.
type figures struct {
	values           [len(ratelimit.Kinds)]float64
	readAt, resetsAt time.Time
}

// Left returns the share of the window that is left, from 0 to 1: the
// remaining of the limit, else one less the utilization; ok is false when
// neither is known.
func (w *Window) Left() (share float64, ok bool) {
	remaining := w.Remaining
	if remaining == nil {
		remaining = w.RemainingEstimate
	}
	switch {
	case remaining != nil && w.Limit != nil && *w.Limit > 0:
		share = *remaining / *w.Limit
	case w.Utilization != nil:
		share = 1 - *w.Utilization
	default:
		return 0, false
	}
	return math.Min(math.Max(share, 0), 1), true
}

// Compare orders targets by key, then model.
func Compare(a, b Target) int {
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return strings.Compare(a.Model, b.Model)
}

// CompareWindows orders windows by resource, then window.
func CompareWindows(a, b Window) int {
	if c := strings.Compare(a.Resource, b.Resource); c != 0 {
		return c
	}
	return strings.Compare(a.Window, b.Window)
}
