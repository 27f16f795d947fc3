// Command ratelimit_exporter probes LLM API keys and exports their rate
// limits as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/ratelimit-exporter/ratelimit_exporter/check"
	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/demo"
	"github.com/ratelimit-exporter/ratelimit_exporter/exporter"
	"github.com/ratelimit-exporter/ratelimit_exporter/grafana"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/drain"
	"github.com/ratelimit-exporter/ratelimit_exporter/logging"
	"github.com/ratelimit-exporter/ratelimit_exporter/otlp"
	"github.com/ratelimit-exporter/ratelimit_exporter/server"
)

const name = "ratelimit_exporter"

func main() { os.Exit(run()) }

func run() int {
	var (
		app           = kingpin.CommandLine
		configFile    = app.Flag("config.file", "Path to the configuration file.").Default(name + ".yml").String()
		configFileSet bool
		configCheck   = app.Flag("config.check", "Load and validate the configuration, print the result and exit.").Bool()
		metricsPath   = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		timeoutOffset = app.Flag("web.timeout-offset", "Taken off Prometheus's scrape timeout to leave time to answer (scrape mode).").Default("0.5s").Duration()
		maxRequests   = app.Flag("web.max-requests", "Most scrapes (/metrics, /probe) refreshing or gathering their metrics at once, and most in flight to one client address, counting answers still being written; more are answered 503. 0 means no limit.").Default("40").Int()
		writeTimeout  = app.Flag("web.write-timeout", "Most time to write one response to a client; a client that reads slower is cut off.").Default("30s").Duration()
		gracePeriod   = app.Flag("web.shutdown-grace-period", "On SIGTERM or SIGINT, how long scrapes in flight may take to finish.").Default("5s").Duration()
		shutdownDelay = app.Flag("web.shutdown-delay", "On SIGTERM or SIGINT, how long to go on serving and accepting, /-/ready answering 503, before the grace period starts: time for a load balancer or a Kubernetes Service to stop sending new requests.").Default("0s").Duration()
		externalURL   = app.Flag("web.external-url", "The URL under which Prometheus reaches the exporter, given as the targets' address in /sd. Default: the host the /sd request was sent to.").URL()
		onRequestOnly = app.Flag("probe.on-request-only", "Send no probe of this replica's own accord: none on the interval-mode timer, none for a /metrics scrape. In scrape mode a /probe request still probes its target and answers with that probe's gauges alone, which /metrics then leaves out. For replicas behind one Service or load balancer that Prometheus scrapes /probe through, so that each probe is sent once whatever the number of replicas; in interval mode, turns probing off on this replica (README \"Replicas\").").Bool()
		historyLimit  = app.Flag("history.limit", "Recent probes and proxy readings the landing page lists, each with its log; 0 keeps none. The last failed probe of each target is kept apart.").Default(strconv.Itoa(history.DefaultLimit)).Uint()
		demoMode      = app.Flag("demo", "Probe built-in simulators of several providers (Cerebras, Groq, Anthropic, OpenRouter, OpenAI) with demo keys instead of real APIs.").Bool()
		otlpEndpoint  = app.Flag("otlp.endpoint", "Also push the metrics of /metrics to this OTLP/HTTP URL, used as is (e.g. http://collector:4318/v1/metrics). OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT turn the push on too; the other OTEL_EXPORTER_OTLP_* variables apply (see the README).").String()
		webFlags      = kingpinflag.AddFlags(app, ":10429")
		logConfig     = logging.AddFlags(app)
		_             = app.Command("serve", "Probe the keys and serve their rate limits (the default).").Default()
		checkCommand  = app.Command("check", "Probe every configured key and model once, read every admin source once, print what is left of each limit, and exit 0 if every probe and admin source read rate limits, 1 otherwise.")
		checkOutput   = checkCommand.Flag("output", "How to print: "+strings.Join(check.Formats, " or ")+".").Default("table").String()
	)
	app.GetFlag("config.file").IsSetByUser(&configFileSet)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	command := kingpin.Parse()

	logger, slogger := logging.New(os.Stderr, logConfig)
	if err := checkFlags(*metricsPath, *externalURL, *writeTimeout, *gracePeriod); err != nil {
		level.Error(logger).Log("msg", "Invalid flag", "err", err)
		return 1
	}

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
		return check.ConfigCommand(load, os.Stdout, os.Stderr)
	}
	if command == checkCommand.FullCommand() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return check.Command(ctx, load, *checkOutput, userAgent(), os.Stdout, os.Stderr)
	}

	level.Info(logger).Log("msg", "Starting "+name, "version", version.Info())
	level.Info(logger).Log("msg", "Build context", "build_context", version.BuildContext())
	if *onRequestOnly {
		level.Info(logger).Log("msg", "No probe of this replica's own accord (--probe.on-request-only): in scrape mode only /probe requests probe, and /metrics leaves the probes' gauges to /probe")
	}
	setMemoryLimit(logger)

	// Listen before the first probe: a busy port ends the start at once.
	listeners, err := server.Listen(webFlags)
	if err != nil {
		level.Error(logger).Log("msg", "Error listening", "err", err)
		return 1
	}
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		versioncollector.NewCollector(name),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The rate-limit metrics are held as text compressed by the collector
	// and written after the registry's, so they are not registered.
	exp := exporter.New(exporter.Options{UserAgent: userAgent(), Registry: registry, Grace: *gracePeriod, Logger: logger, HistoryLimit: int(min(*historyLimit, math.MaxInt)),
		ProbeOnRequestOnly: *onRequestOnly})
	defer exp.Stop()
	// draining: a SIGTERM came; /-/ready answers 503 from then on.
	var draining atomic.Bool
	reloader, err := config.NewReloader(load, exp.Apply, registry)
	if err != nil {
		level.Error(logger).Log("msg", "Error loading config", "err", err)
		return 1
	}

	handler, err := server.Handler(server.Options{
		MetricsPath:   *metricsPath,
		Registry:      registry,
		Observations:  exp.Readings(),
		MaxRequests:   *maxRequests,
		Refresh:       exp.Refresh,
		RefreshTarget: exp.RefreshTarget,
		Debug:         exp.Debug,
		History:       exp.History(),
		Targets:       exp.Targets,
		ExternalURL:   *externalURL,
		TimeoutOffset: *timeoutOffset,
		WriteTimeout:  *writeTimeout,
		Limits:        exp.Limits,
		Reload:        reloader.Reload,
		Dashboard:     grafana.Dashboard,
		Ready:         func() bool { return reloader.Config() != nil && !draining.Load() },
		Logger:        logger,
	})
	if err != nil {
		level.Error(logger).Log("msg", "Error building the handlers", "err", err)
		return 1
	}
	pusher, err := otlp.Start(otlp.Options{Endpoint: *otlpEndpoint, Registry: registry, Readings: exp.Readings(), Version: version.Version, Logger: logger})
	if err != nil {
		level.Error(logger).Log("msg", "Error starting the OTLP push", "err", err)
		return 1
	}
	defer pusher.Stop(*gracePeriod) // after the exporter stops: the last push has the last readings
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Every response has a deadline; /metrics restarts it once its
		// metrics are ready, as a scrape-mode scrape may wait for probes.
		WriteTimeout: *writeTimeout,
		IdleTimeout:  2 * time.Minute,
	}

	defer reloadOnHangup(reloader, logger)()
	terms := make(chan os.Signal, 2)
	signal.Notify(terms, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(terms)

	served := make(chan error, 1)
	go func() { served <- web.ServeMultiple(listeners, srv, webFlags, slogger) }()
	select {
	case err := <-served:
		level.Error(logger).Log("msg", "Error serving", "err", err)
		return 1
	case sig := <-terms:
		// Kept-alive clients would go on reaching this replica until the
		// listeners close; asked to close their connections, they
		// reconnect through the load balancer to a ready one.
		srv.SetKeepAlivesEnabled(false)
		exp.CloseKeepAlives()
		draining.Store(true)
		if second, ok := delayShutdown(logger, *shutdownDelay, terms); !ok {
			return exitNow(logger, srv, second)
		}
		return shutdown(logger, srv, exp, sig, terms, *gracePeriod)
	}
}

