package main

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/proxy"
	"github.com/ratelimit-exporter/ratelimit_exporter/scheduler"
)

// passive runs the proxy of the config's proxy block, if any: started by
// the first config that has one, given every later config, stopped at
// shutdown.
type passive struct {
	probes   *scheduler.Scheduler
	registry prometheus.Registerer
	grace    time.Duration
	logger   log.Logger

	mu     sync.Mutex
	proxy  *proxy.Proxy
	cancel context.CancelFunc
	done   chan struct{}
}

// Apply starts the proxy, binding its port (a busy one is an error), or
// gives it cfg; a proxy already running refuses a config without one.
func (p *passive) Apply(cfg *config.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proxy != nil {
		return p.proxy.Apply(cfg)
	}
	if cfg.Proxy == nil {
		return nil
	}
	l, err := proxy.Listen(cfg.Proxy)
	if err != nil {
		return err
	}
	px, err := proxy.New(cfg, p, p.logger)
	if err != nil {
		l.Close()
		return err
	}
	p.registry.MustRegister(px.Collectors()...)
	// Proxied requests allocate per request, far more than the rendered
	// metrics the lowered GC percent is for; at 50 the collections cost
	// the proxy a third of its p99 and a tenth of its throughput
	// (BENCHMARKS.md, Proxy).
	setGCPercent(100)
	ctx, cancel := context.WithCancel(context.Background())
	p.proxy, p.cancel, p.done = px, cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		if err := proxy.Serve(ctx, l, cfg.Proxy, px, p.grace, p.logger); err != nil {
			level.Debug(p.logger).Log("msg", "The proxy stopped", "err", err) // Serve has said why
		}
	}()
	level.Info(p.logger).Log("msg", "Proxy listening", "address", l.Addr(), "routes", len(cfg.Proxy.Routes))
	return nil
}

// Observe implements proxy.Recorder: a reading from an application's
// response counts as a probe's reading for its key and model.
func (p *passive) Observe(o proxy.Observation) {
	outcome := prober.HTTPError
	switch {
	case o.StatusCode >= 200 && o.StatusCode < 300:
		outcome = prober.Success
	case o.StatusCode == 429:
		outcome = prober.RateLimited
	}
	p.probes.Observe(config.TargetID{Key: o.Key, Model: o.Model}, o.Provider, &prober.Result{
		Time: o.Time, StatusCode: o.StatusCode, Outcome: outcome, Observations: o.Observations, InvalidHeaders: o.Dropped,
	})
}

// Stop lets the proxy's requests in flight finish within the grace period.
func (p *passive) Stop() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
