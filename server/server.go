// Package server wires the exporter's HTTP endpoints.
package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	pathpkg "path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/gzipjoin"
	"github.com/ratelimit-exporter/ratelimit_exporter/history"
	"github.com/ratelimit-exporter/ratelimit_exporter/snapshot"
)

// Exposition appends metrics in the text exposition format to a body, as
// segments held compressed or not: every target's, or one target's
// (nothing if id is not a target). The segments are never changed.
type Exposition interface {
	AppendBody(b gzipjoin.Body) gzipjoin.Body
	AppendTargetBody(b gzipjoin.Body, id config.TargetID) gzipjoin.Body
}

// Options are what the endpoints need.
type Options struct {
	MetricsPath string
	// Registry holds the exporter's own metrics (Go, process, build, reload).
	Registry *prometheus.Registry
	// Observations gives the rate-limit metrics.
	Observations Exposition
	// MaxRequests bounds scrapes that refresh or gather their metrics at
	// once, and scrapes in flight to one client address, writing or not;
	// more are answered 503. 0: no bound.
	MaxRequests int
	// Refresh brings the metrics up to date before a scrape; ctx carries
	// the scrape's deadline. It may be nil.
	Refresh func(ctx context.Context)
	// RefreshTarget is Refresh for one target, before a /probe. It may be nil.
	RefreshTarget func(ctx context.Context, id config.TargetID) bool
	// Debug returns the record of a target's latest probe for
	// /probe?debug=true, sending one first in scrape mode; false when
	// there is none. It may be nil.
	Debug func(ctx context.Context, id config.TargetID) (*history.Entry, bool)
	// History is the recent probes the landing page lists and
	// ProbeLogPath shows. It may be nil.
	History *history.History
	// Targets lists the configured keys and models, which /probe serves
	// and /sd lists. Nil: neither endpoint is served.
	Targets func() []config.Target
	// ExternalURL is where Prometheus reaches the exporter, given as the
	// targets' address in /sd; nil: the host the /sd request was sent to.
	ExternalURL *url.URL
	// TimeoutOffset is taken off Prometheus's scrape timeout to leave time
	// to send the response.
	TimeoutOffset time.Duration
	// WriteTimeout bounds the writing of a metrics response, counted from
	// when the metrics are ready; 0 leaves the server's own deadline.
	WriteTimeout time.Duration
	// Limits is what is known of every key and model at a time, for the
	// JSON view and the status page. It may be nil.
	Limits func(now time.Time) snapshot.Report
	Reload func() error
	// Dashboard is served at DashboardPath when not empty.
	Dashboard []byte
	Ready     func() bool
	Logger    log.Logger
}

// DashboardPath is where the Grafana dashboard is served.
const DashboardPath = "/grafana/dashboard.json"

// The paths of the exporter's own endpoints.
const (
	HealthyPath = "/-/healthy"
	ReadyPath   = "/-/ready"
	ReloadPath  = "/-/reload"
)

// CheckMetricsPath returns an error when path cannot serve the metrics: it
// must start with /, be a plain path, and not be another endpoint's.
func CheckMetricsPath(path string) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("--web.telemetry-path %q must start with /", path)
	case strings.ContainsAny(path, "{}?#% \t\r\n") || strings.ContainsFunc(path, unicode.IsControl):
		return fmt.Errorf("--web.telemetry-path %q must be a plain path: no {, }, ?, #, %%, spaces or control characters", path)
	case path == "/":
		return nil // the landing page gives way
	case cleanPath(path) != path:
		return fmt.Errorf("--web.telemetry-path %q must be a clean path: no //, . or .. segments", path)
	}
	for _, own := range []string{HealthyPath, ReadyPath, ReloadPath, DashboardPath, ProbePath, SDPath, ProbeLogPath, LimitsPath, StatusPath, StatusStylePath, StatusScriptPath, StatusIconPath} {
		if path == own || strings.HasPrefix(own, strings.TrimSuffix(path, "/")+"/") && strings.HasSuffix(path, "/") {
			return fmt.Errorf("--web.telemetry-path %q clashes with the endpoint %s", path, own)
		}
	}
	return nil
}

