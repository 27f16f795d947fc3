// Command ratelimit_exporter probes LLM API keys and exports their rate
// limits as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/ratelimit-exporter/ratelimit_exporter/collector"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/demo"
	"github.com/ratelimit-exporter/ratelimit_exporter/grafana"
	"github.com/ratelimit-exporter/ratelimit_exporter/logging"
	"github.com/ratelimit-exporter/ratelimit_exporter/prober"
	"github.com/ratelimit-exporter/ratelimit_exporter/scheduler"
	"github.com/ratelimit-exporter/ratelimit_exporter/server"
)

const name = "ratelimit_exporter"

func main() { os.Exit(run()) }

// defaultGCPercent replaces Go's GOGC=100 unless GOGC is set. Most of the
// heap is the rendered metrics, which live until the next probe; at 100,
// short-lived garbage grows the heap to twice that before a collection.
// Prometheus lowers its default for the same reason. BENCHMARKS.md has the figures.
const defaultGCPercent = 50

func run() int {
	var (
		app            = kingpin.CommandLine
		configFile     = app.Flag("config.file", "Path to the configuration file.").Default(name + ".yml").String()
		configFileSet  bool
		configCheck    = app.Flag("config.check", "Load and validate the configuration, print the result and exit.").Bool()
		metricsPath    = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		timeoutOffset  = app.Flag("web.timeout-offset", "Taken off Prometheus's scrape timeout to leave time to answer (scrape mode).").Default("0.5s").Duration()
		maxRequests    = app.Flag("web.max-requests", "Most scrapes served at once; more are answered 503. 0 means no limit.").Default("40").Int()
		demoMode       = app.Flag("demo", "Probe a built-in simulator of the Cerebras API with demo keys instead of a real API.").Bool()
		webFlags       = kingpinflag.AddFlags(app, ":10429")
		logConfig      = logging.AddFlags(app)
		shutdownPeriod = 5 * time.Second
	)
	app.GetFlag("config.file").IsSetByUser(&configFileSet)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	kingpin.Parse()
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}

	logger, slogger := logging.New(os.Stderr, logConfig)

	load := config.Source{Path: *configFile, Explicit: configFileSet}.Load
	if *demoMode {
		d, err := demo.Start()
		if err != nil {
			level.Error(logger).Log("msg", "Error starting the demo", "err", err)
			return 1
		}
		defer d.Stop()
		level.Info(logger).Log("msg", "Demo mode: probing the built-in simulator; the config file is not read", "simulator", d.URL)
		load = d.Load
	}

	if *configCheck {
		return checkConfig(load)
	}

	level.Info(logger).Log("msg", "Starting "+name, "version", version.Info())
	level.Info(logger).Log("msg", "Build context", "build_context", version.BuildContext())

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		versioncollector.NewCollector(name),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The rate-limit metrics are rendered when probes end and written after
	// the registry's, so they are not registered.
	observations := collector.New()
	httpProber := prober.New(userAgent())
	probes := scheduler.New(httpProber, observations, logger)
	defer probes.Stop()

	reloader, err := config.NewReloader(load, func(cfg *config.Config) error {
		if err := httpProber.Apply(cfg); err != nil {
			return err // before anything else changes
		}
		observations.Apply(cfg.Targets())
		probes.Apply(cfg)
		level.Info(logger).Log("msg", "Loaded config", "keys", len(cfg.Keys), "targets", len(cfg.Targets()), "mode", cfg.Probe.Mode)
		return nil
	}, registry)
	if err != nil {
		level.Error(logger).Log("msg", "Error loading config", "err", err)
		return 1
	}

	handler, err := server.Handler(server.Options{
		MetricsPath:   *metricsPath,
		Registry:      registry,
		Observations:  observations,
		MaxRequests:   *maxRequests,
		Refresh:       probes.Refresh,
		TimeoutOffset: *timeoutOffset,
		Reload:        reloader.Reload,
		Dashboard:     grafana.Dashboard,
		Ready:         func() bool { return reloader.Config() != nil },
		Logger:        logger,
	})
	if err != nil {
		level.Error(logger).Log("msg", "Error building the landing page", "err", err)
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go handleSignals(logger, reloader, srv, shutdownPeriod)

	if err := web.ListenAndServe(srv, webFlags, slogger); !errors.Is(err, http.ErrServerClosed) {
		level.Error(logger).Log("msg", "Error serving", "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "Shut down")
	return 0
}

// handleSignals reloads on SIGHUP and shuts the server down on SIGTERM or SIGINT.
func handleSignals(logger log.Logger, reloader *config.Reloader, srv *http.Server, grace time.Duration) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	for sig := range signals {
		if sig == syscall.SIGHUP {
			if err := reloader.Reload(); err != nil {
				level.Error(logger).Log("msg", "Error reloading config; the running config is kept", "err", err)
			}
			continue
		}
		level.Info(logger).Log("msg", "Shutting down", "signal", sig)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		if err := srv.Shutdown(ctx); err != nil {
			level.Warn(logger).Log("msg", "Connections did not close in time", "err", err)
		}
		cancel()
		return
	}
}

// checkConfig implements --config.check.
func checkConfig(load func() (*config.Config, error)) int {
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Config is invalid:\n%v\n", err)
		return 1
	}
	fmt.Printf("Config is valid: %d keys, %d key and model pairs to probe, %s mode",
		len(cfg.Keys), len(cfg.Targets()), cfg.Probe.Mode)
	if cfg.Probe.Mode == config.ModeInterval {
		fmt.Printf(", every %s", cfg.Probe.Interval)
	}
	fmt.Println()
	for _, k := range cfg.Keys {
		fmt.Printf("  %s: %s %s, models %v\n", k.Name, k.Provider, k.BaseURL, k.Models)
	}
	return 0
}

func userAgent() string {
	v := version.Version
	if v == "" {
		v = "dev"
	}
	return name + "/" + v
}