// setMemoryLimit sets GOMEMLIMIT to 90% of the container's memory limit,
// as Prometheus 3 does, unless GOMEMLIMIT or AUTOMEMLIMIT is set: near the
// limit the collector runs more often rather than the heap outgrowing it,
// so that request bodies held up to max_inflight_request_bytes, and their
// garbage, do not get the process killed.
func setMemoryLimit(logger log.Logger) {
	limit, err := memlimit.Set()
	switch {
	case err != nil:
		level.Debug(logger).Log("msg", "No container memory limit to set GOMEMLIMIT from", "err", err)
	case limit < math.MaxInt64:
		level.Info(logger).Log("msg", "GOMEMLIMIT set", "bytes", limit)
	}
}

// checkFlags returns an error for a flag value the exporter cannot serve with.
func checkFlags(metricsPath string, externalURL *url.URL, writeTimeout, gracePeriod time.Duration) error {
	if err := server.CheckMetricsPath(metricsPath); err != nil {
		return err
	}
	if externalURL != nil {
		if err := server.CheckExternalURL(externalURL); err != nil {
			return err
		}
	}
	if writeTimeout <= 0 || gracePeriod <= 0 {
		return errors.New("--web.write-timeout and --web.shutdown-grace-period must be greater than zero")
	}
	return nil
}

