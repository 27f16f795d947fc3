// Package exporter puts the parts together: the store of readings, the
// prober, the scheduler, the proxy and the admin API sources, and applies a
// config to all of them at once or to none.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ratelimit-exporter/ratelimit_exporter/adminpoll"
	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/proxy"
	"github.com/ratelimit-exporter/ratelimit_exporter/ratelimit"
	"github.com/ratelimit-exporter/ratelimit_exporter/scheduler"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
	"github.com/ratelimit-exporter/ratelimit_exporter/tally"
)

// Options are what New needs.
type Options struct {
	UserAgent string
	// Registry takes the parts' own metrics.
	Registry prometheus.Registerer
	// Grace is how long the proxy's requests in flight may take to finish
	// when the proxy stops.
	Grace  time.Duration
	Logger log.Logger
	// Clock is the clock of the declared limits' windows; nil: the real one.
	Clock clockwork.Clock
	// HistoryLimit is how many recent probes and proxy readings are kept
	// for the landing page; 0 keeps none but each target's last failure.
	HistoryLimit int
	// ProbeOnRequestOnly: no probe but those /probe requests ask for, and
	// each family served from one place (collector.SplitProbeGauges), for
	// replicas that share the probing.
	ProbeOnRequestOnly bool
}

// Exporter is the running exporter. Create it with New, give it configs
// with Apply, and end it with Stop.
type Exporter struct {
	logger   log.Logger
	registry prometheus.Registerer
	grace    time.Duration

	readings  *collector.Collector
	prober    *prober.Prober
	scheduler *scheduler.Scheduler
	history   *history.History
	admin     *adminpoll.Poller
	tally     *tally.Tally
	targets   atomic.Pointer[[]config.Target]

	mu       sync.Mutex // serializes Apply and Stop
	proxy    *proxy.Proxy
	served   *servedProxy   // the proxy's listener; nil when none
	draining sync.WaitGroup // proxies whose listeners a reload closed
	stopped  bool
	closing  chan struct{} // closed by CloseKeepAlives
	closed   sync.Once
}

// servedProxy is the proxy served on one listener.
type servedProxy struct {
	address        string
	tls            *web.TLSConfig
	maxConnections int
	cancel         context.CancelFunc
	done           chan struct{}
}

// New returns an exporter with no config.
func New(o Options) *Exporter {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	e := &Exporter{logger: o.Logger, registry: o.Registry, grace: o.Grace, closing: make(chan struct{})}
	e.readings = collector.New()
	e.prober = prober.New(o.UserAgent)
	e.scheduler = scheduler.New(e.prober, e.readings, o.Logger)
	if o.ProbeOnRequestOnly {
		e.scheduler.ProbeOnRequestOnly()
		e.readings.SplitProbeGauges()
	}
	e.history = history.New(o.HistoryLimit)
	e.scheduler.KeepHistory(e.history)
	e.admin = adminpoll.New(e.readings, o.Logger)
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	e.tally = tally.New(o.Clock, declared{e.readings})
	if o.Registry != nil {
		o.Registry.MustRegister(e.readings.Collectors()...)
		o.Registry.MustRegister(e.admin)
		o.Registry.MustRegister(e.tally)
	}
	setGCPercent(false)
	empty := []config.Target{}
	e.targets.Store(&empty)
	return e
}

// Apply makes cfg the running config of every part, or of none: it first
// prepares what can fail (HTTP clients, the admin sources' included, the
// keys the proxy reads, the proxy's listener), then commits, which cannot
// fail. A refused config changes nothing.
func (e *Exporter) Apply(cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("the exporter is stopping")
	}
	clients, err := e.prober.Prepare(cfg)
	if err != nil {
		return err
	}
	adminPlan, err := e.admin.Prepare(cfg)
	if err != nil {
		return err
	}
	commitProxy, err := e.prepareProxy(cfg)
	if err != nil {
		return err
	}

	targets := cfg.Targets()
	e.prober.Use(clients)
	e.readings.Apply(cfg)
	e.admin.Use(adminPlan) // after the readings know the keys it gives limits to
	e.tally.Apply(cfg)     // after the readings, which take what it publishes
	e.scheduler.Apply(cfg)
	commitProxy()
	e.targets.Store(&targets)
	level.Info(e.logger).Log("msg", "Loaded config", "keys", len(cfg.Keys), "targets", len(targets), "mode", cfg.Probe.Mode, "admin_sources", len(cfg.Admin))
	return nil
}

