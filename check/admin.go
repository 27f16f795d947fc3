package check

import (
	"maps"
	"slices"
	"strings"

	"github.com/ratelimit-exporter/ratelimit_exporter/adminpoll"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// SourceAdminAPI marks a window that a provider's admin API gave, where a
// window without a source is what the probe's response said.
const SourceAdminAPI = "admin_api"

// ResultNotProbed is the result of a model that no key probes, shown for
// the limits an admin API gives it.
const ResultNotProbed = "not_probed"

// AdminSource is how reading one admin source's rate limits went.
type AdminSource struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	OK       bool   `json:"ok"` // every project or workspace its keys name was read
	// Read and Failed are the projects or workspaces read and not read
	// ("" is an Anthropic organization's limits).
	Read   []string `json:"read"`
	Failed []Failed `json:"failed,omitempty"`
}

// Failed is a project or workspace whose limits were not read, and why.
type Failed struct {
	Scope string `json:"scope"`
	Error string `json:"error"` // never holds the admin key
}

// addAdmin adds what the admin sources read: their windows beside the
// probes' (a model no key probes gets a target of its own), and how each
// source went. The report is OK only if every source read every scope.
func (r *Report) addAdmin(cfg *config.Config, reads []adminpoll.Read) {
	for _, read := range reads {
		src := AdminSource{Name: read.Admin, Provider: read.Provider, OK: len(read.Failed) == 0, Read: []string{}}
		scopes := map[string]bool{}
		for i := range cfg.Keys {
			if k := &cfg.Keys[i]; k.Admin == read.Admin {
				scopes[k.Scope()] = true
			}
		}
		for _, scope := range slices.Sorted(maps.Keys(scopes)) {
			if err, failed := read.Failed[scope]; failed {
				src.Failed = append(src.Failed, Failed{Scope: scope, Error: err.Error()})
			} else {
				src.Read = append(src.Read, scope)
			}
		}
		r.Admin = append(r.Admin, src)
		r.OK = r.OK && src.OK
		for key, byModel := range read.Keys {
			for model, windows := range byModel {
				r.addAdminWindows(key, read.Provider, model, windows)
			}
		}
	}
	slices.SortStableFunc(r.Targets, compareTargets)
}

// addAdminWindows adds an admin API's windows to the key's model, each
// after the probe's window of the same resource and window, if any.
func (r *Report) addAdminWindows(key, provider, model string, windows []ratelimit.Window) {
	i := slices.IndexFunc(r.Targets, func(t Target) bool { return t.Key == key && t.Model == model })
	if i < 0 {
		r.Targets = append(r.Targets, Target{Key: key, Provider: provider, Model: model, OK: true, Result: ResultNotProbed, Windows: []Window{}})
		i = len(r.Targets) - 1
	}
	t := &r.Targets[i]
	li := ratelimit.KindIndex[ratelimit.Limit]
	for _, w := range windows {
		limit := w.Values[li]
		t.Windows = append(t.Windows, Window{Resource: w.Resource, Window: w.Window, Limit: &limit, Source: SourceAdminAPI})
	}
	slices.SortStableFunc(t.Windows, func(a, b Window) int {
		if c := strings.Compare(a.Resource, b.Resource); c != 0 {
			return c
		}
		return strings.Compare(a.Window, b.Window)
	})
}

// scopeName names a project or workspace in the table.
func scopeName(scope string) string {
	if scope == "" {
		return "the organization"
	}
	return scope
}
