package check

import (
	"maps"
	"slices"

	"github.com/ratelimit-exporter/ratelimit_exporter/adminpoll"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// addAdmin adds what the admin sources read: their windows beside the
// probes' (a model no key probes gets a target of its own), and how each
// source went. The report is OK only if every source read every scope.
func addAdmin(r *snapshot.Report, cfg *config.Config, reads []adminpoll.Read) {
	for _, read := range reads {
		at := r.GeneratedAt
		src := snapshot.AdminSource{Name: read.Admin, Provider: read.Provider, OK: len(read.Failed) == 0, Read: []string{}, ReadAt: &at}
		scopes := map[string]bool{}
		for i := range cfg.Keys {
			if k := &cfg.Keys[i]; k.Admin == read.Admin {
				scopes[k.Scope()] = true
			}
		}
		for _, scope := range slices.Sorted(maps.Keys(scopes)) {
			if err, failed := read.Failed[scope]; failed {
				src.Failed = append(src.Failed, snapshot.Failed{Scope: scope, Error: err.Error()})
			} else {
				src.Read = append(src.Read, scope)
			}
		}
		r.Admin = append(r.Admin, src)
		for key, byModel := range read.Keys {
			for model, windows := range byModel {
				addAdminWindows(r, key, read.Provider, model, windows)
			}
		}
	}
	slices.SortStableFunc(r.Targets, snapshot.Compare)
	r.OK = r.Healthy()
}

// addAdminWindows adds an admin API's windows to the key's model, each
// after the probe's window of the same resource and window, if any.
func addAdminWindows(r *snapshot.Report, key, provider, model string, windows []ratelimit.Window) {
	i := slices.IndexFunc(r.Targets, func(t snapshot.Target) bool { return t.Key == key && t.Model == model })
	if i < 0 {
		r.Targets = append(r.Targets, snapshot.Target{Key: key, Provider: provider, Model: model, OK: true,
			Result: snapshot.ResultNotProbed, Windows: []snapshot.Window{}})
		i = len(r.Targets) - 1
	}
	t := &r.Targets[i]
	t.AddWindows(limitsOnly(windows), r.GeneratedAt, snapshot.SourceAdminAPI, r.GeneratedAt)
	slices.SortStableFunc(t.Windows, snapshot.CompareWindows)
}

// limitsOnly is windows with their limits alone: what an admin API says.
func limitsOnly(windows []ratelimit.Window) []ratelimit.Window {
	li := ratelimit.KindIndex[ratelimit.Limit]
	out := make([]ratelimit.Window, 0, len(windows))
	for _, w := range windows {
		limit := ratelimit.Window{Resource: w.Resource, Window: w.Window}
		limit.Values[li], limit.Has[li] = w.Values[li], true
		out = append(out, limit)
	}
	return out
}

// scopeName names a project or workspace in the table.
func scopeName(scope string) string {
	if scope == "" {
		return "the organization"
	}
	return scope
}