// prepareProxy builds the proxy of cfg and binds its listener when it
// needs a new one, and returns what puts them to work.
func (e *Exporter) prepareProxy(cfg *config.Config) (commit func(), err error) {
	pc := cfg.Proxy
	if pc == nil {
		return e.stopProxyLocked, nil
	}
	px := e.proxy
	var routes *proxy.Routes
	if px == nil {
		if px, err = proxy.New(cfg, e, e.logger); err != nil {
			return nil, err
		}
	} else if routes, err = px.Prepare(cfg); err != nil {
		return nil, err
	}
	if e.served != nil && e.served.address == pc.ListenAddress {
		// The port is the running listener's own and cannot be bound
		// twice: listener settings that changed could not be applied, and
		// a restart would meet them, so the reload is refused.
		if !reflect.DeepEqual(e.served.tls, pc.TLSServerConfig) {
			return nil, errors.New("proxy tls_server_config: a change on the running listen_address takes a restart (or a new listen_address)")
		}
		if e.served.maxConnections != pc.MaxConnections {
			return nil, errors.New("proxy max_connections: a change on the running listen_address takes a restart (or a new listen_address)")
		}
		if err := proxy.CheckTLS(pc); err != nil {
			return nil, err
		}
		return func() { px.Use(routes) }, nil
	}
	l, err := proxy.Listen(pc)
	if err != nil {
		if e.served != nil {
			// Often the running listener itself, under another spelling.
			return nil, fmt.Errorf("%w (the running proxy listens on %s)", err, e.served.address)
		}
		return nil, err
	}
	return func() {
		if routes != nil {
			px.Use(routes)
		}
		if e.proxy == nil {
			e.proxy = px
			if e.registry != nil {
				e.registry.MustRegister(px.Collectors()...)
			}
		}
		e.stopProxyLocked()
		ctx, cancel := context.WithCancel(context.Background())
		served := &servedProxy{address: pc.ListenAddress, tls: pc.TLSServerConfig, maxConnections: pc.MaxConnections,
			cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(served.done)
			if err := proxy.Serve(ctx, e.closing, l, pc, px, e.grace, e.logger); err != nil {
				level.Debug(e.logger).Log("msg", "The proxy stopped", "err", err) // Serve has said why
			}
		}()
		e.served = served
		setGCPercent(true)
		level.Info(e.logger).Log("msg", "Proxy listening", "address", l.Addr(), "routes", len(pc.Routes))
	}, nil
}

// stopProxyLocked closes the proxy's listener, if any, and lets its
// requests in flight finish within the grace period, without waiting for
// them. e.mu must be held.
func (e *Exporter) stopProxyLocked() {
	if e.served == nil {
		return
	}
	served := e.served
	e.served = nil
	served.cancel()
	e.draining.Add(1)
	go func() {
		defer e.draining.Done()
		<-served.done
	}()
	setGCPercent(false)
	level.Info(e.logger).Log("msg", "Proxy stopped listening; its requests in flight finish", "address", served.address)
}

// Observe implements proxy.Recorder: a reading from an application's
// response counts as a probe's reading for its key and model.
func (e *Exporter) Observe(o proxy.Observation) {
	e.scheduler.Observe(config.TargetID{Key: o.Key, Model: o.Model}, o.Provider, &o.Reading)
}

// Spend implements proxy.Recorder: what a response spent counts against
// its key's declared limits.
func (e *Exporter) Spend(u proxy.Usage) { e.tally.Count(u.Key, u.Model, u.Spent) }

// Targets lists the running config's keys and models.
func (e *Exporter) Targets() []config.Target { return *e.targets.Load() }

// Readings is the store of readings that /metrics and /probe write.
func (e *Exporter) Readings() *collector.Collector { return e.readings }

// Limits is what is known of every key and model at now, as
// /api/v1/limits and /status show it.
func (e *Exporter) Limits(now time.Time) snapshot.Report {
	report := snapshot.Report{SchemaVersion: snapshot.Version, GeneratedAt: now.UTC(), Targets: e.readings.Snapshot(now), Admin: e.admin.Sources()}
	report.OK = report.Healthy()
	return report
}

// Refresh, in scrape mode, probes the targets that are due before a scrape.
func (e *Exporter) Refresh(ctx context.Context) { e.scheduler.Refresh(ctx) }

// RefreshTarget is Refresh for one target; false if it is not configured.
func (e *Exporter) RefreshTarget(ctx context.Context, id config.TargetID) bool {
	return e.scheduler.RefreshTarget(ctx, id)
}

// Debug returns the record of id's latest probe, for /probe?debug=true:
// in scrape mode, one it sends if id is due.
func (e *Exporter) Debug(ctx context.Context, id config.TargetID) (*history.Entry, bool) {
	return e.scheduler.Debug(ctx, id)
}

// History is the recent probes and proxy readings, and each target's last failure.
func (e *Exporter) History() *history.History { return e.history }

// CloseKeepAlives makes the proxy, which goes on serving, ask each client
// to close its connection after the answer and close the idle ones, now
// and after any reload: clients then reconnect, through a load balancer,
// to a replica that is not shutting down.
func (e *Exporter) CloseKeepAlives() { e.closed.Do(func() { close(e.closing) }) }

// StopProxy closes the proxy's listener and returns once its requests in
// flight have finished, within the grace period. Later configs start no
// proxy, nor anything else.
func (e *Exporter) StopProxy() {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		e.stopProxyLocked()
	}
	e.mu.Unlock()
	e.draining.Wait()
}

// Stop stops the proxy as StopProxy does, then cancels the probes and the
// admin sources' reads.
func (e *Exporter) Stop() {
	e.StopProxy()
	e.scheduler.Stop()
	e.admin.Stop()
	e.tally.Stop()
}

// declared publishes the tally's windows to the readings, as the config's.
type declared struct{ readings *collector.Collector }

func (d declared) Publish(key string, byModel map[string][]ratelimit.Window, at time.Time) {
	d.readings.SetConfigured(collector.SourceConfig, key, byModel, at)
}

// defaultGCPercent replaces Go's GOGC=100 unless GOGC is set. Most of the
// heap is the rendered metrics, which live until the next probe; at 100,
// short-lived garbage grows the heap to twice that before a collection.
// Prometheus lowers its default for the same reason. Proxied requests
// allocate per request, far more than the rendered metrics: at 50 the
// collections cost the proxy a third of its p99 and a tenth of its
// throughput, so Go's 100 is kept while the proxy serves (BENCHMARKS.md).
const defaultGCPercent = 50

// setGCPercent sets the GC percent for a proxy that runs or not, unless
// GOGC is set.
func setGCPercent(proxyRuns bool) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	if proxyRuns {
		debug.SetGCPercent(100)
	} else {
		debug.SetGCPercent(defaultGCPercent)
	}
}