// reloadOnHangup reloads the config on each SIGHUP, apart from the signal
// loop, so that a slow reload, or a storm of SIGHUPs, never keeps a SIGTERM
// from being read. It returns what stops it.
func reloadOnHangup(reloader *config.Reloader, logger log.Logger) (stop func()) {
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	go func() {
		for range hangups {
			if err := reloader.Reload(); err != nil {
				level.Error(logger).Log("msg", "Error reloading config; the running config is kept", "err", err)
			}
		}
	}()
	return func() { signal.Stop(hangups) }
}

// delayShutdown goes on serving for delay, with /-/ready answering 503 (the
// caller has said so), so that a load balancer stops sending new requests
// before the listeners close. It returns false, and the signal, if a second
// signal came first.
func delayShutdown(logger log.Logger, delay time.Duration, signals <-chan os.Signal) (os.Signal, bool) {
	if delay <= 0 {
		return nil, true
	}
	level.Info(logger).Log("msg", "Not ready: serving on until the shutdown delay ends", "shutdown_delay", delay)
	select {
	case <-time.After(delay):
		return nil, true
	case sig := <-signals:
		return sig, false
	}
}

// shutdown stops accepting scrapes, lets those in flight finish within
// grace, then stops the exporter. A second SIGTERM or SIGINT ends it at once.
func shutdown(logger log.Logger, srv *http.Server, exp *exporter.Exporter, sig os.Signal, signals <-chan os.Signal, grace time.Duration) int {
	level.Info(logger).Log("msg", "Shutting down: finishing scrapes in flight", "signal", sig, "grace_period", grace)
	stopped := make(chan struct{})
	go func() {
		// Scrapes and proxied requests drain side by side, in one grace
		// period; probes are cancelled after, as scrapes may wait for them.
		proxyStopped := make(chan struct{})
		go func() {
			exp.StopProxy()
			close(proxyStopped)
		}()
		if err := drain.Shutdown(srv, grace); err != nil {
			level.Warn(logger).Log("msg", "Scrapes still in flight after the grace period are cut off", "err", err)
		}
		<-proxyStopped
		exp.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		level.Info(logger).Log("msg", "Shut down")
		return 0
	case sig := <-signals:
		return exitNow(logger, srv, sig)
	}
}

// exitNow ends the process at once on a second signal, without waiting for
// anything that may hang (a probe stuck reading a key file, say).
func exitNow(logger log.Logger, srv *http.Server, sig os.Signal) int {
	level.Warn(logger).Log("msg", "Second signal: exiting at once", "signal", sig)
	srv.Close()
	os.Exit(1)
	return 1
}

func userAgent() string {
	v := version.Version
	if v == "" {
		v = "dev"
	}
	return name + "/" + v
}