// cleanPath is path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	clean := pathpkg.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// Handler returns the mux that serves every endpoint.
func Handler(o Options) (_ http.Handler, err error) {
	if err := CheckMetricsPath(o.MetricsPath); err != nil {
		return nil, err
	}
	defer func() {
		// ServeMux panics on patterns it refuses; CheckMetricsPath should
		// have caught them, and a start-up error is kinder than a panic.
		if p := recover(); p != nil {
			err = fmt.Errorf("--web.telemetry-path %q: %v", o.MetricsPath, p)
		}
	}()
	mux := http.NewServeMux()
	metrics := promhttp.InstrumentMetricHandler(o.Registry, metricsHandler(o.Registry, o.Observations, o.WriteTimeout, o.Logger))
	pattern := o.MetricsPath
	if pattern == "/" {
		pattern = "/{$}" // only /, so that the other endpoints stay reachable
	}
	// /metrics and /probe share one bound: both may wait for probes.
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ratelimit_exporter_scrapes_refused_total",
		Help: "Scrapes (/metrics, /probe) and pages (/api/v1/limits, /status) answered 503 by --web.max-requests, by reason: max_requests (that many wait for probes or gather at once) or per_address (that many in flight from the client's address, answers still being written included).",
	}, []string{"reason"})
	if o.Registry != nil {
		if err := o.Registry.Register(refused); err != nil {
			return nil, err
		}
	}
	limit := requestLimit(o.MaxRequests, refused)
	mux.Handle("GET "+pattern, limit(scrapeHandler(metrics, o.Refresh, o.TimeoutOffset)))
	if o.Targets != nil {
		mux.Handle("GET "+ProbePath, limit(probeHandler(o)))
		mux.Handle("GET "+SDPath, sdHandler(o))
		mux.Handle("GET "+ProbeLogPath, probeLogHandler(o))
	}
	if o.Limits != nil {
		// A whole report costs 15 to 40 scrapes of /metrics (BENCHMARKS.md).
		mux.Handle("GET "+LimitsPath, limit(limitsHandler(o)))
	}
	// A page of 1,000 keys costs as much as many scrapes: it shares their bound.
	mux.Handle("GET "+StatusPath, limit(statusHandler(o.Limits, o.Logger)))
	mux.Handle("GET "+StatusStylePath, staticHandler("text/css; charset=utf-8", statusCSS))
	mux.Handle("GET "+StatusScriptPath, staticHandler("text/javascript; charset=utf-8", statusJS))
	mux.Handle("GET "+StatusIconPath, staticHandler("image/svg+xml", statusIcon))

	if len(o.Dashboard) > 0 {
		mux.HandleFunc("GET "+DashboardPath, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(o.Dashboard)
		})
	}

	mux.HandleFunc(HealthyPath, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc(ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		if !o.Ready() {
			http.Error(w, "Not ready: no configuration loaded yet, or shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc(ReloadPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
			return
		}
		if err := o.Reload(); err != nil {
			level.Error(o.Logger).Log("msg", "Error reloading config", "err", err)
			http.Error(w, fmt.Sprintf("Failed to reload config; the running config is kept:\n%s", err), http.StatusInternalServerError)
			return
		}
		level.Info(o.Logger).Log("msg", "Reloaded config file")
		fmt.Fprintln(w, "Reloaded")
	})

	if o.MetricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Rate Limit Exporter",
			Description: "Prometheus exporter for the rate limits of LLM API keys",
			Version:     version.Info(),
			Profiling:   "false",
			Links: []web.LandingLinks{
				{Address: o.MetricsPath, Text: "Metrics", Description: "Rate limits of every configured key and model"},
				{Address: StatusPath, Text: "Status", Description: "Every key and model's windows as bars, failing and least left first, with their resets counting down"},
				{Address: SDPath, Text: "Service discovery", Description: "Every key and model as a target of /probe?key=NAME&model=MODEL, for Prometheus's http_sd_configs"},
				{Address: LimitsPath, Text: "Limits as JSON", Description: "What is left of every key and model's limits, for routers and scripts (?key=NAME&model=MODEL filter)"},
				{Address: DashboardPath, Text: "Grafana dashboard", Description: "Import it into Grafana, or provision it from a file"},
				{Address: "/-/healthy", Text: "Health", Description: "200 while the exporter serves"},
				{Address: "/-/ready", Text: "Readiness", Description: "200 once a configuration is loaded"},
			},
			ExtraHTML: `<p>Reload the configuration with <code>POST /-/reload</code> or SIGHUP.</p>` + recentProbesMarker,
			ExtraCSS:  recentProbesCSS,
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("/", landingWithHistory(landing, o.History))
	}
	return mux, nil
}

// scrapeHandler refreshes the metrics within the scrape's deadline, then serves them.
func scrapeHandler(metrics http.Handler, refresh func(context.Context), offset time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refresh != nil {
			ctx, cancel := scrapeContext(r, offset)
			refresh(ctx)
			cancel()
		}
		metrics.ServeHTTP(w, r)
	})
}

// scrapeContext is the request's context, ended by the scraper's timeout
// less offset if it sent one.
func scrapeContext(r *http.Request, offset time.Duration) (context.Context, context.CancelFunc) {
	if timeout, ok := scrapeTimeout(r, offset); ok {
		return context.WithTimeout(r.Context(), timeout)
	}
	return context.WithCancel(r.Context())
}

// scrapeTimeout returns Prometheus's scrape timeout from the
// X-Prometheus-Scrape-Timeout-Seconds header less offset. When the offset
// would leave nothing, the full timeout is used.
func scrapeTimeout(r *http.Request, offset time.Duration) (time.Duration, bool) {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return 0, false
	}
	seconds, err := strconv.ParseFloat(v, 64)
	if err != nil || !(seconds > 0 && seconds <= 24*3600) { // also refuses NaN
		return 0, false
	}
	timeout := time.Duration(seconds * float64(time.Second))
	if offset < timeout {
		timeout -= offset
	}
	return timeout, true
}

