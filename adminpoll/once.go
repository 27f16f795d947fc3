package adminpoll

import (
	"context"
	"sync"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
)

// Read is what one admin source's rate limits said, read once.
type Read struct {
	Admin, Provider string
	// Keys are the windows of the models of each key that names the
	// source, by key name and model, for the scopes read.
	Keys map[string]map[string][]ratelimit.Window
	// Failed are the errors of the projects or workspaces not read, by
	// project or workspace ("": an Anthropic organization's). They hold
	// no key.
	Failed map[string]error
}

// ReadOnce reads the rate limits of every admin source of cfg once, as the
// poller does: the sources side by side, each source's projects or
// workspaces one after the other. It fails only when an HTTP client cannot
// be built.
func ReadOnce(ctx context.Context, cfg *config.Config) ([]Read, error) {
	plan, err := newPlan(cfg, nil)
	if err != nil {
		return nil, err
	}
	reads := make([]Read, len(plan.sources))
	var wg sync.WaitGroup
	for i := range plan.sources {
		set := &plan.sources[i]
		r := &adminReader{provider: set.provider, baseURL: set.baseURL, key: set.key, client: set.client}
		wg.Go(func() {
			read := Read{Admin: set.name, Provider: set.provider, Keys: map[string]map[string][]ratelimit.Window{}, Failed: map[string]error{}}
			byScope := map[string]map[string][]ratelimit.Window{}
			for _, scope := range set.scopes {
				readCtx, cancel := context.WithTimeout(ctx, requestTimeout)
				res, err := r.limits(readCtx, scope)
				cancel()
				if err != nil {
					read.Failed[scope] = err
					continue
				}
				byScope[scope] = windowsByModel(res.Limits)
			}
			for key, use := range plan.keys {
				if byModel, ok := byScope[use.scope]; ok && use.admin == set.name {
					read.Keys[key] = byModel
				}
			}
			reads[i] = read
		})
	}
	wg.Wait()
	return reads, nil
}