// metricsHandler writes the registry's metrics, then the rate-limit
// metrics, which are held compressed: a scrape costs about what writing
// the bytes costs. Writing has writeTimeout from now.
func metricsHandler(reg prometheus.Gatherer, observations Exposition, writeTimeout time.Duration, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveText(w, r, reg, observations.AppendBody, writeTimeout, logger)
	})
}

var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// serveText answers r with the metrics of reg, if not nil, then what body
// appends, gzipped if the client takes it: the body's compressed
// segments are copied, the others compressed now. Writing has
// writeTimeout from now.
func serveText(w http.ResponseWriter, r *http.Request, reg prometheus.Gatherer, body func(gzipjoin.Body) gzipjoin.Body, writeTimeout time.Duration, logger log.Logger) {
	if writeTimeout > 0 {
		// A scrape-mode scrape may have waited for probes: the deadline
		// counts from now, when the metrics are ready.
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			level.Debug(logger).Log("msg", "Cannot set a write deadline", "err", err)
		}
	}
	var own bytes.Buffer
	if reg != nil {
		families, err := reg.Gather()
		if err != nil {
			// Partial failure: serve what was gathered, as promhttp's ContinueOnError does.
			level.Error(logger).Log("msg", "Error gathering the exporter's own metrics", "err", err)
		}
		enc := expfmt.NewEncoder(&own, textFormat)
		for _, mf := range families {
			if err := enc.Encode(mf); err != nil {
				level.Error(logger).Log("msg", "Error encoding metrics", "err", err)
			}
		}
	}
	b := body(gzipjoin.Body{gzipjoin.Text(own.Bytes())})
	// The body is taken: writing it costs this goroutine alone.
	releaseSlot(r)
	w.Header().Set("Content-Type", string(textFormat))
	if err := writeBody(w, r, b); err != nil {
		level.Debug(logger).Log("msg", "Error writing metrics", "err", err)
	}
}

// writeBody writes b, gzipped if the client takes it, with its length:
// a known length spares the client chunked encoding.
func writeBody(w http.ResponseWriter, r *http.Request, b gzipjoin.Body) error {
	h := w.Header()
	if !gzipAccepted(r) {
		h.Set("Content-Length", strconv.Itoa(b.Len()))
		return b.WriteText(w)
	}
	b.Compress()
	h.Set("Content-Encoding", "gzip")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Length", strconv.Itoa(b.GzipLen()))
	return b.WriteGzip(w)
}

func gzipAccepted(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && !refused(params) {
			return true
		}
	}
	return false
}

// refused says whether a coding's parameters give it q=0, in any of the
// spellings RFC 9110 allows: q=0, Q=0.0, q=0.000.
func refused(params string) bool {
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return err == nil && q == 0
		}
	}
	return false
}

// requestLimit returns a wrapper that bounds the requests of all the
// handlers it wraps in two ways, answering 503 beyond either:
//
//   - at most max at once refresh and gather their metrics, the part that
//     waits for probes and renders into memory. A handler gives its slot
//     back with releaseSlot once only writing is left: the text it writes
//     is immutable once taken, and a slow reader costs only its goroutine.
//   - at most max at once are served to one client address, counting those
//     still being written: clients that never read, until
//     --web.write-timeout cuts them off, hold up their own address alone.
func requestLimit(max int, refused *prometheus.CounterVec) func(http.Handler) http.Handler {
	if max <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	refusedGlobal, refusedPerAddress := refused.WithLabelValues("max_requests"), refused.WithLabelValues("per_address")
	slots := make(chan struct{}, max)
	var mu sync.Mutex
	perAddress := map[string]int{}
	leave := func(address string) {
		mu.Lock()
		defer mu.Unlock()
		if perAddress[address]--; perAddress[address] == 0 {
			delete(perAddress, address)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			address := clientAddress(r)
			mu.Lock()
			full := perAddress[address] >= max
			if !full {
				perAddress[address]++
			}
			mu.Unlock()
			if full {
				refusedPerAddress.Inc()
				http.Error(w, fmt.Sprintf("Too many scrapes from this address at once, counting answers it has not read (--web.max-requests=%d)", max), http.StatusServiceUnavailable)
				return
			}
			defer leave(address)
			select {
			case slots <- struct{}{}:
			default:
				refusedGlobal.Inc()
				http.Error(w, fmt.Sprintf("Too many concurrent scrapes (--web.max-requests=%d)", max), http.StatusServiceUnavailable)
				return
			}
			var once sync.Once
			release := func() { once.Do(func() { <-slots }) }
			defer release() // if the handler did not
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), releaseKey{}, release)))
		})
	}
}

type releaseKey struct{}

// releaseSlot gives back the slot of --web.max-requests that r holds, if
// any: its metrics are ready, and only writing them is left.
func releaseSlot(r *http.Request) {
	if release, ok := r.Context().Value(releaseKey{}).(func()); ok {
		release()
	}
}

// clientAddress is the host of r's remote address: the ports of one
// client's connections differ.
func clientAddress(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
